"""The same `storage.maxRepos` given to zot and to ocireg, the same pushes made: both refuse
the same manifests, with 429 TOOMANYREQUESTS naming the limit, and take the same ones; a
repository whose manifests were all deleted still counts in both."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.oci import push_small_image, sha256_digest
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


def _answer(r: httpx.Response) -> tuple[int, str, str]:
    if r.status_code < 300:
        return r.status_code, "", ""
    error = r.json()["errors"][0]
    return r.status_code, error["code"], error.get("detail", {}).get("limit", "")


def test_zot_and_ocireg_refuse_the_same_pushes(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        config = base_config(workdir / "root")
        config["storage"]["maxRepos"] = 2
        proc = zot_or_ocireg(kind, workdir, config)
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as c:
                answers = [_answer(push_small_image(c, "team/one", "v1")[0])]
                second, body = push_small_image(c, "team/two", "v1")
                answers.append(_answer(second))
                # one too many
                answers.append(_answer(push_small_image(c, "team/three", "v1")[0]))
                # one that holds manifests takes more
                answers.append(_answer(push_small_image(c, "team/one", "v2")[0]))
                third, more = push_small_image(c, "team/two", "v2")
                answers.append(_answer(third))
                digest, other = (sha256_digest(b) for b in (body, more))
                for each in (digest, other):  # team/two empty again
                    answers.append((c.delete(f"/v2/team/two/manifests/{each}").status_code, "", ""))
                answers.append(_answer(push_small_image(c, "team/three", "v1")[0]))
            found[kind] = answers
        finally:
            proc.stop()
    assert found["ocireg"] == found["zot"]
    assert found["zot"][2] == found["zot"][-1] == (429, "TOOMANYREQUESTS", "2")
