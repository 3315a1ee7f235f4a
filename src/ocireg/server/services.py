"""Building the services a worker (or a maintenance command) needs from the config, and
checking that the backends answer before the server takes requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from ocireg.config import Config
from ocireg.events import Recorder
from ocireg.meta import MetaUnavailable
from ocireg.meta.factory import create_meta
from ocireg.registry import ImageStore
from ocireg.registry.layout import PRIVATE_DIR, REPOSITORY_ENTRIES
from ocireg.settings.subpaths import sub_path_of
from ocireg.storage import StorageUnavailable
from ocireg.storage.factory import create_storage

CHECK_TIMEOUT = 15.0


def lock_dir(config: Config) -> Path:
    return config.storage.root_directory / PRIVATE_DIR / "locks"


def replay_dir(config: Config) -> Path:
    """Where the worker processes of this instance note the hop proofs they accepted."""
    return config.storage.root_directory / PRIVATE_DIR / "proofs"


def build_store(config: Config) -> ImageStore:
    zot_root = config.s3.rootdirectory if config.s3 is not None else ""
    meta = create_meta(config)
    storage = create_storage(config, REPOSITORY_ENTRIES)
    store = ImageStore(
        storage.driver,
        storage.sessions,
        lock_dir(config),
        meta,
        zot_root,
        config.search.enabled,
        dedupe_rule(config),
        config.lint.mandatory_annotations,
    )
    if sole_sqlite_writer(config) or (config.redis is not None and on_s3_somewhere(config)):
        store.indexes.versions.keep()
    if on_s3_somewhere(config):
        # the catalog index holds where every writer of the bucket keeps it: Redis
        store.meta_shared = config.redis is not None
    store.storage_layout = storage_layout(config)
    store.quota.limit = config.storage.max_repos
    if config.events.sinks:
        from ocireg.events.sinks import sink_of  # their libraries: imported only when needed

        store.events = Recorder([sink_of(sink) for sink in config.events.sinks])
    return store


def storage_layout(config: Config) -> str:
    """The sub paths' routes and directories, as one text ("" without sub paths)."""
    if not config.sub_paths:
        return ""
    roots = {f"/{sub.route}": sub.location for sub in config.sub_paths}
    return json.dumps(roots, sort_keys=True)


def dedupe_rule(config: Config) -> Callable[[str], str | None]:
    """A repository's dedupe area (registry/blobs.py): its sub path's route when the sub
    path dedupes, "" when it is the default storage's and `storage.dedupe` is on, else None
    (uploads there keep their own copy, as they always do on S3: hard links are local)."""

    def area(repo: str) -> str | None:
        sub = sub_path_of(config.sub_paths, repo)
        if sub is not None:
            return sub.route if sub.dedupe and sub.s3 is None else None
        return "" if config.storage.dedupe and config.s3 is None else None

    return area


def on_s3_somewhere(config: Config) -> bool:
    """Whether some repositories are on S3: the default storage, or a sub path's."""
    return config.s3 is not None or any(sub.s3 is not None for sub in config.sub_paths)


def dedupes_on_disk(config: Config) -> bool:
    """Whether a storage on local disk dedupes (zot's start-up dedupe: ops/dedupe.py)."""
    default = config.s3 is None and config.storage.dedupe
    return default or any(sub.dedupe and sub.s3 is None for sub in config.sub_paths)


def sole_sqlite_writer(config: Config) -> bool:
    """S3 with the embedded sqlite store, where the user says this instance is the bucket
    prefix's only writer (`solewriter`): all its processes (workers, the CLI) share one
    sqlite file, so they can all keep the index-version keys there and reads need no request
    to the bucket (registry/versions.py); with sub paths, only when each is on S3 and says
    so too. Not in a cluster: each member has a file of its own, and the others' writes
    would go unseen for up to VERSION_TTL."""
    return (
        config.s3 is not None
        and config.s3.solewriter
        # ...and of every sub path's (each on S3 and saying so: a key kept for a repository
        # on disk, or in a bucket others write, would hide their writes)
        and all(sub.s3 is not None and sub.s3.solewriter for sub in config.sub_paths)
        and config.redis is None
        and config.cluster is None
    )


async def check_backends(config: Config) -> str | None:
    """None when storage and the metadata store answer, else what is wrong (with the
    endpoint), within CHECK_TIMEOUT seconds."""
    store = build_store(config)
    try:
        await asyncio.wait_for(store.driver.health(), CHECK_TIMEOUT)
        await asyncio.wait_for(store.meta.health(), CHECK_TIMEOUT)
    except (StorageUnavailable, MetaUnavailable) as exc:
        return str(exc)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:.0f}s from the storage or metadata backend"
    finally:
        await store.close()
    return None
