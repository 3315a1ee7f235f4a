"""`extensions.sync`: zot's keys, defaults and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.sync.settings import load_credentials, sync_settings
from tests.support.server import run_cli

ISSUE_EXAMPLE: dict[str, Any] = {
    "enable": True,
    "credentialsFile": "/etc/ocireg/sync-auth.json",
    "downloadDir": "/var/cache/ocireg-sync",
    "registries": [
        {
            "urls": ["https://registry-1.example"],
            "onDemand": True,
            "pollInterval": "6h",
            "tlsVerify": True,
            "certDir": "/etc/ocireg/certs.d/upstream",
            "maxRetries": 3,
            "retryDelay": "5m",
            "content": [
                {
                    "prefix": "library/**",
                    "destination": "/docker",
                    "stripPrefix": False,
                    "tags": {"regex": "^v?[0-9]+", "excludeRegex": "-rc", "semver": True},
                }
            ],
        }
    ],
}


def _settings(sync: Any) -> Any:
    return sync_settings(
        build_config({"storage": {"rootDirectory": "/r"}, "extensions": {"sync": sync}})
    )


def test_absent_section_is_disabled() -> None:
    assert not sync_settings(build_config({"storage": {"rootDirectory": "/r"}})).enabled


def test_the_issue_example_parses_with_zots_meaning() -> None:
    settings = _settings(ISSUE_EXAMPLE)
    assert settings.enabled
    assert settings.credentials_file == Path("/etc/ocireg/sync-auth.json")
    (registry,) = settings.registries
    assert registry.urls == ("https://registry-1.example",)
    assert registry.on_demand and registry.tls_verify
    assert registry.poll_interval == 6 * 3600
    assert registry.max_retries == 3 and registry.retry_delay == 300
    (rule,) = registry.content
    assert rule.prefix == "library/**" and rule.destination == "/docker"
    assert rule.tags is not None and rule.tags.semver
    assert settings.on_demand == (registry,) and settings.periodic == (registry,)


def test_keys_are_case_insensitive_and_empty_section_enables() -> None:
    settings = _settings({"Registries": [{"URLS": ["http://h:1"], "ondemand": True}]})
    assert settings.enabled and settings.registries[0].on_demand
    assert _settings(None).enabled


def test_enable_false_disables_everything() -> None:
    settings = _settings({**ISSUE_EXAMPLE, "enable": False})
    assert not settings.on_demand and not settings.periodic


def test_periodic_needs_content_and_a_poll_interval() -> None:
    settings = _settings({"registries": [{"urls": ["http://h:1"], "pollInterval": "1m"}]})
    assert settings.periodic == ()


def test_zot_only_keys_are_accepted_and_listed() -> None:
    settings = _settings({"registries": [{"urls": ["http://h:1"], "reqPerSec": 5}]})
    assert settings.ignored == ("extensions.sync.registries[0].reqPerSec",)


def test_signature_options_are_parsed_with_zots_defaults() -> None:
    settings = _settings(
        {
            "registries": [
                {"urls": ["http://h:1"]},
                {"urls": ["http://h:1"], "onlysigned": True, "SyncLegacyCosignTags": False},
            ]
        }
    )
    default, given = settings.registries
    assert (default.only_signed, default.legacy_cosign_tags) == (False, True)
    assert (given.only_signed, given.legacy_cosign_tags) == (True, False)
    assert settings.ignored == ()


@pytest.mark.parametrize(
    ("sync", "where"),
    [
        ({"registries": [{"urls": []}]}, "extensions.sync.registries[0].urls"),
        ({"registries": [{"urls": ["ftp://x"]}]}, "extensions.sync.registries[0].urls[0]"),
        ({"registries": [{"urls": ["http://h"], "typo": 1}]}, "extensions.sync.registries[0].typo"),
        (
            {"registries": [{"urls": ["http://h"], "maxRetries": 2}]},
            "extensions.sync.registries[0].retryDelay",
        ),
        (
            {"registries": [{"urls": ["http://h"], "pollInterval": "soon"}]},
            "extensions.sync.registries[0].pollInterval",
        ),
        (
            {"registries": [{"urls": ["http://h"], "content": [{"prefix": ""}]}]},
            "extensions.sync.registries[0].content[0].prefix",
        ),
        (
            {"registries": [{"urls": ["http://h"], "content": [{"prefix": "library/{a,b"}]}]},
            "extensions.sync.registries[0].content[0].prefix",
        ),
        (
            {
                "registries": [
                    {"urls": ["http://h"], "content": [{"prefix": "a", "tags": {"regex": "("}}]}
                ]
            },
            "extensions.sync.registries[0].content[0].tags.regex",
        ),
        ({"enable": "yes"}, "extensions.sync.enable"),
        (
            {"registries": [{"urls": ["http://h"], "onlySigned": "sometimes"}]},
            "extensions.sync.registries[0].onlySigned",
        ),
    ],
)
def test_bad_values_name_the_key(sync: Any, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(sync)
    assert info.value.path == where


def test_credentials_file_is_keyed_by_host(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"127.0.0.1:5000": {"username": "u", "password": "p"}}))
    creds = load_credentials(path)
    assert creds["127.0.0.1:5000"].username == "u"
    path.write_text(json.dumps({"h": {"username": "u"}}))
    with pytest.raises(ConfigError):
        load_credentials(path)


def test_verify_checks_the_section_and_names_ignored_keys(tmp_path: Path) -> None:
    config = {
        "storage": {"rootDirectory": str(tmp_path / "r")},
        "extensions": {
            "sync": {
                "registries": [
                    {"urls": ["http://h:1"], "reqPerSec": 5},
                    # zot's examples/config-sync.json: implemented, so no warning
                    {"urls": ["http://h:2"], "onlySigned": True, "syncLegacyCosignTags": False},
                ]
            }
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run_cli("verify", str(path))
    assert result.returncode == 0, result.stderr
    assert "extensions.sync.registries[0].reqPerSec" in result.stderr
    assert "onlySigned" not in result.stderr and "syncLegacyCosignTags" not in result.stderr
    config["extensions"]["sync"]["credentialsFile"] = str(tmp_path / "missing.json")
    path.write_text(json.dumps(config))
    result = run_cli("verify", str(path))  # zot syncs without them, and says so
    assert result.returncode == 0 and "credentialsFile" in result.stderr
    assert "downloadDir" not in result.stderr
    config["extensions"]["sync"]["downloadDir"] = str(tmp_path / "staging")
    path.write_text(json.dumps(config))
    result = run_cli("verify", str(path))  # accepted (zot needs it on S3), said to be unused
    assert result.returncode == 0 and "downloadDir is not used" in result.stderr
