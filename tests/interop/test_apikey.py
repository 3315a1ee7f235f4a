"""The same API-key sequence (`http.auth.apikey`) against zot and ocireg: the same statuses,
and answers of the same shape (field names and JSON types); a key used as a Basic password
works, another user's name with it does not, a revoked or expired key is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, basic, write_htpasswd
from tests.support.server import base_config, wait_until
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow
KEYS = "/zot/auth/apikey"


def _shape(value: Any) -> Any:
    """Field names and JSON types, not values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):  # zot lists keys in no set order: each shape once, sorted
        shapes = {repr(_shape(item)): _shape(item) for item in value}
        return [shapes[key] for key in sorted(shapes)]
    return type(value).__name__


def _sequence(c: httpx.Client) -> list[Any]:
    seen: list[Any] = [c.get(KEYS).status_code]  # anonymous
    r = c.post(KEYS, json={"label": "ci", "scopes": ["read"]}, auth=basic("alice"))
    created = r.json()
    seen += [r.status_code, _shape(created)]
    r = c.post(KEYS, json={"label": "bare"}, auth=basic("alice"))
    seen += [r.status_code, _shape(r.json())]  # scopes not given: null in both
    r = c.get(KEYS, auth=basic("alice"))
    seen += [r.status_code, _shape(r.json()), len(r.json()["apiKeys"])]
    key = httpx.BasicAuth("alice", created["apiKey"])
    seen.append(c.get("/v2/", auth=key).status_code)
    seen.append(c.get(KEYS, auth=key).status_code)  # a key may manage keys too
    seen.append(c.get("/v2/", auth=httpx.BasicAuth("bob", created["apiKey"])).status_code)
    seen.append(c.get("/v2/", auth=httpx.BasicAuth("alice", "zak_" + "0" * 32)).status_code)
    r = c.get(KEYS, auth=basic("bob"))
    seen += [r.status_code, r.json()]
    past = "2001-01-01T00:00:00Z"
    for body in (b"not json", b'{"expirationDate": "tomorrow"}', f'{{"expirationDate": "{past}"}}'):
        seen.append(c.post(KEYS, content=body, auth=basic("alice")).status_code)
    seen.append(c.post(KEYS, json={"label": "x" * 9000}, auth=basic("alice")).status_code)
    seen.append(c.post(KEYS, content=b"null", auth=basic("alice")).status_code)  # Go: no fields
    seen.append(c.post(KEYS, content=b"{}", auth=basic("alice")).status_code)
    seen.append(c.delete(KEYS, auth=basic("alice")).status_code)  # no id
    seen.append(c.delete(KEYS, params={"id": created["uuid"]}, auth=basic("bob")).status_code)
    seen.append(c.get("/v2/", auth=key).status_code)  # still alice's
    seen.append(c.delete(KEYS, params={"id": created["uuid"]}, auth=basic("alice")).status_code)
    seen.append(c.get("/v2/", auth=key).status_code)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = c.post(KEYS, json={"expirationDate": soon}, auth=basic("alice"))
    seen += [r.status_code, r.json()["expirationDate"] == soon]
    expiring = httpx.BasicAuth("alice", r.json()["apiKey"])
    seen.append(c.get("/v2/", auth=expiring).status_code)
    wait_until(lambda: c.get("/v2/", auth=expiring).status_code == 401, timeout=10)
    listed = c.get(KEYS, auth=basic("alice")).json()["apiKeys"]
    seen.append(sorted(k["isExpired"] for k in listed))
    seen.append(c.put(KEYS, auth=basic("alice")).status_code)
    return seen


def test_zot_and_ocireg_answer_the_same_sequence(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
        config = base_config(workdir / "root")
        config["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}, "apikey": True}
        proc = zot_or_ocireg(kind, workdir, config)
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as c:
                found[kind] = _sequence(c)
        finally:
            proc.stop()
    for step, (zot, ours) in enumerate(zip(found["zot"], found["ocireg"], strict=True)):
        assert ours == zot, f"step {step}: zot {zot!r}, ocireg {ours!r}"
