"""The same `log.audit` given to zot and to ocireg, the same changes made: both audit files
hold the same entries (action, object, status, subject, in order) under zot's field names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import push_image
from tests.support.server import base_config, wait_until
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow

SESSION = re.compile(r"/blobs/uploads/[^/?]+")
DIGEST = re.compile(r"sha256(:|%3A)[0-9a-f]{64}")  # each run pushes random bytes


def audited(path: Path) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [
        (e["action"], _plain(e["object"]), e["status"], e["subject"])
        for e in lines
        if e.get("message") == "HTTP API Audit"
    ]


def _plain(path: str) -> str:
    return DIGEST.sub("<digest>", SESSION.sub("/blobs/uploads/<id>", path))


def test_zot_and_ocireg_audit_the_same_changes(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        audit = workdir / "audit.log"
        config = base_config(workdir / "root", workers=2)
        config["log"]["audit"] = str(audit)
        proc = zot_or_ocireg(kind, workdir, config)
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as c:
                push_image(c, "team/app", "v1")
                assert c.get("/v2/team/app/tags/list").status_code == 200
                assert c.delete("/v2/team/app/manifests/v1").status_code == 202
            found[kind] = wait_until(lambda a=audit: len(audited(a)) >= 6 and audited(a))
        finally:
            proc.stop()
    assert found["ocireg"] == found["zot"]
    assert found["zot"][-1] == ("DELETE", "/v2/team/app/manifests/v1", 202, "anonymous")
