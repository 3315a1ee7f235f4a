"""Real clients against an authenticating ocireg: skopeo with --creds and podman login
(htpasswd), skopeo through the token flow (bearer), and anonymous pulls of what an
authenticated user pushed (anonymousPolicy)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import (
    PASSWORDS,
    SERVICE,
    TokenServer,
    start_registry,
    write_htpasswd,
)
from tests.clients.conftest import Tools, require
from tests.clients.layout import build_image_layout
from tests.support.oci import assert_error
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("clients-basic")
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    http = {
        "auth": {"htpasswd": {"path": str(htpasswd)}},
        "accessControl": {
            "repositories": {
                "**": {"defaultPolicy": ["read", "create", "update"]},
                "open/**": {
                    "anonymousPolicy": ["read"],
                    "defaultPolicy": ["read", "create", "update"],
                },
            }
        },
    }
    with start_registry(workdir, http, name="clients-basic") as proc:
        yield proc


@pytest.fixture(scope="module")
def bearer_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RegistryProcess]:
    bearer = {"realm": token_server.realm, "service": SERVICE, "cert": str(token_server.files.cert)}
    workdir = tmp_path_factory.mktemp("clients-bearer")
    with start_registry(workdir, {"auth": {"bearer": bearer}}, name="clients-bearer") as proc:
        yield proc


def skopeo(tools: Tools, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tools.run([require("skopeo"), "--policy", str(tools.policy), *args], check=check)


def push(
    tools: Tools, src: Path, target: str, creds: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """skopeo copy of the layout's `v1` to `target`, with `user:password` if given."""
    auth = ["--dest-creds", creds] if creds else []
    return skopeo(
        tools, "copy", "--dest-tls-verify=false", *auth, f"oci:{src}:v1", target, check=check
    )


def pull(tools: Tools, target: str, dst: Path, creds: str | None = None) -> None:
    auth = ["--src-creds", creds] if creds else []
    skopeo(tools, "copy", "--src-tls-verify=false", *auth, target, f"oci:{dst}:v1")
    assert (dst / "index.json").exists()


def host(registry: RegistryProcess) -> str:
    return f"127.0.0.1:{registry.port}"


def test_skopeo_with_creds_pushes_and_anonymous_pulls(
    tools: Tools, basic_registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=51)
    target = f"docker://{host(basic_registry)}/open/skopeo:v1"
    refused = push(tools, src, target, check=False)
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "authentication" in refused.stderr.lower()
    push(tools, src, target, "alice:alice-pw")
    # open/** grants anonymous read: no credentials needed to pull it back.
    pull(tools, target, tmp_path / "dst")
    r = httpx.get(f"{basic_registry.url}/v2/open/skopeo/tags/list")
    assert r.status_code == 200 and r.json()["tags"] == ["v1"]


def test_skopeo_creds_on_a_private_repository(
    tools: Tools, basic_registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=52)
    target = f"docker://{host(basic_registry)}/private/skopeo:v1"
    push(tools, src, target, "bob:bob-pw")
    pull(tools, target, tmp_path / "dst", "carol:carol-pw")
    r = httpx.get(f"{basic_registry.url}/v2/private/skopeo/tags/list")
    assert_error(r, 401, "UNAUTHORIZED")
    wrong = skopeo(
        tools, "inspect", "--tls-verify=false", "--creds", "carol:wrong", target, check=False
    )
    assert wrong.returncode != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="podman with vfs and no daemon runs as root")
def test_podman_login_push_and_pull(
    tools: Tools, basic_registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=53)
    flags = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    podman = [require("podman"), *tools.storage_flags(), *flags]
    policy = f"--signature-policy={tools.policy}"
    registry = host(basic_registry)
    image = f"{registry}/podman/login:v1"
    login = [*podman, "login", "--tls-verify=false", "-u", "dave", "-p"]
    assert tools.run([*login, "nope", registry], check=False).returncode != 0
    tools.run([*login, "dave-pw", registry])
    tools.run([*podman, "pull", "-q", policy, f"oci:{src}:v1"])
    image_id = tools.run([*podman, "images", "-q", "--no-trunc"]).stdout.split()[0]
    tools.run([*podman, "push", "-q", policy, "--tls-verify=false", image_id, f"docker://{image}"])
    tools.run([*podman, "rmi", "-f", image_id])
    tools.run([*podman, "pull", "-q", policy, "--tls-verify=false", image])
    r = httpx.get(f"{basic_registry.url}/v2/podman/login/tags/list", auth=("dave", "dave-pw"))
    assert r.status_code == 200 and r.json()["tags"] == ["v1"]
    tools.run([*podman, "logout", registry])


def test_skopeo_through_the_token_flow(
    tools: Tools, bearer_registry: RegistryProcess, token_server: TokenServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_image_layout(src, "v1", seed=54)
    token_server.grants["alice"] = {"tokens/skopeo": ["pull", "push"]}
    token_server.grants["carol"] = {"tokens/skopeo": ["pull"]}
    target = f"docker://{host(bearer_registry)}/tokens/skopeo:v1"
    push(tools, src, target, "alice:alice-pw")
    pull(tools, target, tmp_path / "dst", "carol:carol-pw")
    scopes = {s for q in token_server.requests for s in q.get("scope", [])}
    assert "repository:tokens/skopeo:pull,push" in scopes
    # carol's tokens never carry push: her push is refused.
    refused = push(tools, src, target.replace(":v1", ":v2"), "carol:carol-pw", check=False)
    assert refused.returncode != 0
