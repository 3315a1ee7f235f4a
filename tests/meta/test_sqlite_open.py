"""The embedded store opens cleanly when many processes open it at the same moment
(Granian workers, cluster members on one root, the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ocireg_env

_OPEN = """
import asyncio, sys
from pathlib import Path
from ocireg.meta.sqlite import SqliteMeta
meta = SqliteMeta(Path(sys.argv[1]))
asyncio.run(meta.mark_ready())
print("ok")
"""


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    for round_ in range(3):
        path = tmp_path / f"round{round_}" / "meta.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, str(path)],
                env=ocireg_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(12)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.strip() == "ok"
