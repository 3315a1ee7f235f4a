"""`make bench-smoke`: `python -m bench --quick` still runs end to end: both registries
start, every workload produces figures for both, the table is printed and the JSON written.
No timing assertions. Not part of `make test` (pytest collects tests/ only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("docker-registry", "wrk", "ab")


@pytest.mark.slow
def test_bench_quick_prints_table_and_writes_json(tmp_path: Path) -> None:
    for tool in TOOLS:
        require(tool)
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        # zot (../shared/tools) is make interop's business: tests/interop/test_bench_zot.py.
        [sys.executable, "-m", "bench", "--quick", "--no-zot", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=420,  # every workload, 11 and 12 included: ~3 min on a quiet machine
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| workload | metric |" in proc.stdout
    assert "docker-registry" in proc.stdout

    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    assert doc["machine"]["cores"] >= 1
    assert doc["ocireg"]["workers"] >= 1
    assert set(doc["limits_mib_s"]) == {"sha256", "loopback", "hash+write"}
    compared = [row for row in doc["rows"] if row["goal"] is not None]
    metrics = {(row["workload"].split()[0], row["metric"]) for row in compared}
    assert {m[0] for m in metrics} >= {"1", "2", "3", "4"}
    for row in compared:
        # None: every run of the figure failed (the row's note says why).
        assert row["ocireg"] is not None and row["peer"] is not None, row
        assert row["ocireg"] > 0 and row["peer"] > 0, row
        assert row["ratio"] == pytest.approx(row["ocireg"] / row["peer"])
    stub = [row for row in doc["rows"] if row["workload"].startswith("5")]
    assert len(stub) >= 1
