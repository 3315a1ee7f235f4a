"""http.auth.apikey: zot's API keys, made, listed and revoked at /zot/auth/apikey by a user
who logged in with a password, then used as `user:zak_...` Basic credentials, with the
user's access (and the groups of their last password login). Over real HTTP against real
processes: two Granian workers, a restart on the SQLite store, and a Redis store."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, basic, start_registry, write_htpasswd
from tests.auth.test_clients import host, push, skopeo
from tests.clients.conftest import Tools
from tests.clients.layout import build_image_layout
from tests.support.backends import Redis, running_slapd
from tests.support.ldap import ACCESS as LDAP_ACCESS
from tests.support.ldap import fill_directory, ldap_keys
from tests.support.oci import assert_error, manifest_path, push_image, unique_repo
from tests.support.server import RegistryProcess, base_config, running_registry, wait_until
from tests.ui.conftest import UI

KEYS = "/zot/auth/apikey"
NEVER = "0001-01-01T00:00:00Z"
DETAILS = {
    "createdAt",
    "expirationDate",
    "isExpired",
    "creatorUa",
    "generatedBy",
    "lastUsed",
    "label",
    "scopes",
    "uuid",
}
ACCESS = {
    "repositories": {
        "**": {"defaultPolicy": ["read"]},
        "alice/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
        "devs/**": {"policies": [{"groups": ["devs"], "actions": ["read", "create"]}]},
    },
    "groups": {"devs": {"users": ["carol"]}},
}


def http_config(workdir: Path) -> dict[str, Any]:
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    return {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True}, "accessControl": ACCESS}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("apikey")
    with start_registry(workdir, http_config(workdir), name="apikey", workers=2) as proc:
        yield proc


def make_key(registry: RegistryProcess, user: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{registry.url}{KEYS}", json=body, auth=basic(user))
    assert r.status_code == 201, r.text
    return dict(r.json())


def key_auth(user: str, created: dict[str, Any]) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, created["apiKey"])


def status_with(registry: RegistryProcess, auth: httpx.Auth, path: str = "/v2/") -> int:
    # A new connection each time: the two workers each get some of the requests.
    return httpx.get(f"{registry.url}{path}", auth=auth).status_code


def listed(registry: RegistryProcess, user: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{registry.url}{KEYS}", auth=basic(user))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return {key["uuid"]: key for key in r.json()["apiKeys"]}


def test_create_list_push_and_pull_with_a_key(registry: RegistryProcess) -> None:
    created = make_key(registry, "alice", label="ci", scopes=["read"])
    assert set(created) == DETAILS | {"apiKey"}
    assert re.fullmatch(r"zak_[0-9a-f]{32}", created["apiKey"])
    assert created["label"] == "ci" and created["scopes"] == ["read"]
    assert created["expirationDate"] == NEVER and created["isExpired"] is False
    assert created["generatedBy"] == "manual" and created["lastUsed"] == NEVER
    uuid.UUID(created["uuid"])
    shown = listed(registry, "alice")[created["uuid"]]
    assert set(shown) == DETAILS  # the key itself is shown once, at creation
    auth = key_auth("alice", created)
    with httpx.Client(base_url=registry.url, auth=auth) as client:
        image = push_image(client, f"alice/{unique_repo()}", "v1")
        r = client.get(manifest_path(image.repo, "v1"), headers={"accept": image.media_type})
        assert r.status_code == 200 and r.content == image.manifest
        # the user's access, no more: alice may not write where she may only read
        assert_error(client.post(f"/v2/{unique_repo()}/blobs/uploads/"), 403, "DENIED")
    assert all(status_with(registry, auth) == 200 for _ in range(6))  # on both workers
    used = wait_until(lambda: listed(registry, "alice")[created["uuid"]]["lastUsed"] != NEVER)
    assert used


def test_a_key_is_its_users_only(registry: RegistryProcess) -> None:
    created = make_key(registry, "alice")
    assert_error(
        httpx.get(f"{registry.url}/v2/", auth=key_auth("bob", created)), 401, "UNAUTHORIZED"
    )
    assert created["uuid"] not in listed(registry, "bob")
    # zot answers 200 to a DELETE of a key the caller does not have, and keeps the key
    r = httpx.delete(f"{registry.url}{KEYS}", params={"id": created["uuid"]}, auth=basic("bob"))
    assert r.status_code == 200
    assert status_with(registry, key_auth("alice", created)) == 200


def test_a_key_acts_with_the_groups_of_the_last_password_login(
    registry: RegistryProcess,
) -> None:
    created = make_key(registry, "carol")  # carol logged in with her password: devs noted
    with httpx.Client(base_url=registry.url, auth=key_auth("carol", created)) as client:
        push_image(client, f"devs/{unique_repo()}", "v1")


def test_a_revoked_key_is_refused_at_once(registry: RegistryProcess) -> None:
    created = make_key(registry, "alice")
    auth = key_auth("alice", created)
    assert status_with(registry, auth) == 200
    r = httpx.delete(f"{registry.url}{KEYS}", params={"id": created["uuid"]}, auth=basic("alice"))
    assert r.status_code == 200
    for _ in range(6):  # every worker, with no wait: keys are never remembered
        assert_error(httpx.get(f"{registry.url}/v2/", auth=auth), 401, "UNAUTHORIZED")
    assert created["uuid"] not in listed(registry, "alice")


def test_an_expired_key_is_refused(registry: RegistryProcess) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    created = make_key(registry, "alice", expirationDate=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    auth = key_auth("alice", created)
    assert created["expirationDate"] == soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status_with(registry, auth) == 200
    wait_until(lambda: status_with(registry, auth) == 401, timeout=10)
    assert listed(registry, "alice")[created["uuid"]]["isExpired"] is True


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"label": 3}',
        b'{"scopes": "read"}',
        b'{"scopes": [1]}',
        b'{"expirationDate": "tomorrow"}',
        b'{"expirationDate": "2030-01-01"}',
        b'{"expirationDate": 1893456000}',
        b'{"expirationDate": "2001-01-01T00:00:00Z"}',  # in the past
    ],
)
def test_malformed_creation_is_400(registry: RegistryProcess, body: bytes) -> None:
    r = httpx.post(f"{registry.url}{KEYS}", content=body, auth=basic("alice"))
    assert_error(r, 400, "API_KEY_REQUEST_INVALID")


def test_creation_body_over_8_kib_is_413(registry: RegistryProcess) -> None:
    r = httpx.post(f"{registry.url}{KEYS}", json={"label": "x" * 9000}, auth=basic("alice"))
    assert_error(r, 413, "API_KEY_REQUEST_TOO_LARGE")


@pytest.mark.parametrize("query", ["", "?id=a&id=b"])
def test_revoke_without_one_id_is_400(registry: RegistryProcess, query: str) -> None:
    r = httpx.delete(f"{registry.url}{KEYS}{query}", auth=basic("alice"))
    assert_error(r, 400, "QUERY_INVALID")


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_anonymous_and_wrong_credentials_are_401(registry: RegistryProcess, method: str) -> None:
    r = httpx.request(method, f"{registry.url}{KEYS}")
    assert_error(r, 401, "UNAUTHORIZED")
    bad = httpx.BasicAuth("alice", "zak_" + "0" * 32)
    assert_error(httpx.request(method, f"{registry.url}{KEYS}", auth=bad), 401, "UNAUTHORIZED")


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    with start_registry(tmp_path, http_config(tmp_path), name="apikey-restart") as proc:
        created = make_key(proc, "alice", label="kept")
        revoked = make_key(proc, "alice")
        httpx.delete(f"{proc.url}{KEYS}", params={"id": revoked["uuid"]}, auth=basic("alice"))
        proc.stop()
        proc.start()
        assert status_with(proc, key_auth("alice", created)) == 200
        assert status_with(proc, key_auth("alice", revoked)) == 401
        assert listed(proc, "alice")[created["uuid"]]["label"] == "kept"


def test_keys_on_redis(tmp_path: Path, redis_server: Redis) -> None:
    http = http_config(tmp_path)
    prefix = uuid.uuid4().hex[:8]
    with start_registry(tmp_path, http, name="apikey-redis", workers=2) as proc:
        proc.stop()
        storage = proc.config["storage"]
        storage["remoteCache"] = True
        storage["cacheDriver"] = {"name": "redis", "url": redis_server.url, "keyprefix": prefix}
        proc.start()
        created = make_key(proc, "carol", label="on-redis")
        auth = key_auth("carol", created)
        with httpx.Client(base_url=proc.url, auth=auth) as client:
            push_image(client, f"devs/{unique_repo()}", "v1")
        assert all(status_with(proc, auth) == 200 for _ in range(6))
        shown = wait_until(lambda: listed(proc, "carol")[created["uuid"]]["lastUsed"] != NEVER)
        assert shown
        assert created["uuid"] not in listed(proc, "alice")
        r = httpx.delete(f"{proc.url}{KEYS}", params={"id": created["uuid"]}, auth=basic("carol"))
        assert r.status_code == 200
        assert all(status_with(proc, auth) == 401 for _ in range(6))
        assert listed(proc, "carol") == {}


def test_a_directory_users_key_keeps_the_groups_of_their_login(tmp_path: Path) -> None:
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)  # alice: groups devs and ops, from the directory
        config = base_config(tmp_path / "root", workers=2)
        config["http"]["auth"] = {"ldap": ldap_keys(slapd, tmp_path), "apikey": True}
        config["http"]["accessControl"] = LDAP_ACCESS
        with running_registry(tmp_path, config) as proc:
            r = httpx.post(f"{proc.url}{KEYS}", json={}, auth=("alice", "wonderland"))
            assert r.status_code == 201, r.text
            slapd.stop()  # a key login asks the store, not the directory
            with httpx.Client(base_url=proc.url, auth=("alice", r.json()["apiKey"])) as client:
                push_image(client, "devs/app", "v1")
                assert_error(client.post("/v2/other/app/blobs/uploads/"), 403, "DENIED")


def test_a_directory_users_key_made_from_the_pages_has_their_groups(tmp_path: Path) -> None:
    """An LDAP user who logs in to the web pages only, as zot's UI does, and makes a key
    there (the API with the session cookie): the key acts with the directory's groups of
    that login, as zot's UI login notes them."""
    with running_slapd(tmp_path) as slapd:
        fill_directory(slapd)  # alice: groups devs and ops, from the directory
        config = base_config(tmp_path / "root", workers=1, extensions=UI)
        config["http"]["auth"] = {"ldap": ldap_keys(slapd, tmp_path), "apikey": True}
        config["http"]["accessControl"] = LDAP_ACCESS
        with running_registry(tmp_path, config) as proc:
            with httpx.Client(base_url=proc.url, timeout=30) as page:
                form = {"username": "alice", "password": "wonderland", "next": "/"}
                assert page.post("/ui/login", data=form).status_code == 303
                r = page.post(KEYS, json={}, headers={"X-ZOT-API-CLIENT": "zot-ui"})
                assert r.status_code == 201, r.text
            slapd.stop()  # a key login asks the store, not the directory
            with httpx.Client(base_url=proc.url, auth=("alice", r.json()["apiKey"])) as client:
                push_image(client, "devs/app", "v1")


def test_off_by_default_is_404(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}}}
    with start_registry(tmp_path, http, name="apikey-off") as proc:
        assert_error(httpx.get(f"{proc.url}{KEYS}", auth=basic("alice")), 404, "NOT_FOUND")
        key = httpx.BasicAuth("alice", "zak_" + "0" * 32)
        assert_error(httpx.get(f"{proc.url}/v2/", auth=key), 401, "UNAUTHORIZED")


@pytest.mark.clients
def test_skopeo_pushes_and_pulls_with_a_key(
    tools: Tools, registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=7)
    created = make_key(registry, "alice", label="skopeo")
    creds = f"alice:{created['apiKey']}"
    target = f"docker://{host(registry)}/alice/skopeo-key:v1"
    push(tools, src, target, creds)
    dst = tmp_path / "dst"
    skopeo(tools, "copy", "--src-tls-verify=false", "--src-creds", creds, target, f"oci:{dst}:v1")
    assert (dst / "index.json").exists()
    httpx.delete(f"{registry.url}{KEYS}", params={"id": created["uuid"]}, auth=basic("alice"))
    assert push(tools, src, target, creds, check=False).returncode != 0
