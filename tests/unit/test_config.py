"""Config loading: zot's keys, case-insensitive; warnings for zot-only keys; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocireg.config import RateLimitConfig, build_config, load_config
from ocireg.errors import ConfigError
from ocireg.settings.keys import parse_duration
from tests.support.server import run_cli


def test_embedded_default_is_local_disk_on_port_5000() -> None:
    config = load_config(None)
    assert config.http.address == "127.0.0.1"
    assert config.http.port == 5000
    assert config.storage.root_directory == Path.cwd() / "data"


def test_keys_are_case_insensitive_and_port_may_be_string_or_int() -> None:
    a = build_config({"Storage": {"ROOTDIRECTORY": "/r"}, "HTTP": {"Port": "8080"}})
    b = build_config({"storage": {"rootDirectory": "/r"}, "http": {"port": 8080}})
    assert a.storage.root_directory == b.storage.root_directory == Path("/r")
    assert a.http.port == b.http.port == 8080


def test_zot_keys_not_implemented_are_warnings() -> None:
    config = build_config(
        {"storage": {"rootDirectory": "/r", "fastRestart": True}, "extensions": {"trust": {}}}
    )
    assert set(config.warnings) == {"storage.fastRestart", "extensions.trust"}


def test_max_repos_is_zot_s_quota_and_off_at_zero_or_less() -> None:
    for given, limit in ((10, 10), ("10", 10), (0, 0), (-3, 0)):  # zot takes strings too
        config = build_config({"storage": {"rootDirectory": "/r", "maxRepos": given}})
        assert config.storage.max_repos == limit and not config.warnings
    assert build_config({"storage": {"rootDirectory": "/r"}}).storage.max_repos == 0
    with pytest.raises(ConfigError):
        build_config({"storage": {"rootDirectory": "/r", "maxRepos": "ten"}})


def test_zot_2_1_20_storage_and_http_keys_are_warnings() -> None:
    """Keys zot v2.1.20 accepts (its examples/config-gc.json and config-bench.json use
    some): a zot file that has them still loads."""
    storage = {"rootDirectory": "/r", "maxRepos": 10, "fastRestart": True}
    http = {"readTimeout": "10s", "writeTimeout": "10s"}
    config = build_config({"storage": storage, "http": http})
    assert set(config.warnings) == {
        "storage.fastRestart",
        "http.readTimeout",
        "http.writeTimeout",
    }


def test_verify_prints_each_warning_once(tmp_path: Path) -> None:
    """A zot key not implemented is printed with why it is ignored; a warning that is a
    sentence of its own (solewriter in a cluster) is printed as it is."""
    storage = {
        "rootDirectory": str(tmp_path),
        "storageDriver": {"name": "s3", "bucket": "b", "solewriter": True},
    }
    cluster = {"members": ["127.0.0.1:1", "127.0.0.1:2"], "hashKey": "k" * 16}
    extensions = {"search": {"cve": {"updateInterval": "2h"}}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"storage": storage, "cluster": cluster, "extensions": extensions}))
    result = run_cli("verify", str(path))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: extensions.search.cve: zot option not implemented by ocireg; ignored" in lines
    solewriter = [line for line in lines if "solewriter" in line]
    assert solewriter == [
        "warning: storage.storageDriver.solewriter: ignored in a cluster (each member has a"
        " sqlite file of its own; Redis gives every member reads without S3 requests)"
    ]


def test_search_and_ui_as_zot_reads_them() -> None:
    config = build_config(
        {
            "storage": {"rootDirectory": "/r"},
            "extensions": {"search": {"enable": True, "cve": {"updateInterval": "2h"}}, "ui": {}},
        }
    )
    assert config.search.enabled and config.ui.enabled
    assert config.warnings == ("extensions.search.cve",)
    with pytest.raises(ConfigError, match=r"extensions\.ui\.enable"):
        build_config({"storage": {"rootDirectory": "/r"}, "extensions": {"ui": {"enable": True}}})
    off = build_config(
        {"storage": {"rootDirectory": "/r"}, "extensions": {"ui": {"enable": False}}}
    )
    assert not off.ui.enabled and not off.search.enabled


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"storage": {"rootDirectory": "/r", "rootDirectry": "/x"}}, "storage.rootDirectry"),
        ({"storage": {"rootDirectory": "/r"}, "htp": {}}, "htp"),
        ({"storage": {"rootDirectory": "/r"}, "http": {"port": "http"}}, "http.port"),
        ({"storage": {"rootDirectory": "/r"}, "http": {"port": 70000}}, "http.port"),
        ({"storage": {"rootDirectory": "/r", "gc": "yes"}}, "storage.gc"),
        ({"storage": {"rootDirectory": "/r", "gcDelay": "soon"}}, "storage.gcDelay"),
        ({"storage": {"rootDirectory": "/r"}, "log": {"level": "loud"}}, "log.level"),
        ({"storage": {"rootDirectory": "/r"}, "http": {"workers": 0}}, "http.workers"),
        ({"storage": {}}, "storage.rootDirectory"),
        ({"storage": {"rootDirectory": "/r", "rootdirectory": "/s"}}, "storage.rootdirectory"),
        (
            {"storage": {"rootDirectory": "/r"}, "cluster": {"members": ["a:1"], "hashKey": "x"}},
            "cluster.hashKey",
        ),
        (
            {
                "storage": {"rootDirectory": "/r"},
                "cluster": {"members": ["a"], "hashKey": "k" * 16},
            },
            "cluster.members[0]",
        ),
        ({"storage": {"rootDirectory": "/r"}, "http": {"tls": {"cert": "c"}}}, "http.tls.key"),
        (
            {"storage": {"rootDirectory": "/r"}, "http": {"bodyIdleTimeout": "x"}},
            "http.bodyIdleTimeout",
        ),
        (
            {"storage": {"rootDirectory": "/r"}, "http": {"manifestBodyBudget": "64MiB"}},
            "http.manifestBodyBudget",
        ),
        (
            {"storage": {"rootDirectory": "/r"}, "http": {"manifestBodyBudget": 0}},
            "http.manifestBodyBudget",
        ),
        (
            {"storage": {"rootDirectory": "/r"}, "http": {"ratelimit": {"rate": 0}}},
            "http.ratelimit.rate",
        ),
        (
            {
                "storage": {"rootDirectory": "/r"},
                "http": {"ratelimit": {"methods": [{"method": "GET", "rate": "5"}]}},
            },
            "http.ratelimit.methods[0].rate",
        ),
        (
            {
                "storage": {"rootDirectory": "/r"},
                "http": {"ratelimit": {"methods": [{"method": "GET /v2", "rate": 5}]}},
            },
            "http.ratelimit.methods[0].method",
        ),
        (
            {
                "storage": {"rootDirectory": "/r"},
                "http": {"ratelimit": {"methods": [{"method": "GET", "rate": 5, "burst": 9}]}},
            },
            "http.ratelimit.methods[0].burst",
        ),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600.0), ("90m", 5400.0), ("1h30m0s", 5400.0), ("500ms", 0.5), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


def test_duration_as_nanoseconds() -> None:
    assert parse_duration(2_000_000_000, "x") == 2.0


def test_body_limits_have_defaults_and_take_zot_style_values() -> None:
    default = build_config({"storage": {"rootDirectory": "/r"}}).http
    assert (default.body_idle_timeout, default.manifest_body_budget) == (60.0, 64 << 20)
    raw = {"bodyidletimeout": "1m30s", "manifestBodyBudget": 16 << 20}
    http = build_config({"storage": {"rootDirectory": "/r"}, "http": raw}).http
    assert (http.body_idle_timeout, http.manifest_body_budget) == (90.0, 16 << 20)


def test_yaml_config_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  rootDirectory: /var/lib/registry\nhttp:\n  port: '5001'\n")
    assert load_config(path).http.port == 5001


def test_verify_command_reports_key_path_and_exit_code(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"storage": {"rootDirectory": str(tmp_path)}, "http": {"port": "1"}})
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"storage": {"rootDirectory": str(tmp_path)}, "http": {"prot": "1"}}))
    ok = run_cli("verify", str(good))
    assert ok.returncode == 0, ok.stderr
    failed = run_cli("verify", str(bad))
    assert failed.returncode == 1
    assert "http.prot" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_verify_checks_every_section_without_starting_anything(tmp_path: Path) -> None:
    """A driver section is typed by `load_config`: verify finds its bad key, and needs
    neither the S3 endpoint nor Redis to be there."""
    bad = tmp_path / "bad.json"
    storage = {"rootDirectory": str(tmp_path), "storageDriver": {"name": "s3", "bucket": "b"}}
    storage["storageDriver"]["regionEndpont"] = "http://127.0.0.1:1"  # type: ignore[index]
    bad.write_text(json.dumps({"storage": storage}))
    failed = run_cli("verify", str(bad))
    assert failed.returncode == 1
    assert "storage.storageDriver.regionendpont: unknown key" in failed.stderr


def test_serve_with_bad_config_exits_with_message_not_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run_cli("serve", str(bad))
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_cluster_tls_may_hold_only_the_ca_as_in_zot() -> None:
    cluster = {"members": ["127.0.0.1:1"], "hashKey": "k" * 16, "tls": {"cacert": "/ca.crt"}}
    config = build_config({"storage": {"rootDirectory": "/r"}, "cluster": cluster})
    assert config.cluster is not None and config.cluster.tls is not None
    assert (config.cluster.tls.cacert, config.cluster.tls.cert) == (Path("/ca.crt"), None)
    cluster["tls"] = {"cert": "/member.crt"}
    with pytest.raises(ConfigError) as info:
        build_config({"storage": {"rootDirectory": "/r"}, "cluster": cluster})
    assert info.value.path == "cluster.tls.key"


def test_redirect_blob_url_is_zots_key_off_by_default() -> None:
    assert build_config({"storage": {"rootDirectory": "/r"}}).storage.redirect_blob_url is False
    raw = {"storage": {"rootDirectory": "/r", "redirectbloburl": True}}
    assert build_config(raw).storage.redirect_blob_url is True
    with pytest.raises(ConfigError) as info:
        build_config({"storage": {"rootDirectory": "/r", "redirectBlobURL": "yes"}})
    assert info.value.path == "storage.redirectBlobURL"


def test_a_duration_written_as_a_bare_number_gets_a_notice() -> None:
    raw = {
        "storage": {"rootDirectory": "/tmp/x", "gcDelay": 3600, "gcInterval": "1h"},
        "http": {"address": "127.0.0.1", "port": "5000", "bodyIdleTimeout": 0},
        "extensions": {
            "sync": {
                "enable": True,
                "registries": [
                    {"urls": ["http://127.0.0.1:1"], "pollInterval": 60, "onDemand": True}
                ],
            }
        },
    }
    config = build_config(raw)
    assert config.storage.gc_delay == pytest.approx(3.6e-6)  # zot's reading, kept
    assert [n.split(":")[0] for n in config.notices] == [
        "storage.gcDelay",
        "extensions.sync.registries[0].pollInterval",
    ]
    assert 'write a unit, e.g. "3600s"' in config.notices[0]


def test_zots_ratelimit_example_is_read() -> None:
    """zot's examples/config-ratelimit.json (v2.1.20), keys in any case as zot reads them."""
    http = {"ratelimit": {"rate": 10, "methods": [{"Method": "get", "RATE": 5}]}}
    config = build_config({"storage": {"rootDirectory": "/r"}, "http": http})
    assert config.http.rate_limit == RateLimitConfig(rate=10, methods=(("GET", 5),))
    assert not config.warnings
    assert build_config({"storage": {"rootDirectory": "/r"}}).http.rate_limit is None
