"""zot and ocireg answer the same requests alike, except for the differences docs/api.md
lists ("Where ocireg answers differently from zot"): each of those must still differ (so the
list stays true) and every other probe must give the same status, error code and headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.interop.probes import PROBES, Answer, prepare, run_all
from tests.support.server import RegistryProcess, base_config
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow

# probe -> the item of docs/api.md that explains it
KNOWN = {
    "base": "empty /v2/ body",
    "manifest_in_unknown_repo": "unknown repository on manifest requests",
    "name_uppercase": "invalid names",
    "put_manifest_blob_unknown": "manifest error codes",
    "put_manifest_digest_mismatch": "manifest error codes",
    "blob_get": "blob Content-Type",
    "blob_head": "blob Content-Type",
    "blob_range": "blob Content-Type",
    "blob_range_suffix": "blob Content-Type",
    "base_head": "HEAD /v2/",
    "docker_manifest_list": "Docker media types",
    "blob_range_unsatisfiable": "error bodies",
    "blob_delete": "extra headers",
    "upload_start": "extra headers",
    "upload_patch": "extra headers",
    "upload_status": "extra headers",
    "upload_monolithic_post": "extra headers",
    "mount_from_other": "extra headers",
    "mount_unknown_blob": "extra headers",
    "upload_out_of_order_chunk": "extra headers",
    "upload_put_without_digest": "error bodies",
    "mount_blob_source_lacks": "mounts",
    "mount_without_from": "mounts",
    "tags_list_n_invalid": "error bodies",
    "tags_list_n_negative": "error bodies",
    "catalog_n_invalid": "catalog n",
    "catalog_page": "catalog Link",
    "referrers_malformed_digest": "error bodies",
    "unknown_endpoint": "error bodies",
    "method_not_allowed": "error bodies",
}


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Answer]]]:
    workdir: Path = tmp_path_factory.mktemp("differences")
    procs = {
        "zot": ZotProcess(workdir, zot_config(base_config(workdir / "zot")), name="zot"),
        "ocireg": RegistryProcess(workdir, base_config(workdir / "ocireg", workers=1)),
    }
    out: dict[str, dict[str, Answer]] = {}
    try:
        for name, proc in procs.items():
            proc.start()
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                out[name] = run_all(client, prepare(client, "probe/repo", "probe/other"))
        yield out
    finally:
        for proc in procs.values():
            proc.stop()


def test_every_known_difference_names_a_probe() -> None:
    assert set(KNOWN) <= set(PROBES)


@pytest.mark.parametrize("name", list(PROBES))
def test_same_answer_unless_listed(name: str, answers: dict[str, dict[str, Answer]]) -> None:
    zot, ocireg = answers["zot"][name], answers["ocireg"][name]
    assert ocireg.status >= 0, f"the probe broke on ocireg: {ocireg.show()}"
    assert ocireg.status < 500, ocireg.show()
    if name in KNOWN:
        assert zot != ocireg, f"listed as a difference ({KNOWN[name]}) but both: {zot.show()}"
    else:
        assert zot == ocireg, f"\n   zot:    {zot.show()}\n   ocireg: {ocireg.show()}"
