"""`python -m bench --quick` with zot as the third column: zot starts, the workloads that
compare registries give a zot figure and a ratio, the table shows them. No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import REPO_ROOT
from tests.support.zot import TOOLS_ENV

pytestmark = pytest.mark.slow


def test_bench_quick_has_a_zot_column(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "1,3,4,8", "--out", str(out)],
        cwd=REPO_ROOT,
        env={**os.environ, TOOLS_ENV: os.environ[TOOLS_ENV]},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| zot | vs zot |" in proc.stdout, proc.stdout
    doc = json.loads(out.read_text())
    assert doc["zot"]["version"].startswith("v2."), doc["zot"]
    # 5 and 7 compare ocireg with itself (through a member, on S3): no zot figure there.
    compared = [
        row for row in doc["rows"] if row["workload"].split()[0] in ("1", "2", "3", "4", "8")
    ]
    assert {row["workload"].split()[0] for row in compared} == {"1", "2", "3", "4", "8"}
    for row in compared:
        assert row["zot"] and row["zot"] > 0, row
        assert row["ratio_zot"] == pytest.approx(row["ocireg"] / row["zot"])
