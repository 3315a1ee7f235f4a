"""The same `storage.maxRepos` given to zot and to ocireg, the same pushes made: both refuse
the same manifests, with 429 TOOMANYREQUESTS naming the limit, and take the same ones; a
repository whose manifests were all deleted still counts in both."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    descriptor,
    encode_json,
    image_manifest,
    push_blob,
    push_manifest,
    random_bytes,
)
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


def _push(client: httpx.Client, repo: str, tag: str) -> tuple[httpx.Response, str]:
    config, layer = encode_json({"os": "linux", "tag": tag}), random_bytes(64)
    for blob in (config, layer):
        push_blob(client, repo, blob)
    body, digest = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
    return push_manifest(client, repo, tag, body), digest


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
                answers = [_answer(_push(c, "team/one", "v1")[0])]
                second, digest = _push(c, "team/two", "v1")
                answers.append(_answer(second))
                answers.append(_answer(_push(c, "team/three", "v1")[0]))  # one too many
                answers.append(_answer(_push(c, "team/one", "v2")[0]))  # holds manifests
                third, other = _push(c, "team/two", "v2")
                answers.append(_answer(third))
                for each in (digest, other):  # team/two empty again
                    answers.append((c.delete(f"/v2/team/two/manifests/{each}").status_code, "", ""))
                answers.append(_answer(_push(c, "team/three", "v1")[0]))
            found[kind] = answers
        finally:
            proc.stop()
    assert found["ocireg"] == found["zot"]
    assert found["zot"][2] == found["zot"][-1] == (429, "TOOMANYREQUESTS", "2")
