"""The embedded store opens cleanly when many processes open it at the same moment
(Granian workers, cluster members on one root, the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import ocireg_env

# Imports first, then "ready", then the open once the test says "go" on stdin: the slow part
# (starting Python) is over before any process opens, so the twelve opens really collide.
_OPEN = """
import asyncio, sys
from pathlib import Path
from ocireg.meta.sqlite import SqliteMeta
print("ready", flush=True)
sys.stdin.readline()
meta = SqliteMeta(Path(sys.argv[1]))
asyncio.run(meta.mark_ready())
print("ok")
"""


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(path)],
            env=ocireg_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        assert not path.exists()
        for proc in procs:  # the barrier opens: every process opens the store at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.strip() == "ok"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
