"""How long zot's GraphQL queries take on ocireg, by the number of repositories.

`python -m bench.graphql [REPOS ...]`: for each count, a fresh single instance (local disk,
search on) gets that many repositories of one small tagged image each, then each query of
zui runs SAMPLES times; the medians are printed next to a catalog page of the same run (the
cheapest listing the registry has). Every query here reads through `api/graphql/source.py`,
which today scans repository names and reads each image's manifest and config: these
figures are what an index-backed source has to beat.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.graphql import queries as q
from tests.support.oci import push_image
from tests.support.server import base_config, running_registry

SAMPLES = 7
SEARCH = "/v2/_zot/ext/search"


def _median_ms(call: Callable[[], httpx.Response]) -> float:
    times = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        r = call()
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
        assert "errors" not in r.json(), r.text
    return statistics.median(times)


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cfg = base_config(workdir / "root", extensions={"search": {"enable": True}})
        with running_registry(workdir, cfg) as reg, httpx.Client(base_url=reg.url) as c:
            for i in range(count):
                push_image(c, f"bench/repo-{i:05d}", "v1", layer_size=64)
            middle = f"bench/repo-{count // 2:05d}"

            def query(text: str) -> Callable[[], httpx.Response]:
                return lambda: c.get(SEARCH, params={"query": text})

            return {
                "catalog page (n=15), baseline": _median_ms(
                    lambda: c.get("/v2/_catalog", params={"n": 15})
                ),
                "RepoListWithNewestImage (zui, 15)": _median_ms(query(q.zui_repo_list())),
                "GlobalSearch one name (zui)": _median_ms(query(q.zui_global_search(middle))),
                "ExpandedRepoInfo (zui)": _median_ms(query(q.zui_expanded_repo_info(middle))),
                "Image (zui)": _median_ms(query(q.zui_image(middle, "v1"))),
            }


def main(argv: list[str]) -> None:
    counts = [int(a) for a in argv] or [100, 1000]
    for count in counts:
        for name, ms in measure(count).items():
            print(f"{count:>6} repos  {name:<36} {ms:8.1f} ms (median of {SAMPLES})")


if __name__ == "__main__":
    main(sys.argv[1:])
