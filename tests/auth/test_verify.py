"""`ocireg verify` (and `serve`) check the auth sections: known keys (case-insensitive, as
zot), files that exist, a certificate that parses, globs that compile, known actions; each
error names the key path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ocireg.auth.settings import auth_settings
from ocireg.config import build_config
from ocireg.errors import ConfigError
from tests.auth.conftest import PASSWORDS, TokenServer, write_htpasswd
from tests.support.server import run_cli


def config_file(tmp_path: Path, http: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    raw = {"storage": {"rootDirectory": str(tmp_path / "root")}, "http": http}
    path.write_text(json.dumps(raw))
    return path


def test_verify_accepts_a_full_auth_config(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "users", {"alice": PASSWORDS["alice"]})
    with TokenServer(tmp_path / "tokens") as tokens:
        http = {
            "Auth": {
                "HTPasswd": {"Path": str(htpasswd)},
                "Bearer": {"Realm": tokens.realm, "Service": "s", "Cert": str(tokens.files.cert)},
                "FailDelay": 2,
                "LDAP": {"Address": "ldap.example", "BaseDN": "dc=x", "UserAttribute": "uid"},
                "OpenID": {"providers": {}},
            },
            "AccessControl": {
                "Repositories": {"{a,b}/**": {"AnonymousPolicy": ["read"]}},
                "AdminPolicy": {"Users": ["alice"], "Actions": ["delete"]},
            },
        }
        result = run_cli("verify", str(config_file(tmp_path, http)))
    assert result.returncode == 0, result.stderr
    assert "http.auth.openid" in result.stderr  # no provider: nobody logs in by it, said so
    assert "http.auth.ldap" not in result.stderr


@pytest.mark.parametrize(
    ("http", "path", "words"),
    [
        (
            {"auth": {"htpasswd": {"path": "/nonexistent/htpasswd"}}},
            "http.auth.htpasswd.path",
            "cannot read",
        ),
        ({"auth": {"htpasswd": {"paht": "x"}}}, "http.auth.htpasswd.paht", "unknown key"),
        (
            {"auth": {"bearer": {"realm": "r", "cert": "CERT"}}},
            "http.auth.bearer.cert",
            "not a PEM",
        ),
        ({"auth": {"bearer": {"realm": "r"}}}, "http.auth.bearer.cert", "required"),
        (  # without an audience, any token of the issuer would do
            {"auth": {"bearer": {"realm": "r", "oidc": [{"issuer": "https://k8s"}]}}},
            "http.auth.bearer.oidc[0].audiences",
            "expected a list of strings",
        ),
        (
            {"auth": {"bearer": {"oidc": [{"issuer": "https://k8s", "audiences": []}]}}},
            "http.auth.bearer.oidc[0].audiences",
            "at least one audience",
        ),
        (
            {"auth": {"bearer": {"oidc": {"issuer": "https://k8s", "audiences": ["zot"]}}}},
            "http.auth.bearer.oidc",
            "expected a list of issuers",
        ),
        (
            {
                "auth": {
                    "bearer": {
                        "oidc": [
                            {
                                "issuer": "https://k8s",
                                "audiences": ["zot"],
                                "claimMapping": {"username": "claims.sub +"},
                            }
                        ]
                    }
                }
            },
            "http.auth.bearer.oidc[0].claimMapping.username",
            "invalid CEL expression",
        ),
        (
            {
                "auth": {
                    "bearer": {
                        "oidc": [
                            {
                                "issuer": "https://k8s",
                                "audiences": ["zot"],
                                "claimMapping": {"validations": [{"expression": "true"}]},
                            }
                        ]
                    }
                }
            },
            "http.auth.bearer.oidc[0].claimMapping.validations[0].message",
            "non-empty string",
        ),
        (
            {
                "auth": {
                    "bearer": {
                        "oidc": [
                            {
                                "issuer": "https://k8s",
                                "audiences": ["zot"],
                                "certificateAuthority": "not a certificate",
                            }
                        ]
                    }
                }
            },
            "http.auth.bearer.oidc[0].certificateAuthority",
            "not a PEM CA certificate",
        ),
        ({"auth": {"failDelay": "soon"}}, "http.auth.failDelay", "seconds"),
        ({"auth": {"basic": {}}}, "http.auth.basic", "unknown key"),
        (
            {"accessControl": {"repositories": {"team/[a-": {}}}},
            "http.accessControl.repositories.team/[a-",
            "invalid repository glob",
        ),
        (
            {"accessControl": {"repositories": {"**": {"defaultPolicy": ["push"]}}}},
            "http.accessControl.repositories.**.defaultPolicy",
            "unknown action",
        ),
        (
            {"accessControl": {"repositories": {"**": {"policies": [{"user": ["a"]}]}}}},
            "http.accessControl.repositories.**.policies[0].user",
            "unknown key",
        ),
        (
            {"accessControl": {"adminPolicy": {"actions": "read"}}},
            "http.accessControl.adminPolicy.actions",
            "list of strings",
        ),
        (
            {"accessControl": {"groups": {"devs": {"users": "carol"}}}},
            "http.accessControl.groups.devs.users",
            "list of strings",
        ),
    ],
)
def test_verify_and_serve_name_the_bad_key(
    tmp_path: Path, http: dict[str, Any], path: str, words: str
) -> None:
    (tmp_path / "CERT").write_text("not a certificate")
    for key in ("bearer",):
        section = http.get("auth", {}).get(key)
        if section and section.get("cert") == "CERT":
            section["cert"] = str(tmp_path / "CERT")
    config = config_file(tmp_path, http)
    for command in ("verify", "serve"):
        result = run_cli(command, str(config), timeout=60)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert path.lower() in result.stderr.lower(), result.stderr
        assert words in result.stderr, result.stderr


def test_glob_keys_are_lower_cased_as_zot_does() -> None:
    config = build_config(
        {
            "storage": {"rootDirectory": "/r"},
            "http": {"accessControl": {"repositories": {"Team/*": {"defaultPolicy": ["read"]}}}},
        }
    )
    settings = auth_settings(config)
    assert settings.access_control is not None
    assert list(settings.access_control.repositories) == ["team/*"]


def test_duplicate_keys_differing_in_case_are_an_error_at_load() -> None:
    with pytest.raises(ConfigError, match="duplicate key") as info:
        build_config(
            {
                "storage": {"rootDirectory": "/r"},
                "http": {"accessControl": {"repositories": {"a/*": {}, "A/*": {}}}},
            }
        )
    assert info.value.path == "http.accessControl.repositories.A/*"
