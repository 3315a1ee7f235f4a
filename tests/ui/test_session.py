"""Sessions and page classification, in-process: a cookie verifies on any instance built
from the same configuration, not after tampering, expiry, a password change or with another
cluster key; the pages' paths are classified apart from the API and the metrics path may
not lie under them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocireg.auth.htpasswd import Htpasswd
from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.target import Endpoint, classify
from ocireg.ui.session import LIFETIME, Sessions
from tests.auth.conftest import write_htpasswd


def test_a_session_verifies_only_as_issued(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "users", {"alice": "a", "bob": "b"})
    issuer = Sessions(Htpasswd(path), b"cluster-key-0001")
    cookie = issuer.issue("alice", now=1000.0)
    # another member: its own Htpasswd and key derivation, the same configuration
    member = Sessions(Htpasswd(path), b"cluster-key-0001")
    session = member.verify(cookie, now=1001.0)
    assert session is not None and session.user == "alice"
    assert member.verify(cookie, now=1000.0 + LIFETIME + 1) is None  # expired
    assert Sessions(Htpasswd(path), b"another-key-0001").verify(cookie, now=1001.0) is None
    payload, _, mac = cookie.partition(".")
    forged = issuer.issue("bob", now=1000.0).partition(".")[0] + "." + mac
    assert member.verify(forged, now=1001.0) is None
    assert member.verify(payload + "." + "0" * 64, now=1001.0) is None
    assert member.verify("garbage", now=1001.0) is None
    # a changed password ends the user's sessions
    write_htpasswd(path, {"alice": "new", "bob": "b"})
    os.utime(path, (2_000_000_000, 2_000_000_000))  # a new mtime: the file is read again
    assert member.verify(cookie, now=1001.0) is None


def test_a_sealed_session_opens_only_as_issued() -> None:
    """A bearer user's cookie: the credentials sealed (AES-GCM), readable by any member
    with the same key, by nobody else, and not after tampering or expiry."""
    issuer = Sessions(None, b"cluster-key-0001", sealed=True)
    cookie = issuer.issue_sealed("alice", "pa55-word", now=1000.0)
    assert "alice" not in cookie and "pa55" not in cookie and len(cookie) < 200
    member = Sessions(None, b"cluster-key-0001", sealed=True)
    session = member.verify(cookie, now=1001.0)
    assert session is not None and (session.user, session.password) == ("alice", "pa55-word")
    assert member.verify(cookie, now=1000.0 + LIFETIME + 1) is None  # expired
    assert Sessions(None, b"another-key-0001", sealed=True).verify(cookie, now=1001.0) is None
    assert Sessions(None, b"cluster-key-0001").verify(cookie, now=1001.0) is None  # no bearer
    flipped = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    assert member.verify(flipped, now=1001.0) is None
    assert member.verify("b.", now=1001.0) is None
    assert member.verify("b.!!", now=1001.0) is None


def test_a_directory_session_verifies_only_as_issued(tmp_path: Path) -> None:
    """An LDAP user's cookie: signed with a key of its own, good on any member with the
    same key and LDAP configured, not after tampering or expiry; an htpasswd cookie's MAC
    does not pass for one, nor one for an htpasswd user's."""
    path = write_htpasswd(tmp_path / "users", {"alice": "a"})
    issuer = Sessions(Htpasswd(path), b"cluster-key-0001", directory=True)
    cookie = issuer.issue_directory("carol", now=1000.0)
    member = Sessions(None, b"cluster-key-0001", directory=True)
    session = member.verify(cookie, now=1001.0)
    assert session is not None and (session.user, session.directory) == ("carol", True)
    assert session.password is None
    assert member.verify(cookie, now=1000.0 + LIFETIME + 1) is None  # expired
    assert Sessions(None, b"another-key-0001", directory=True).verify(cookie, now=1001.0) is None
    assert Sessions(Htpasswd(path), b"cluster-key-0001").verify(cookie, now=1001.0) is None
    mac = cookie.rpartition(".")[2]
    forged = issuer.issue_directory("root", now=1000.0).rpartition(".")[0] + "." + mac
    assert member.verify(forged, now=1001.0) is None
    htpasswd_cookie = issuer.issue("alice", now=1000.0)
    assert issuer.verify("d." + htpasswd_cookie, now=1001.0) is None
    # "d." taken off an htpasswd user's directory cookie
    assert issuer.verify(issuer.issue_directory("alice", now=1000.0)[2:], now=1001.0) is None
    htpasswd_session = issuer.verify(htpasswd_cookie, now=1001.0)
    assert htpasswd_session is not None and not htpasswd_session.directory


def test_a_mac_that_is_not_ascii_is_no_session(tmp_path: Path) -> None:
    """A cookie is read as latin-1: a byte over 0x7f in its MAC is a forgery like any other
    (hmac.compare_digest raises TypeError on such a str: a 500 on the pages and the API)."""
    path = write_htpasswd(tmp_path / "users", {"alice": "a"})
    sessions = Sessions(Htpasswd(path), b"cluster-key-0001", directory=True, openid=True)
    for cookie in (
        sessions.issue("alice"),
        sessions.issue_directory("alice"),
        sessions.issue_openid("alice", ("devs",), "oidc"),
    ):
        assert sessions.verify(cookie) is not None
        assert sessions.verify(cookie.rpartition(".")[0] + ".\xe9" + "0" * 63) is None


def test_csrf_tokens_follow_their_seed(tmp_path: Path) -> None:
    sessions = Sessions(
        Htpasswd(write_htpasswd(tmp_path / "users", {"a": "a"})), b"instance-secret"
    )
    token = sessions.csrf("seed-1")
    assert sessions.csrf_ok("seed-1", token)
    assert not sessions.csrf_ok("seed-2", token)
    assert not sessions.csrf_ok("", sessions.csrf(""))


@pytest.mark.parametrize(
    ("path", "query", "endpoint", "repository"),
    [
        ("/", b"", Endpoint.PAGE, None),
        ("/ui", b"", Endpoint.PAGE, None),
        ("/ui/search", b"q=a/b", Endpoint.PAGE, None),
        # a page about one repository names it: the cluster layer sends it to the member
        # that stores it (with separate storage)
        ("/ui/repo/a/b", b"", Endpoint.PAGE, "a/b"),
        ("/ui/image/a/b@sha256:" + "0" * 64, b"", Endpoint.PAGE, "a/b"),
        ("/ui/delete", b"repo=a%2Fb&reference=v1", Endpoint.PAGE, "a/b"),
        ("/ui/repo/A", b"", Endpoint.PAGE, None),  # not a name: the page says so
        ("/uix", b"", Endpoint.OTHER, None),
        ("/metrics", b"", Endpoint.OTHER, None),
        ("/v2/", b"", Endpoint.PING, None),
    ],
)
def test_pages_are_classified_apart(
    path: str, query: bytes, endpoint: Endpoint, repository: str | None
) -> None:
    target = classify("GET", path, query)
    assert target.endpoint is endpoint
    assert target.repository == repository


def test_metrics_path_may_not_be_a_page(tmp_path: Path) -> None:
    data = {
        "storage": {"rootDirectory": str(tmp_path)},
        "extensions": {"metrics": {"enable": True, "prometheus": {"path": "/ui/metrics"}}},
    }
    with pytest.raises(ConfigError, match="web page"):
        build_config(data)


def test_a_csrf_token_that_is_not_ascii_is_refused() -> None:
    """A forged form field with any characters: refused, never an exception (a 500)."""
    sessions = Sessions(None, b"cluster-key-0001")
    good = sessions.csrf("seed")
    assert sessions.csrf_ok("seed", good)
    for forged in ("é" * 40, good[:-1] + "é", "\udcff", ""):
        assert not sessions.csrf_ok("seed", forged)
