"""CORS, with a real browser: a page served from another origin (another port of the
loopback) calls the API with `fetch`, as a registry UI hosted apart does. zot allows any
origin by default; `http.allowOrigin` names them, and lets a login go along."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, basic, write_htpasswd
from tests.support.oci import push_image
from tests.support.server import base_config, running_registry, wait_until

# `fetch` from the page: the status, the JSON body, and a header outside CORS's safelist.
FETCH = """async ([url, auth]) => {
    const headers = auth ? {Authorization: auth} : {};
    try {
        const r = await fetch(url, {headers});
        return [r.status, await r.json(), r.headers.get("Docker-Content-Digest")];
    } catch (e) {
        return ["refused", String(e), null];
    }
}"""


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty page on its own port: another origin than any registry's."""
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text("<!doctype html><title>elsewhere</title>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def preflight(url: str, origin: str, method: str = "GET") -> httpx.Headers:
    """A browser's preflight for a request with a login; the answer's headers."""
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization",
    }
    return httpx.options(url, headers=headers).headers


def fetch(page: Any, origin: str, url: str, user: str | None = None) -> list[Any]:
    page.goto(origin + "/index.html")
    auth = None
    if user is not None:
        auth = "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    result: list[Any] = page.evaluate(FETCH, [url, auth])
    return result


def test_any_origin_may_read_by_default(tmp_path: Path, page: Any, other_origin: str) -> None:
    with running_registry(tmp_path, base_config(tmp_path / "root", workers=1)) as proc:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            image = push_image(c, "web/app", "v1")
            # registry clients send no Origin: their answers carry no CORS headers
            plain = c.get("/v2/web/app/manifests/v1").headers
            assert "access-control-allow-origin" not in plain and "vary" not in plain
        status, body, _ = fetch(page, other_origin, f"{proc.url}/v2/web/app/tags/list")
        assert (status, body) == (200, {"name": "web/app", "tags": ["v1"]})
        status, body, digest = fetch(page, other_origin, f"{proc.url}/v2/web/app/manifests/v1")
        assert (status, digest) == (200, image.digest)


def test_allowed_origins_may_send_a_login_and_no_other_may(
    tmp_path: Path, page: Any, other_origin: str
) -> None:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["auth"] = {
        "htpasswd": {"path": str(write_htpasswd(tmp_path / "users", PASSWORDS))}
    }
    config["http"]["allowOrigin"] = f"http://ui.invalid,{other_origin}"
    with running_registry(tmp_path, config) as proc:
        with httpx.Client(base_url=proc.url, timeout=30, auth=basic("alice")) as c:
            push_image(c, "team/app", "v1")
        url = f"{proc.url}/v2/team/app/tags/list"
        status, body, _ = fetch(page, other_origin, url, user="alice")
        assert (status, body) == (200, {"name": "team/app", "tags": ["v1"]})
        # without the login: the registry's own 401, readable by the page
        status, body, _ = fetch(page, other_origin, url)
        assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"
        # a page of an origin not named: the browser is told nothing it may use
        assert "access-control-allow-origin" not in preflight(url, "http://elsewhere.invalid")
        allowed = preflight(url, other_origin)
        assert allowed["access-control-allow-origin"] == other_origin
        assert allowed["access-control-allow-credentials"] == "true"


def test_a_wildcard_among_named_origins_is_any_origin_without_credentials(
    tmp_path: Path,
) -> None:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["auth"] = {
        "htpasswd": {"path": str(write_htpasswd(tmp_path / "users", PASSWORDS))}
    }
    config["http"]["allowOrigin"] = "http://ui.invalid, *"
    with running_registry(tmp_path, config) as proc:
        r = preflight(f"{proc.url}/v2/_catalog", "http://elsewhere.invalid", "DELETE")
        assert r["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r


def test_a_preflight_has_a_request_id_and_an_access_log_line(tmp_path: Path) -> None:
    with running_registry(tmp_path, base_config(tmp_path / "root", workers=1)) as proc:
        answer = preflight(f"{proc.url}/v2/web/app/tags/list", "http://ui.invalid")
        assert answer["access-control-allow-origin"] == "*"
        rid = answer["x-request-id"]

        def logged() -> dict[str, Any] | None:
            for line in proc.log_path.read_text().splitlines():
                if rid in line and '"ocireg.access"' in line:
                    entry: dict[str, Any] = json.loads(line)
                    return entry
            return None

        entry = wait_until(logged, timeout=10)
        assert (entry["method"], entry["path"], entry["status"]) == (
            "OPTIONS",
            "/v2/web/app/tags/list",
            200,
        )
