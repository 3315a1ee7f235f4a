"""http.accessControl with zot's rules: the longest matching glob chooses the rules; pull
needs read, a new tag or blob create, overwriting a tag update, deletes delete; refusals are
403 DENIED for users and 401 with the challenge for anonymous requests; the catalog lists only
what the caller may read.

Users (tests/auth/conftest.py): alice and bob are named by policies, carol is in group
`Devs`, dave is named nowhere (defaultPolicy only), root is the admin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.auth.conftest import (
    ACCESS_CONTROL,
    PASSWORDS,
    client_for,
    start_registry,
    write_htpasswd,
)
from tests.support.oci import (
    assert_error,
    blob_path,
    manifest_path,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    uploads_path,
)
from tests.support.server import RegistryProcess

REALM = "policy-test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("policy")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    http = {
        "realm": REALM,
        "auth": {"htpasswd": {"path": str(htpasswd)}},
        "accessControl": ACCESS_CONTROL,
    }
    with start_registry(workdir, http) as proc:
        yield proc


@pytest.fixture(scope="module")
def clients(registry: RegistryProcess) -> Iterator[dict[str | None, httpx.Client]]:
    users: list[str | None] = [None, *PASSWORDS]
    made = {u: client_for(registry, u) for u in users}
    yield made
    for c in made.values():
        c.close()


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def assert_denied(r: httpx.Response) -> None:
    assert_error(r, 403, "DENIED")
    assert "www-authenticate" not in r.headers


def assert_challenged(r: httpx.Response) -> None:
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers["www-authenticate"] == f'Basic realm="{REALM}"'


def test_ping_is_200_with_challenge_when_anonymous_may_read(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/v2/")
    assert r.status_code == 200, r.text
    assert r.headers["www-authenticate"] == f'Basic realm="{REALM}"'


def test_anonymous_reads_public_but_cannot_push(clients: dict[str | None, httpx.Client]) -> None:
    repo = unique("public")
    image = push_image(clients["dave"], repo, "v1")  # defaultPolicy of public/**: create
    anonymous = clients[None]
    r = anonymous.get(manifest_path(repo, "v1"))
    assert r.status_code == 200, r.text
    assert r.content == image.manifest
    assert anonymous.get(blob_path(repo, image.descriptor()["digest"])).status_code == 200
    assert_challenged(anonymous.post(uploads_path(repo)))
    assert_challenged(anonymous.delete(manifest_path(repo, "v1")))
    assert_challenged(anonymous.get(manifest_path(unique("team"), "v1")))
    assert_challenged(anonymous.get(manifest_path(unique("other"), "v1")))


def test_empty_basic_credentials_are_anonymous(clients: dict[str | None, httpx.Client]) -> None:
    """containers/image sends `Basic Og==` (":") when it has no credentials."""
    repo = unique("public")
    push_image(clients["root"], repo, "v1")
    empty = {"Authorization": "Basic Og=="}
    assert clients[None].get(manifest_path(repo, "v1"), headers=empty).status_code == 200
    assert_challenged(clients[None].post(uploads_path(repo), headers=empty))


def test_named_user_reads_and_creates_but_needs_update_to_overwrite(
    clients: dict[str | None, httpx.Client],
) -> None:
    repo = unique("team")
    alice = clients["alice"]
    first = push_image(alice, repo, "v1")  # create: the tag is new
    r = alice.get(manifest_path(repo, "v1"))
    assert r.status_code == 200 and r.content == first.manifest
    second = push_image(alice, repo)  # by digest: create
    assert_denied(push_manifest(alice, repo, "v1", second.manifest))  # update: refused
    assert alice.get(manifest_path(repo, "v1")).content == first.manifest
    assert push_manifest(alice, repo, "v2", second.manifest).status_code == 201
    assert_denied(alice.delete(manifest_path(repo, "v2")))


def test_update_and_delete_when_granted(clients: dict[str | None, httpx.Client]) -> None:
    repo = unique("team")
    bob = clients["bob"]
    push_image(bob, repo, "v1")
    second = push_image(bob, repo)
    assert push_manifest(bob, repo, "v1", second.manifest).status_code == 201
    assert bob.get(manifest_path(repo, "v1")).content == second.manifest
    assert bob.delete(manifest_path(repo, "v1")).status_code == 202
    data, digest = random_blob()
    push_blob(bob, repo, data)
    assert bob.delete(blob_path(repo, digest)).status_code == 202


def test_group_members_get_the_group_policy(clients: dict[str | None, httpx.Client]) -> None:
    repo = unique("team")
    push_image(clients["bob"], repo, "v1")
    carol = clients["carol"]
    assert carol.get(manifest_path(repo, "v1")).status_code == 200
    assert carol.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
    assert_denied(carol.post(uploads_path(repo)))
    assert_denied(carol.delete(manifest_path(repo, "v1")))


def test_default_policy_applies_to_users_named_nowhere(
    clients: dict[str | None, httpx.Client],
) -> None:
    dave = clients["dave"]
    other = unique("other")
    push_image(clients["root"], other, "v1")
    assert dave.get(manifest_path(other, "v1")).status_code == 200
    assert_denied(dave.post(uploads_path(other)))
    team = unique("team")
    push_image(clients["root"], team, "v1")
    # team/* matches and has an empty defaultPolicy: the `**` rule does not add to it.
    assert_denied(dave.get(manifest_path(team, "v1")))


def test_longest_glob_wins(clients: dict[str | None, httpx.Client]) -> None:
    push_image(clients["root"], "team/secret", "v1")
    # team/* would let alice read; team/secret is longer and names only bob.
    assert_denied(clients["alice"].get(manifest_path("team/secret", "v1")))
    assert_denied(clients["carol"].get(manifest_path("team/secret", "v1")))
    assert clients["bob"].get(manifest_path("team/secret", "v1")).status_code == 200
    assert_denied(clients["bob"].post(uploads_path("team/secret")))


def test_admin_policy_applies_everywhere(clients: dict[str | None, httpx.Client]) -> None:
    root = clients["root"]
    for repo in (unique("team"), unique("other"), "team/secret"):
        push_image(root, repo, "admin")
        second = push_image(root, repo)
        assert push_manifest(root, repo, "admin", second.manifest).status_code == 201
        assert root.get(manifest_path(repo, "admin")).status_code == 200
        assert root.delete(manifest_path(repo, "admin")).status_code == 202


def test_blob_uploads_need_create(clients: dict[str | None, httpx.Client]) -> None:
    repo = unique("team")
    r = clients["alice"].post(uploads_path(repo))
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert_denied(clients["carol"].patch(location, content=b"x"))
    assert_denied(clients["carol"].post(uploads_path(repo)))


def test_mount_needs_read_on_the_source(clients: dict[str | None, httpx.Client]) -> None:
    root, alice = clients["root"], clients["alice"]
    data, digest = random_blob()
    push_blob(root, "team/secret", data)
    target = unique("team")
    r = alice.post(uploads_path(target), params={"mount": digest, "from": "team/secret"})
    assert_denied(r)
    readable = unique("team")
    push_blob(root, readable, data)
    r = alice.post(uploads_path(target), params={"mount": digest, "from": readable})
    assert r.status_code == 201, r.text


def test_catalog_lists_only_readable_repositories(
    clients: dict[str | None, httpx.Client],
) -> None:
    root = clients["root"]
    repos = {"public": unique("public"), "team": unique("team"), "other": unique("other")}
    for repo in repos.values():
        push_image(root, repo, "v1")
    push_image(root, "team/secret", "v1")

    def catalog(user: str | None) -> set[str]:
        r = clients[user].get("/v2/_catalog")
        assert r.status_code == 200, r.text
        return set(r.json()["repositories"])

    assert {repos["public"]} <= catalog(None)
    assert not catalog(None) & {repos["team"], repos["other"], "team/secret"}
    assert {repos["public"], repos["other"]} <= catalog("dave")
    assert not catalog("dave") & {repos["team"], "team/secret"}
    assert {repos["team"], repos["public"], repos["other"]} <= catalog("alice")
    assert "team/secret" not in catalog("alice")
    assert {*repos.values(), "team/secret"} <= catalog("bob")
    assert {*repos.values(), "team/secret"} <= catalog("root")


def test_catalog_pages_count_only_visible_repositories(
    clients: dict[str | None, httpx.Client],
) -> None:
    push_image(clients["root"], unique("public"), "v1")
    push_image(clients["root"], unique("other"), "v1")
    r = clients[None].get("/v2/_catalog", params={"n": 1})
    assert r.status_code == 200, r.text
    page = r.json()["repositories"]
    assert len(page) == 1 and page[0].startswith("public/")


def test_invalid_repository_name_is_name_invalid(clients: dict[str | None, httpx.Client]) -> None:
    assert_error(clients["root"].get("/v2/Bad..Name/tags/list"), 400, "NAME_INVALID")


# --- one reading of the mount source (the access check and the handler cannot disagree) ---


@pytest.mark.parametrize(
    "query",
    [
        "mount={digest}&from={readable}&from=team/secret",  # first value readable, last not
        "mount={digest}&from=team/secret&from={readable}",
        "mount={digest}&from={readable}&%66rom=team/secret",  # the same key, encoded
        "mount={digest}&%66rom={readable}&from=team/secret",
        "mount={digest}&mount={digest}&from=team/secret",
    ],
)
def test_end11_mount_with_two_sources_is_refused_and_copies_nothing(
    clients: dict[str | None, httpx.Client], query: str
) -> None:
    root, alice = clients["root"], clients["alice"]
    data, digest = random_blob()
    push_blob(root, "team/secret", data)  # alice may not read team/secret
    readable = unique("team")
    push_image(root, readable, "v1")  # ...but may read this one
    target = unique("team")
    url = uploads_path(target) + "?" + query.format(digest=digest, readable=readable)
    r = alice.post(url)
    assert_error(r, 400, "QUERY_INVALID")
    assert_error(root.get(blob_path(target, digest)), 404, "BLOB_UNKNOWN")
    assert_error(alice.get(blob_path(target, digest)), 404, "BLOB_UNKNOWN")


def test_end11_mount_source_checked_is_the_source_mounted(
    clients: dict[str | None, httpx.Client],
) -> None:
    root, alice = clients["root"], clients["alice"]
    data, digest = random_blob()
    push_blob(root, "team/secret", data)
    target = unique("team")
    # percent-encoded source name: decoded once, so the check and the mount see team/secret
    assert_denied(alice.post(uploads_path(target) + f"?mount={digest}&from=team%2Fsecret"))
    assert_error(root.get(blob_path(target, digest)), 404, "BLOB_UNKNOWN")


def test_names_inside_another_repository_are_invalid_for_everyone(
    clients: dict[str | None, httpx.Client],
) -> None:
    root = clients["root"]
    repo = unique("team")
    push_image(root, repo, "v1")
    for inner in ("blobs", "index.json", "oci-layout", "blobs/sha256"):
        assert_error(root.post(uploads_path(f"{repo}/{inner}")), 400, "NAME_INVALID")
