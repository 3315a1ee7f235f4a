"""A manifest delete and an index put naming that manifest, in one write of the index
(registry/writer.py gathers the jobs that arrive together): never both. Either the index
names a manifest that is there, or the manifest went and the index was refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocireg.errors import ErrorCode, RegistryError
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, image_index
from tests.unit.test_gc import Registry


def test_an_index_put_and_its_childs_delete_in_one_write_never_both_succeed(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path)
    try:
        _race(registry)
    finally:
        registry.close()


def _race(registry: Registry) -> None:
    store = registry.store
    outcomes = set()
    for round_ in range(20):
        repo = f"race/r{round_}"
        child, _ = registry.image(repo, "child")
        body, index = image_index([{"mediaType": OCI_MANIFEST, "digest": child, "size": 1}])

        async def both(body: bytes = body, child: str = child, repo: str = repo) -> list[object]:
            return await asyncio.gather(
                store.put_manifest(repo, "multi", body, OCI_INDEX),
                store.delete_manifest(repo, child),
                return_exceptions=True,
            )

        put, delete = registry.run(both())
        listed = registry.index_digests(repo)
        if isinstance(put, RegistryError):
            assert put.code is ErrorCode.MANIFEST_BLOB_UNKNOWN, put
            assert delete is None and child not in listed and index not in listed
            outcomes.add("index refused")
        else:
            assert isinstance(delete, RegistryError), "both succeeded: the index names nothing"
            assert delete.code is ErrorCode.MANIFEST_REFERENCED, delete
            assert {child, index} <= listed
            outcomes.add("delete refused")
    assert outcomes  # at least one round ran either way
