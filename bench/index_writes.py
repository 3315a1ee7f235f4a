"""`python -m bench.index_writes [--tags 10000] [--writes 200]`: the cost of one index.json
write at a given number of tags, without HTTP: two `IndexCache`s over one root (as two
workers) take turns writing a batch of 3 new tags, so each write first brings its cache up
to the other's last write through the journal, as in workload 9. Prints the median wall
time and process CPU time per write. Standalone (not in the table): it measures the write
path alone, which moves less with other load on the machine than the HTTP workload does.

PYTHONPATH picks the code measured (`PYTHONPATH=<checkout>/src`), so two checkouts can be
run one after the other in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BATCH = 3  # tags per write: what the coalesced writes of workload 9 hold, about


async def per_write(root: Path, tags: int, writes: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per write, medians."""
    from ocireg.digest import Digest
    from ocireg.meta.sqlite import SqliteMeta
    from ocireg.registry.index import INDEX_MEDIA_TYPE, REF_NAME, Batch, IndexCache, SetTag
    from ocireg.storage.filesystem import FilesystemDriver

    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1234}
    desc["digest"] = str(Digest.of(b"manifest"))
    manifests = [{**desc, "annotations": {REF_NAME: f"t{i}"}} for i in range(tags)]
    (root / "repo").mkdir()
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    (root / "repo" / "index.json").write_text(json.dumps(index))
    caches = [IndexCache(FilesystemDriver(root), SqliteMeta(root / "meta.db")) for _ in range(2)]
    for cache in caches:
        await cache.load("repo")
    walls, cpus = [], []
    for n in range(writes):
        change = Batch([SetTag(f"n{n}-{i}", desc) for i in range(BATCH)])
        started, cpu = time.perf_counter(), time.process_time()
        await caches[n % 2].update("repo", change)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_writes", description=__doc__)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="where the root goes (a disk)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="index-writes-", dir=args.dir) as tmp:
        wall, cpu = asyncio.run(per_write(Path(tmp), args.tags, args.writes))
    print(f"{args.tags} tags: {wall:.2f} ms per write, {cpu:.2f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
