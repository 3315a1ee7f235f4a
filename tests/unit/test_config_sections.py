"""The free-form sections are typed inside `build_config`: a bad key anywhere is a
`ConfigError` with its key path at load time, and the settings are on `Config`."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ocireg.config import SECTIONS, build_config
from ocireg.errors import ConfigError
from ocireg.server.services import sole_sqlite_writer
from ocireg.settings.drivers import RedisSettings, S3Settings
from ocireg.settings.keys import parse_duration

ROOT = {"rootDirectory": "/r"}


def build(**sections: Any) -> Any:
    return build_config({"storage": ROOT, **sections})


def test_every_free_form_section_has_one_parser() -> None:
    assert set(SECTIONS) == {
        "auth",
        "metrics",
        "scrub",
        "s3",
        "redis",
        "sync",
        "search",
        "ui",
        "lint",
        "events",
        "retention",
        "sub_paths",
    }


def test_defaults_without_any_section() -> None:
    config = build()
    assert (config.auth.enabled, config.metrics.enabled, config.scrub.enabled) == (
        False,
        False,
        False,
    )
    assert (config.storage_driver, config.cache_driver) == ("filesystem", "sqlite")


def test_present_but_empty_extensions_are_enabled() -> None:
    config = build(extensions={"metrics": None, "scrub": {}})
    assert config.metrics.enabled and config.metrics.path == "/metrics"
    assert config.scrub.enabled and config.scrub.interval == 24 * 3600.0


def test_lint_is_on_when_present_unless_disabled() -> None:
    """zot answers every push with a 500 when `enable` is left out; ocireg reads the section
    as enabled, as zot reads every other extension's."""
    keys = ["org.example.team", "org.opencontainers.image.vendor"]
    assert build().lint.mandatory_annotations == ()
    on = build(extensions={"Lint": {"MandatoryAnnotations": [*keys, keys[0]]}})
    assert on.lint.mandatory_annotations == tuple(keys)
    off = build(extensions={"lint": {"enable": False, "mandatoryAnnotations": keys}})
    assert off.lint.mandatory_annotations == ()
    assert build(extensions={"lint": None}).lint.mandatory_annotations == ()


def test_sections_are_typed_case_insensitively() -> None:
    config = build_config(
        {
            "storage": {
                **ROOT,
                "remoteCache": True,
                "storageDriver": {"Name": "S3", "Bucket": "b", "RootDirectory": "/z"},
                "cacheDriver": {"NAME": "redis", "Addr": "10.0.0.1:6380", "KeyPrefix": "p"},
            },
            "http": {"auth": {"FailDelay": 2, "HTPasswd": {"Path": "/h"}}},
            "extensions": {
                "Metrics": {"Prometheus": {"PATH": "/m"}},
                "scrub": {"Interval": "2h"},
            },
        }
    )
    assert config.s3 == S3Settings(bucket="b", rootdirectory="/z")
    assert config.redis is not None
    assert (config.redis.addrs, config.redis.keyprefix) == (("10.0.0.1:6380",), "p")
    assert (config.auth.fail_delay, str(config.auth.htpasswd)) == (2.0, "/h")
    assert (config.metrics.path, config.scrub.interval) == ("/m", 7200.0)
    assert (config.storage_driver, config.cache_driver) == ("s3", "redis")


@pytest.mark.parametrize(
    ("sections", "path"),
    [
        ({"http": {"auth": {"htpasswd": {"paht": "x"}}}}, "http.auth.htpasswd.paht"),
        ({"http": {"accessControl": {"repos": {}}}}, "http.accessControl.repos"),
        ({"extensions": {"metrics": {"enabled": True}}}, "extensions.metrics.enabled"),
        (
            {"extensions": {"metrics": {"prometheus": {"path": "/v2/m"}}}},
            "extensions.metrics.prometheus.path",
        ),
        ({"extensions": {"scrub": {"interval": "daily"}}}, "extensions.scrub.interval"),
        ({"extensions": {"scrub": {"enable": "yes"}}}, "extensions.scrub.enable"),
        (
            {"extensions": {"lint": {"mandatoryAnnotations": "org.example.team"}}},
            "extensions.lint.mandatoryAnnotations",
        ),
        ({"extensions": {"lint": {"mandatory": []}}}, "extensions.lint.mandatory"),
        # YAML's .inf and .nan are floats: a config error, not a traceback
        (
            {
                "storage": {
                    **ROOT,
                    "retention": {
                        "policies": [{"keepTags": [{"mostRecentlyPushedCount": float("inf")}]}]
                    },
                }
            },
            "storage.retention.policies[0].keepTags[0].mostRecentlyPushedCount",
        ),
        ({"storage": {**ROOT, "gcDelay": float("nan")}}, "storage.gcDelay"),
        ({"http": {"auth": {"failDelay": float("inf")}}}, "http.auth.failDelay"),
        ({"storage": {**ROOT, "storageDriver": {"name": "gcs"}}}, "storage.storageDriver.name"),
        ({"storage": {**ROOT, "storageDriver": {"name": "s3"}}}, "storage.storageDriver.bucket"),
        (
            {"storage": {**ROOT, "storageDriver": {"name": "s3", "bucket": "b", "bukcet": "c"}}},
            "storage.storageDriver.bukcet",
        ),
        (
            {"storage": {**ROOT, "storageDriver": {"name": "s3", "bucket": "b", "secure": 1}}},
            "storage.storageDriver.secure",
        ),
        (
            {"storage": {**ROOT, "storageDriver": {"name": "filesystem", "x": 1}}},
            "storage.storageDriver.x",
        ),
        (
            {"storage": {**ROOT, "remoteCache": True, "cacheDriver": {"name": "dynamodb"}}},
            "storage.cacheDriver.name",
        ),
        (
            {
                "storage": {
                    **ROOT,
                    "remoteCache": True,
                    "cacheDriver": {"name": "redis", "adr": "h:1"},
                }
            },
            "storage.cacheDriver.adr",
        ),
        (
            {
                "storage": {
                    **ROOT,
                    "remoteCache": True,
                    "cacheDriver": {"name": "redis", "dial_timeout": "soon"},
                }
            },
            "storage.cacheDriver.dial_timeout",
        ),
        (
            {
                "storage": {
                    **ROOT,
                    "remoteCache": True,
                    "cacheDriver": {"name": "redis", "addr": "h:x"},
                }
            },
            "storage.cacheDriver.addr[0]",
        ),
        (
            {
                "storage": {
                    **ROOT,
                    "remoteCache": True,
                    "cacheDriver": {"name": "redis", "db": "one"},
                }
            },
            "storage.cacheDriver.db",
        ),
    ],
)
def test_bad_key_in_a_section_names_its_path_at_load(sections: dict[str, Any], path: str) -> None:
    raw: dict[str, Any] = {"storage": ROOT, **sections}
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    assert info.value.path == path


def test_cache_driver_is_ignored_without_remote_cache_as_in_zot() -> None:
    config = build_config({"storage": {**ROOT, "cacheDriver": {"name": "dynamodb"}}})
    assert config.redis is None


def test_remote_cache_defaults_to_on_with_s3_and_dedupe_as_in_zot() -> None:
    """zot turns `remoteCache` on when the key is absent, the storage is on S3 and dedupe
    is on (its default): a `cacheDriver` is then used without the key."""
    redis = {"cacheDriver": {"name": "redis", "url": "redis://h:6379"}}
    on_s3 = {**ROOT, "storageDriver": {"name": "s3", "bucket": "b"}, **redis}
    assert build_config({"storage": on_s3}).redis is not None
    assert build_config({"storage": on_s3}).storage.remote_cache
    assert build_config({"storage": {**on_s3, "dedupe": False}}).redis is None
    assert build_config({"storage": {**on_s3, "remoteCache": False}}).redis is None
    assert build_config({"storage": {**ROOT, **redis}}).redis is None  # local disk


def test_go_driver_keys_not_implemented_are_warnings() -> None:
    config = build_config(
        {
            "storage": {
                **ROOT,
                "remoteCache": True,
                "storageDriver": {"name": "s3", "bucket": "b", "loglevel": "debug"},
                "cacheDriver": {"name": "redis", "url": "redis://h", "pool_timeout": "1s"},
            },
            "http": {
                "auth": {
                    "openid": {},
                    "bearer": {"realm": "r", "cert": "c", "awsSecretsManager": {}},
                }
            },
        }
    )
    assert set(config.warnings) == {
        "storage.storageDriver.loglevel",
        "storage.cacheDriver.pool_timeout",
        "http.auth.bearer.awssecretsmanager",  # the auth keys are read lower-cased
    }
    # an openid section without providers, or beside bearer, logs nobody in: said so
    assert any(n.startswith("http.auth.openid") for n in config.notices)


def test_redis_options_map_to_redis_py_keywords() -> None:
    settings = RedisSettings.from_map(
        {"addr": ["a:1", "b:2"], "db": "2", "dial_timeout": "1500ms", "read_timeout": 3}
    )
    assert settings.addrs == ("a:1", "b:2")
    # zot's redis durations; a bare number is seconds here (ocireg's reading, kept).
    assert dict(settings.options) == {
        "db": 2,
        "socket_connect_timeout": 1.5,
        "socket_timeout": 3.0,
    }


@pytest.mark.parametrize(
    ("value", "bare_unit", "seconds"),
    [("5", 1.0, 5.0), (5, 1.0, 5.0), (5, None, 5e-9), ("1m30s", 1.0, 90.0), ("0", None, 0.0)],
)
def test_one_duration_parser_with_a_unit_for_bare_numbers(
    value: object, bare_unit: float | None, seconds: float
) -> None:
    assert parse_duration(value, "x", bare_unit) == pytest.approx(seconds)


def test_bare_numeric_string_is_not_a_go_duration() -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration("5", "storage.gcDelay")
    assert info.value.path == "storage.gcDelay"


def test_sub_paths_take_zot_defaults_and_refuse_what_would_misplace_repositories() -> None:
    """zot reads a key a sub path lacks as Go's zero value (dedupe and gc off); with gc on,
    gcDelay and gcInterval default to an hour. A sub path on the default's root would put
    repositories where neither ocireg nor zot looks for them: refused."""
    config = build(
        storage={
            **ROOT,
            "subPaths": {
                "/Team": {"rootDirectory": "/t", "GC": True},
                "/ci": {"rootDirectory": "/c", "dedupe": True, "gcDelay": "2h"},
                "/a/b": {"rootDirectory": "/ab"},
                "nolead": {"rootDirectory": "/n"},
                "/trail/": {"rootDirectory": "/tr"},
                "/x": {"rootDirectory": "/x", "remoteCache": True},
            },
        }
    )
    subs = {sub.route: sub for sub in config.sub_paths}
    assert set(subs) == {"team", "ci", "x"}  # zot matches "/" + a first component exactly
    assert (subs["team"].gc, subs["team"].gc_delay, subs["team"].gc_interval) == (True, 3600, 3600)
    assert (subs["team"].dedupe, subs["ci"].dedupe, subs["ci"].gc) == (False, True, False)
    assert subs["ci"].gc_delay == 7200
    for key in ("/a/b", "nolead", "/trail/"):
        assert any(f"storage.subPaths.{key}:" in notice for notice in config.notices), key
    assert "storage.subPaths./x.remoteCache" in config.warnings
    for subs_raw, path in (
        ({"/t": {"rootDirectory": "/r"}}, "storage.subPaths./t.rootDirectory"),
        # zot refuses a root shared, or one inside another
        ({"/t": {"rootDirectory": "/r/t"}}, "storage.subPaths./t.rootDirectory"),
        ({"/t": {"rootDirectory": "/"}}, "storage.subPaths./t.rootDirectory"),
        (
            {"/t": {"rootDirectory": "/s"}, "/u": {"rootDirectory": "/s"}},
            "storage.subPaths./u.rootDirectory",
        ),
        (
            {"/t": {"rootDirectory": "/s"}, "/u": {"rootDirectory": "/s/u"}},
            "storage.subPaths./u.rootDirectory",
        ),
        ({"/t": {}}, "storage.subPaths./t.rootDirectory"),
        (  # a sub path's driver is read with the same keys as the default's
            {"/t": {"rootDirectory": "/t", "storageDriver": {"name": "s3"}}},
            "storage.subPaths./t.storageDriver.bucket",
        ),
        (
            {"/t": {"storageDriver": {"name": "gcs"}}},
            "storage.subPaths./t.storageDriver.name",
        ),
        ({"/t": {"rootDirectory": "/t", "gcdelays": "1h"}}, "storage.subPaths./t.gcdelays"),
    ):
        with pytest.raises(ConfigError) as err:
            build(storage={**ROOT, "subPaths": subs_raw})
        assert err.value.path == path


def s3_driver(rootdirectory: str, **keys: Any) -> dict[str, Any]:
    return {"name": "s3", "bucket": "b", "rootdirectory": rootdirectory, **keys}


def test_sub_paths_on_s3_have_their_own_driver_under_either_default() -> None:
    """zot's example config-s3.json: sub paths with a `storageDriver` of their own, under a
    default on S3; a sub path on S3 needs no local root (zot's `rootDirectory` there holds
    its cache file), and local sub paths may sit under an S3 default, as in zot."""
    subs_raw = {
        "/a": {"rootDirectory": "/tmp/zot1", "storageDriver": s3_driver("/zot-a")},
        "/b": {"dedupe": True, "storageDriver": s3_driver("/zot-b", bucket="other")},
        "/c": {"rootDirectory": "/c", "dedupe": True},
    }
    for default in ({"storageDriver": s3_driver("/zot")}, {}):
        config = build(storage={**ROOT, **default, "subPaths": subs_raw})
        subs = {sub.route: sub for sub in config.sub_paths}
        assert subs["a"].s3 is not None and subs["a"].s3.prefix == "zot-a/zot-a/"
        assert subs["a"].root_directory is None
        assert subs["b"].s3 is not None and subs["b"].s3.bucket == "other"
        assert subs["c"].s3 is None and subs["c"].root_directory == Path("/c")
        assert any(n.startswith("storage.subPaths./b.dedupe:") for n in config.notices)
    # two storages on one bucket's prefix, or one inside another's, would each list the
    # other's repositories: refused (zot compares the local rootDirectory keys instead)
    for default_root, sub_root, where in (
        ("/zot", "/zot", "storage.subPaths./a.storageDriver.rootdirectory"),
        ("/zot", "/zot/zot/x", "storage.subPaths./a.storageDriver.rootdirectory"),
        ("", "/zot", "storage.subPaths./a.storageDriver.rootdirectory"),
    ):
        with pytest.raises(ConfigError) as err:
            build(
                storage={
                    **ROOT,
                    "storageDriver": s3_driver(default_root),
                    "subPaths": {"/a": {"storageDriver": s3_driver(sub_root)}},
                }
            )
        assert err.value.path == where
    # solewriter holds when every storage is on S3 and says so
    sole = s3_driver("/zot", solewriter=True)
    for sub_driver, kept in ((s3_driver("/a", solewriter=True), True), (s3_driver("/a"), False)):
        subs = {"/a": {"storageDriver": sub_driver}}
        config = build(storage={**ROOT, "storageDriver": sole, "subPaths": subs})
        assert sole_sqlite_writer(config) is kept
    subs = {"/a": {"rootDirectory": "/a"}}
    assert not sole_sqlite_writer(build(storage={**ROOT, "storageDriver": sole, "subPaths": subs}))
    other_endpoint = s3_driver("/zot", regionendpoint="http://127.0.0.1:9")
    build(
        storage={
            **ROOT,
            "storageDriver": s3_driver("/zot"),
            "subPaths": {"/a": {"storageDriver": other_endpoint}},
        }
    )


def test_root_directory_may_be_left_out_on_s3_with_redis() -> None:
    """zot's example config-all-remote.json leaves storage.rootDirectory out (S3 and a
    remote cache): nothing of the registry's data is local then, and the instance's own
    files go to a directory of the temporary folder, named after the bucket's prefix."""
    redis = {"remoteCache": True, "cacheDriver": {"name": "redis", "url": "redis://h:6379"}}
    storage = {"storageDriver": s3_driver("/zot"), **redis}
    redis_only = {"cacheDriver": redis["cacheDriver"]}  # remoteCache left to zot's default
    config = build_config({"storage": storage})
    root = config.storage.root_directory
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("ocireg-")
    assert any(str(root) in n for n in config.notices)
    # Made by the check itself, this user's alone: another user cannot make it between the
    # check and the start, when the instance first writes in it.
    shutil.rmtree(root)
    assert build_config({"storage": storage}).storage.root_directory == root
    assert stat.S_IMODE(root.lstat().st_mode) == 0o700 and root.lstat().st_uid == os.getuid()
    root.mkdir(mode=0o777, exist_ok=True)
    try:
        root.chmod(0o777)  # (past the umask) anyone may write in it: not used
        with pytest.raises(ConfigError) as err:
            build_config({"storage": storage})
        assert err.value.path == "storage.rootDirectory"
        root.chmod(0o700)
        assert build_config({"storage": storage}).storage.root_directory == root
    finally:
        root.rmdir()
    without_key = {k: v for k, v in storage.items() if k != "remoteCache"}  # zot's default
    assert build_config({"storage": without_key}).storage.root_directory == root
    again = build_config({"storage": storage}).storage.root_directory
    elsewhere = {**storage, "storageDriver": s3_driver("/other")}
    assert again == root != build_config({"storage": elsewhere}).storage.root_directory
    for raw, path in (
        ({"storageDriver": s3_driver("/zot")}, "storage.rootDirectory"),  # sqlite's file
        ({"storageDriver": s3_driver("/zot"), "remoteCache": True}, "storage.rootDirectory"),
        ({**redis}, "storage.rootDirectory"),  # the repositories are there
        (
            {"storageDriver": s3_driver("/zot"), **redis_only, "dedupe": False},
            "storage.rootDirectory",
        ),
        (
            {**storage, "cacheDriver": {"name": "dynamodb", "region": "r"}},
            "storage.cacheDriver.name",
        ),
    ):
        with pytest.raises(ConfigError) as err:
            build_config({"storage": raw})
        assert err.value.path == path


def test_event_sinks_take_zot_s_keys() -> None:
    sink = {
        "Type": "http",
        "Address": "https://hooks.example/zot",
        "Channel": "alerts",
        "Timeout": "10s",
        "Headers": {"X-Team": "a"},
        "Credentials": {"Token": "t0k"},
        "TLSConfig": {"CACertFile": "ca.pem"},
    }
    nats = {
        "type": "nats",
        "address": "nats://127.0.0.1:4222",
        "channel": "alerts",
        "credentials": {"file": "/etc/nats.creds"},
    }
    config = build(extensions={"events": {"enable": True, "sinks": [sink, nats]}})
    http, subject = config.events.sinks
    assert (http.kind, http.address, http.channel, http.timeout, http.token) == (
        "http",
        "https://hooks.example/zot",
        "alerts",
        10.0,
        "t0k",
    )
    assert http.headers == (("X-Team", "a"),) and http.ca_cert is not None
    assert (subject.kind, subject.channel, str(subject.credentials_file)) == (
        "nats",
        "alerts",
        "/etc/nats.creds",
    )
    assert not config.warnings and not config.notices
    assert build(extensions={"events": {"enable": False, "sinks": [sink]}}).events.sinks == ()
    assert build().events.sinks == ()


@pytest.mark.parametrize(
    "sink",
    [
        {"type": "kafka", "address": "http://x"},
        {"type": "http", "address": "ftp://x"},
        {"type": "http"},
        {"type": "http", "address": "http://x", "headers": {"a": 1}},
        {"type": "http", "address": "http://x", "tlsconfig": {"certfile": "c.pem"}},
        {"type": "http", "address": "http://x", "unknown": 1},
        {"type": "http", "address": "http://x", "credentials": {"file": "/etc/creds"}},
        {"type": "nats", "address": "nats://x:4222"},  # no subject
        {"type": "nats", "address": "http://x", "channel": "a"},
    ],
)
def test_bad_event_sinks_are_refused(sink: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build(extensions={"events": {"sinks": [sink]}})


def test_ldap_takes_zot_s_keys_and_the_protocol_s_ports() -> None:
    keys = {"Address": "ldap.example", "BaseDN": "ou=people,dc=x", "UserAttribute": "uid"}
    ldaps = build(http={"auth": {"ldap": keys}}).auth.ldap
    assert ldaps is not None and (ldaps.port, ldaps.uses_ldaps) == (636, True)
    plain = build(http={"auth": {"LDAP": {**keys, "Insecure": "true", "StartTLS": True}}})
    ldap = plain.auth.ldap
    assert ldap is not None and (ldap.port, ldap.uses_ldaps, ldap.start_tls) == (389, False, True)
    assert plain.auth.enabled and plain.auth.logins
    given = build(http={"auth": {"ldap": {**keys, "port": "1389", "subtreeSearch": True}}})
    assert given.auth.ldap is not None and given.auth.ldap.port == 1389
    for bad in ({"address": "x"}, {**keys, "insecure": "maybe"}, {**keys, "bindDN": "cn=x"}):
        with pytest.raises(ConfigError):
            build(http={"auth": {"ldap": bad}})


def test_apikey_is_read_and_needs_password_logins() -> None:
    htpasswd = {"htpasswd": {"path": "/users"}}
    config = build_config({"storage": ROOT, "http": {"auth": {**htpasswd, "apiKey": True}}})
    assert config.auth.api_keys and not config.warnings
    config = build_config({"storage": ROOT, "http": {"auth": {**htpasswd, "apikey": "false"}}})
    assert not config.auth.api_keys
    config = build_config({"storage": ROOT, "http": {"auth": {"apikey": True}}})
    assert not config.auth.api_keys
    assert [w for w in config.warnings if w.startswith("http.auth.apikey")]
    with pytest.raises(ConfigError, match=r"http\.auth\.apikey"):
        build_config({"storage": ROOT, "http": {"auth": {**htpasswd, "apikey": "maybe"}}})


def test_zots_session_keys_are_warned_as_not_needed() -> None:
    """zot's session keys and sessionDriver are accepted (a zot file carries them), each
    warned with why ocireg has no use for them; mtls stays a plain not-implemented one."""
    auth = {"sessionDriver": {"name": "redis"}, "SecureSession": True, "mtls": {}}
    config = build(http={"auth": auth})
    note = "(not needed: ocireg's sessions are signed cookies every member accepts)"
    assert f"http.auth.sessionDriver {note}" in config.warnings
    assert f"http.auth.secureSession {note}" in config.warnings
    assert "http.auth.mtls" in config.warnings
