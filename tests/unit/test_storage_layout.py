"""The sub paths' layout noted in the metadata store (`ImageStore.check_storage_layout`):
a change empties the store once; a store that could not be emptied is emptied at the next
start, not forgotten (the layout noted before is put back)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocireg.config import build_config
from ocireg.meta import MetaUnavailable
from ocireg.meta.sqlite import SqliteMeta
from ocireg.server.services import build_store, storage_layout


class ClearFailsOnce(SqliteMeta):
    """The real sqlite store, whose first `clear` fails as a locked database would."""

    failed = False

    async def clear(self) -> None:
        if not self.failed:
            self.failed = True
            raise MetaUnavailable("sqlite: database is locked")
        await super().clear()


def test_a_change_not_acted_on_is_seen_again_at_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sub = {"/team": {"rootDirectory": str(tmp_path / "team")}}
    plain = build_config({"storage": {"rootDirectory": str(root)}})
    with_team = build_config({"storage": {"rootDirectory": str(root), "subPaths": sub}})

    async def run() -> None:
        first = build_store(plain)
        assert not await first.check_storage_layout()  # nothing noted before, no sub paths
        await first.meta.add_repository("team/app")
        await first.close()
        store = build_store(with_team)
        store.meta = meta = ClearFailsOnce(root / ".ocireg" / "meta.db")
        assert not await store.check_storage_layout()  # the change, not acted on
        assert await meta.repositories_after("", 10) == ["team/app"]
        assert await store.check_storage_layout()  # the next start empties the store
        assert await meta.repositories_after("", 10) == []
        assert not await store.check_storage_layout()  # and only once
        await store.close()

    asyncio.run(run())


def test_a_sub_path_on_s3_is_noted_by_its_endpoint_bucket_and_prefix(tmp_path: Path) -> None:
    """Moving a sub path to another prefix, bucket or endpoint is a change of layout (its
    repositories are elsewhere); a local `rootDirectory` beside its driver is not."""

    def layout(root: str = "/a", local: str = "cache", **keys: str) -> str:
        driver = {"name": "s3", "bucket": "b", "rootdirectory": root, **keys}
        sub = {"/a": {"storageDriver": driver, "rootDirectory": str(tmp_path / local)}}
        storage = {"rootDirectory": str(tmp_path / "root"), "subPaths": sub}
        return storage_layout(build_config({"storage": storage}))

    noted = layout()
    assert "b/a/a/" in noted
    assert layout() == noted == layout(local="another-cache")
    for other in (layout("/b"), layout(bucket="c"), layout(regionendpoint="http://h:9")):
        assert other != noted
