"""The same `extensions.lint` given to zot and to ocireg, the same pushes made: both refuse
the same ones (400 MANIFEST_INVALID naming the same missing keys) and keep the same tags."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.lint import LINT, MANDATORY, lint_pushes, missing_of, push
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


def test_zot_and_ocireg_refuse_the_same_manifests(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        proc = zot_or_ocireg(kind, workdir, base_config(workdir / "root", extensions=LINT))
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as c:
                statuses = lint_pushes(c, "team/app")
                refused = push(c, "team/app", "bare")[0]
                listed = c.get("/v2/team/app/tags/list").json()["tags"]
            # each run's cosign tag names its own (random) digest
            tags = sorted("<cosign>" if t.endswith(".sig") and len(t) > 70 else t for t in listed)
            found[kind] = (statuses, refused.status_code, sorted(missing_of(refused)), tags)
        finally:
            proc.stop()
    assert found["ocireg"] == found["zot"]
    assert found["zot"][1:3] == (400, sorted(MANDATORY))
