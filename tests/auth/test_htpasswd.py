"""http.auth.htpasswd: HTTP Basic against bcrypt entries; without accessControl every
authenticated user may do everything and anonymous requests are refused (as zot)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, basic, client_for, start_registry, write_htpasswd
from tests.support.oci import assert_error, manifest_path, push_image, unique_repo
from tests.support.server import RegistryProcess, wait_until

REALM = "htpasswd-test-realm"
FAIL_DELAY = 1


@pytest.fixture(scope="module")
def htpasswd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_htpasswd(tmp_path_factory.mktemp("htpasswd") / "users.htpasswd", PASSWORDS)


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, htpasswd_file: Path
) -> Iterator[RegistryProcess]:
    http = {
        "realm": REALM,
        "auth": {"htpasswd": {"path": str(htpasswd_file)}, "failDelay": FAIL_DELAY},
    }
    with start_registry(tmp_path_factory.mktemp("basic"), http) as proc:
        yield proc


def assert_basic_challenge(r: httpx.Response) -> None:
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers["www-authenticate"] == f'Basic realm="{REALM}"'


def test_ping_without_credentials_is_challenged(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/v2/")
    assert_basic_challenge(r)


def test_ping_with_credentials_is_200(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/v2/", auth=basic("alice"))
    assert r.status_code == 200, r.text
    assert "www-authenticate" not in r.headers


@pytest.mark.parametrize(
    "auth",
    [
        httpx.BasicAuth("alice", "wrong"),
        httpx.BasicAuth("nobody", "alice-pw"),
        httpx.BasicAuth("alice", ""),
    ],
    ids=["wrong-password", "unknown-user", "empty-password"],
)
def test_bad_credentials_are_401_after_fail_delay(
    registry: RegistryProcess, auth: httpx.BasicAuth
) -> None:
    started = time.monotonic()
    r = httpx.get(f"{registry.url}/v2/", auth=auth, timeout=30)
    assert time.monotonic() - started >= FAIL_DELAY
    assert_basic_challenge(r)


@pytest.mark.parametrize(
    "header",
    [
        "Basic not-base64!",
        "Basic " + "YWxpY2U=",
        "Bearer abc.def.ghi",
        "Digest x",
        # bytes past ASCII: b64decode raises ValueError, not binascii.Error (was a 500)
        b"Basic \xe9\xe9",
        b"Basic YWxpY2U6YWxpY2UtcHc=\xe9",
    ],
)
def test_malformed_or_foreign_authorization_is_401(
    registry: RegistryProcess, header: str | bytes
) -> None:
    r = httpx.get(f"{registry.url}/v2/", headers={"Authorization": header}, timeout=30)
    assert_basic_challenge(r)


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz"])
def test_health_needs_no_credentials(registry: RegistryProcess, path: str) -> None:
    assert httpx.get(f"{registry.url}{path}").status_code == 200


def test_anonymous_requests_are_challenged(registry: RegistryProcess) -> None:
    repo = unique_repo("basic")
    with client_for(registry, "alice") as alice:
        push_image(alice, repo, "v1")
    with client_for(registry) as anonymous:
        assert_basic_challenge(anonymous.get(manifest_path(repo, "v1")))
        assert_basic_challenge(anonymous.post(f"/v2/{repo}/blobs/uploads/"))
        assert_basic_challenge(anonymous.get("/v2/_catalog"))


def test_any_user_may_push_pull_and_delete_without_access_control(
    registry: RegistryProcess,
) -> None:
    repo = unique_repo("basic")
    with client_for(registry, "alice") as alice, client_for(registry, "bob") as bob:
        image = push_image(alice, repo, "v1")
        r = bob.get(manifest_path(repo, "v1"))
        assert r.status_code == 200, r.text
        assert r.content == image.manifest
        assert bob.delete(manifest_path(repo, "v1")).status_code == 202
        assert repo in alice.get("/v2/_catalog").json()["repositories"]


def test_htpasswd_changes_take_effect_without_restart(
    tmp_path: Path, registry: RegistryProcess, htpasswd_file: Path
) -> None:
    """A verified credential is cached, but removing the user must end it promptly."""
    with client_for(registry, "dave") as dave:
        assert dave.get("/v2/").status_code == 200
        original = htpasswd_file.read_text()
        try:
            kept = {u: p for u, p in PASSWORDS.items() if u != "dave"}
            write_htpasswd(htpasswd_file, kept)
            wait_until(lambda: dave.get("/v2/").status_code == 401, timeout=10)
        finally:
            htpasswd_file.write_text(original)
        wait_until(lambda: dave.get("/v2/").status_code == 200, timeout=10)
