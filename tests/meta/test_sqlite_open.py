"""The embedded store opens cleanly when another process is opening it at the same moment
(Granian workers, cluster members on one root, the CLI).

A fresh file starts in rollback-journal mode. The first opener to switch it to WAL holds the
RESERVED lock while it waits for the EXCLUSIVE one; a second opener, already reading, then
gets "database is locked" at once: SQLite does not call the busy handler there (it would
deadlock), so the 10 s busy timeout does not help and only SqliteMeta's own retry does.
Twelve processes opening at once hit that window only by luck, so here a second process
holds the lock on purpose and lets go after the store's first attempt has failed."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from ocireg.meta.sqlite import SqliteMeta

# Takes the RESERVED lock of a fresh (rollback-journal) file, as an opener switching it to WAL
# does, says "held", and lets go (rolls back) when told on stdin.
_HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
print("released", flush=True)
sys.stdin.readline()
"""


class _OpenWhileHeld(SqliteMeta):
    """SqliteMeta whose first attempt to open runs while `holder` has the lock; the holder
    lets go as that attempt fails, so only a retry can open the store."""

    def __init__(self, path: Path, holder: subprocess.Popen[str]) -> None:
        super().__init__(path)
        self.holder = holder
        self.failures: list[str] = []

    def _open(self) -> sqlite3.Connection:
        try:
            return super()._open()
        except sqlite3.OperationalError as exc:
            self.failures.append(str(exc))
            if len(self.failures) == 1:
                assert self.holder.stdin is not None and self.holder.stdout is not None
                self.holder.stdin.write("release\n")
                self.holder.stdin.flush()
                assert self.holder.stdout.readline().strip() == "released"
            raise


def test_first_open_retries_while_another_process_switches_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held", holder.communicate()[1]
        meta = _OpenWhileHeld(path, holder)
        asyncio.run(meta.mark_ready())
        # the trigger really fired: the first attempt failed at once, the next one opened
        assert meta.failures == ["database is locked"]
        assert asyncio.run(meta.ready()) is True
        asyncio.run(meta.close())
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0, holder.communicate()[1]
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
