"""How long zot's GraphQL queries take on ocireg, by the number of repositories.

`python -m bench.graphql [--root DIR] [REPOS ...]`: for each count, a single instance (local
disk, search on) over that many repositories of one small tagged image each, then each query
runs SAMPLES times; the medians are printed next to a catalog page of the same run (the
cheapest listing the registry has). With `--root`, the repositories are pushed once into
DIR/<count> and kept, so that two versions of the code can be measured in turn over the
same data (run this file from each checkout; the server runs that checkout's `src`). With
`--redis`, the metadata store is a Redis started for the run (the index is built at start).

Before measuring, the run waits until the registry lists every repository (a server that
finds the search index empty or of an older format rebuilds it in the background first).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.graphql import queries as q
from tests.support.backends import running_redis
from tests.support.oci import push_image
from tests.support.server import base_config, running_registry, wait_until

SAMPLES = 7
PUSHERS = 8  # clients pushing at once while populating
QUERY_TIMEOUT = 900.0  # seconds
SEARCH = "/v2/_zot/ext/search"
COUNTED = "{RepoListWithNewestImage(requestedPage: {limit: 1}) {Page {TotalCount}}}"
# zui does not page ImageList; a page of 15 of every image, newest first, as a script would
IMAGE_PAGE = (
    '{ImageList(repo: "", requestedPage: {limit: 15, offset: 0, sortBy: UPDATE_TIME})'
    " {Page {TotalCount ItemCount} Results {RepoName Tag Digest LastUpdated Size}}}"
)


def _median_ms(call: Callable[[], httpx.Response]) -> float:
    times = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        r = call()
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
        assert "errors" not in r.json(), r.text
    return statistics.median(times)


def _name(i: int) -> str:
    return f"bench/repo-{i:05d}"


def _populate(url: str, count: int) -> None:
    def push(first: int) -> None:
        with httpx.Client(base_url=url, timeout=60.0) as c:
            for i in range(first, count, PUSHERS):
                push_image(c, _name(i), "v1", layer_size=64)

    with ThreadPoolExecutor(PUSHERS) as pool:
        list(pool.map(push, range(PUSHERS)))


def _listed(c: httpx.Client) -> int:
    r = c.get(SEARCH, params={"query": COUNTED})
    total: int = r.json()["data"]["RepoListWithNewestImage"]["Page"]["TotalCount"]
    return total


@contextmanager
def _workdir(root: Path | None, count: int) -> Iterator[Path]:
    if root is not None:
        kept = root / str(count)
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def measure(count: int, root: Path | None = None, redis_url: str = "") -> dict[str, float]:
    with _workdir(root, count) as workdir:
        cfg = base_config(workdir / "root", extensions={"search": {"enable": True}})
        if redis_url:  # a fresh key prefix: the server builds the index at start
            cfg["storage"]["remoteCache"] = True
            prefix = uuid.uuid4().hex[:8]
            cfg["storage"]["cacheDriver"] = {"name": "redis", "url": redis_url, "keyprefix": prefix}
        # a list over every repository may take minutes before the index (cold, loaded):
        # a client that gave up would leave the server working and ask again
        with (
            running_registry(workdir, cfg) as reg,
            httpx.Client(base_url=reg.url, timeout=QUERY_TIMEOUT) as c,
        ):
            populated = workdir / "populated"
            if not populated.exists():
                _populate(reg.url, count)
                populated.touch()
            wait_until(lambda: _listed(c) == count, timeout=2 * QUERY_TIMEOUT, interval=1.0)
            middle = _name(count // 2)

            def query(text: str) -> Callable[[], httpx.Response]:
                return lambda: c.get(SEARCH, params={"query": text})

            return {
                "catalog page (n=15), baseline": _median_ms(
                    lambda: c.get("/v2/_catalog", params={"n": 15})
                ),
                "RepoListWithNewestImage (zui, 15)": _median_ms(query(q.zui_repo_list())),
                "RepoListWithNewestImage page 40": _median_ms(query(q.zui_repo_list(40))),
                "GlobalSearch one name (zui)": _median_ms(query(q.zui_global_search(middle))),
                "GlobalSearch all, page 1 (zui)": _median_ms(query(q.zui_global_search(""))),
                "ImageList all, page of 15": _median_ms(query(IMAGE_PAGE)),
                "ExpandedRepoInfo (zui)": _median_ms(query(q.zui_expanded_repo_info(middle))),
                "Image (zui)": _median_ms(query(q.zui_image(middle, "v1"))),
            }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.graphql")
    parser.add_argument("--root", type=Path, help="keep the pushed repositories here")
    parser.add_argument("--redis", action="store_true", help="the metadata in a Redis started here")
    parser.add_argument("counts", nargs="*", type=int, default=[100, 1000])
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = ""
        if args.redis:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="redis-"))
            redis_url = stack.enter_context(running_redis(Path(tmp))).url
        for count in args.counts:
            for name, ms in measure(count, args.root, redis_url).items():
                print(
                    f"{count:>6} repos  {name:<36} {ms:8.1f} ms (median of {SAMPLES})", flush=True
                )


if __name__ == "__main__":
    main()
