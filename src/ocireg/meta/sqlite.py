"""Embedded default: one SQLite file beside the local data, shared by the worker processes
of one instance (WAL mode; each statement is a few microseconds, so it runs inline)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from ocireg.meta.base import (
    INDEX_CHANGES_KEPT,
    SEARCH_FORMAT,
    STAR,
    MetaUnavailable,
    Push,
    SearchStamps,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS referrers (
    repo TEXT NOT NULL, subject TEXT NOT NULL, digest TEXT NOT NULL, descriptor TEXT NOT NULL,
    PRIMARY KEY (repo, subject, digest));
CREATE TABLE IF NOT EXISTS blob_locations (digest TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scanned (
    repo TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL, before TEXT, after TEXT NOT NULL,
    change TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS index_changes_repo ON index_changes (repo, seq);
CREATE TABLE IF NOT EXISTS index_versions (
    repo TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pulls (
    repo TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pushes (
    repo TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pull_counts (
    repo TEXT NOT NULL, digest TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
-- API keys: the secret's hash, never the secret; `last_used` apart so that a touch after a
-- delete changes nothing
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY, user TEXT NOT NULL, uuid TEXT NOT NULL, details TEXT NOT NULL,
    last_used TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user, uuid);
CREATE TABLE IF NOT EXISTS ended_sessions (token TEXT PRIMARY KEY, until REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_groups (user TEXT PRIMARY KEY, groups TEXT NOT NULL)
    WITHOUT ROWID;
-- zot's userprefs: a row per mark; a repository's star count is its rows of kind 'star'
CREATE TABLE IF NOT EXISTS user_marks (
    user TEXT NOT NULL, kind TEXT NOT NULL, repo TEXT NOT NULL,
    PRIMARY KEY (user, kind, repo)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS user_marks_repo ON user_marks (kind, repo);
CREATE TABLE IF NOT EXISTS search_repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_images (
    repo TEXT NOT NULL, tag TEXT NOT NULL, record TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (repo, tag)) WITHOUT ROWID;
-- a tag's record notes its repository in the same statement: one commit per tag write
CREATE TRIGGER IF NOT EXISTS search_images_repository AFTER INSERT ON search_images
BEGIN INSERT OR IGNORE INTO search_repositories VALUES (new.repo); END;
-- the tags zot lists as images, by update time: kept by the same statement (a REPLACE fires
-- no DELETE trigger, so the INSERT one drops the tag's old row first)
CREATE TABLE IF NOT EXISTS search_listed (
    repo TEXT NOT NULL, tag TEXT NOT NULL, updated INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS search_listed_put AFTER INSERT ON search_images
BEGIN
    DELETE FROM search_listed WHERE repo = new.repo AND tag = new.tag;
    INSERT INTO search_listed SELECT new.repo, new.tag, json_extract(new.record, '$.updated')
    WHERE json_extract(new.record, '$.listed') AND json_type(new.record, '$.updated') = 'integer';
END;
CREATE TRIGGER IF NOT EXISTS search_listed_remove AFTER DELETE ON search_images
BEGIN DELETE FROM search_listed WHERE repo = old.repo AND tag = old.tag; END;
-- when each tag was created (zot's TaggedTimestamp), kept while the tag is moved: it goes with
-- the tag's record (a REPLACE fires no DELETE trigger)
CREATE TABLE IF NOT EXISTS search_tagged (
    repo TEXT NOT NULL, tag TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (repo, tag)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS search_tagged_remove AFTER DELETE ON search_images
BEGIN DELETE FROM search_tagged WHERE repo = old.repo AND tag = old.tag; END;
-- when each manifest was first pushed to its repository, and by whom (zot's PushTimestamp,
-- PushedBy; '' anonymous)
CREATE TABLE IF NOT EXISTS search_pushes (
    repo TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL, by TEXT NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
"""
# A tag's creation time, only if the tag has no record yet.
_NOTE_TAGGED = (
    "INSERT OR REPLACE INTO search_tagged SELECT ?1, ?2, ?3 WHERE NOT EXISTS"
    " (SELECT 1 FROM search_images WHERE repo = ?1 AND tag = ?2)"
)
# A repository's time: its newest listed image's, or a listed tag's creation if later.
_LATEST = (
    "SELECT repo, max(max(updated, coalesce(CAST(round(at * 1000000) AS INTEGER), updated)))"
    " FROM search_listed LEFT JOIN search_tagged USING (repo, tag)"
)
# The first push stays; its pusher is filled in if it was anonymous.
_NOTE_PUSH = (
    "INSERT INTO search_pushes VALUES (?, ?, ?, ?) ON CONFLICT (repo, digest)"
    " DO UPDATE SET by = excluded.by WHERE search_pushes.by = ''"
)
_WHOLE_TABLE = 2000  # repositories asked for at once above which a table is read whole
_READY = f"search-ready-v{SEARCH_FORMAT}"  # the state key marking a completed rebuild


_OPEN_TIMEOUT = 15.0  # seconds


class SqliteMeta:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            # Several processes (workers, members on one root, the CLI) may open the file at
            # the same moment; switching to WAL and creating the schema can then answer
            # "database is locked" without waiting for the busy timeout. Retry, bounded.
            deadline = time.monotonic() + _OPEN_TIMEOUT
            while True:
                try:
                    self._db = self._open()
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise MetaUnavailable(f"sqlite {self.path}: {exc}") from exc
                    time.sleep(0.05)
                except (sqlite3.Error, OSError) as exc:
                    raise MetaUnavailable(f"sqlite {self.path}: {exc}") from exc
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise MetaUnavailable(f"sqlite {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """Statements in one transaction (the connection commits each one otherwise):
        committed when the block ends, rolled back when it raises."""
        db = self._conn()
        try:
            with db:  # commits, or rolls back on an exception
                db.execute(begin)
                yield db
        except sqlite3.Error as exc:
            raise MetaUnavailable(f"sqlite {self.path}: {exc}") from exc

    async def ready(self) -> bool:
        return bool(self._run("SELECT 1 FROM state WHERE key = 'ready'"))

    async def mark_ready(self) -> None:
        self._run("INSERT OR REPLACE INTO state VALUES ('ready', ?)", (str(time.time()),))

    async def try_rebuild_lock(self, owner: str, seconds: int) -> bool:
        now = time.time()
        self._run("DELETE FROM state WHERE key = 'rebuild' AND CAST(value AS REAL) < ?", (now,))
        rows = self._run(
            "INSERT OR IGNORE INTO state VALUES ('rebuild', ?) RETURNING 1", (str(now + seconds),)
        )
        return bool(rows)

    async def clear(self) -> None:
        tables = ("referrers", "blob_locations", "index_changes", "scanned", "repositories")
        for table in (*tables, "index_versions"):
            self._run(f"DELETE FROM {table}")
        self._run("DELETE FROM state WHERE key = 'ready'")

    async def add_referrer(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None:
        self._run(
            "INSERT OR REPLACE INTO referrers VALUES (?, ?, ?, ?)",
            (repo, subject, descriptor["digest"], json.dumps(descriptor)),
        )

    async def remove_referrer(self, repo: str, subject: str, digest: str) -> None:
        self._run(
            "DELETE FROM referrers WHERE repo = ? AND subject = ? AND digest = ?",
            (repo, subject, digest),
        )

    async def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        rows = self._run(
            "SELECT descriptor FROM referrers WHERE repo = ? AND subject = ? ORDER BY digest",
            (repo, subject),
        )
        return [json.loads(r[0]) for r in rows]

    async def set_blob_location(self, digest: str, path: str) -> None:
        self._run("INSERT OR REPLACE INTO blob_locations VALUES (?, ?)", (digest, path))

    async def blob_location(self, digest: str) -> str | None:
        rows = self._run("SELECT path FROM blob_locations WHERE digest = ?", (digest,))
        return str(rows[0][0]) if rows else None

    async def blob_copies(self, digest: str) -> list[str]:
        return []  # zot keeps its dedupe cache in Redis or in its own bolt file, never here

    async def moved_blob(self, digest: str, old: str, new: str) -> None:
        await self.set_blob_location(digest, new)

    async def add_repository(self, name: str) -> None:
        self._run("INSERT OR IGNORE INTO repositories VALUES (?)", (name,))

    async def repositories_after(self, last: str, limit: int) -> list[str]:
        rows = self._run(
            "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?", (last, limit)
        )
        return [r[0] for r in rows]

    async def mark_scanned(self, repo: str, digests: list[str]) -> None:
        try:
            self._conn().executemany(
                "INSERT OR IGNORE INTO scanned VALUES (?, ?)", [(repo, d) for d in digests]
            )
        except sqlite3.Error as exc:
            raise MetaUnavailable(f"sqlite {self.path}: {exc}") from exc

    async def scanned(self, repo: str) -> set[str]:
        return {r[0] for r in self._run("SELECT digest FROM scanned WHERE repo = ?", (repo,))}

    async def add_index_change(
        self, repo: str, before: str | None, after: str, change: str
    ) -> None:
        rows = self._run(
            "INSERT INTO index_changes (repo, before, after, change) VALUES (?, ?, ?, ?) "
            "RETURNING seq",
            (repo, before, after, change),
        )
        self._run(
            "DELETE FROM index_changes WHERE repo = ? AND seq <= ?",
            (repo, rows[0][0] - INDEX_CHANGES_KEPT),
        )

    async def index_changes(self, repo: str) -> list[tuple[str | None, str, str]]:
        rows = self._run(
            "SELECT before, after, change FROM index_changes WHERE repo = ? ORDER BY seq",
            (repo,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def index_version(self, repo: str) -> str | None:
        rows = self._run(
            "SELECT value FROM index_versions WHERE repo = ? AND expires > ?", (repo, time.time())
        )
        return str(rows[0][0]) if rows else None

    async def set_index_version(self, repo: str, value: str, ttl: int) -> None:
        self._run(
            "INSERT OR REPLACE INTO index_versions VALUES (?, ?, ?)",
            (repo, value, time.time() + ttl),
        )

    async def swap_index_version(
        self, repo: str, expected: str | None, value: str, ttl: int
    ) -> bool:
        # One statement each: sqlite runs it atomically across the processes on the file.
        now = time.time()
        if expected is None:
            rows = self._run(
                "INSERT INTO index_versions VALUES (?, ?, ?) ON CONFLICT (repo) DO UPDATE"
                " SET value = excluded.value, expires = excluded.expires"
                " WHERE index_versions.expires <= ? RETURNING 1",
                (repo, value, now + ttl, now),
            )
        else:
            rows = self._run(
                "UPDATE index_versions SET value = ?, expires = ?"
                " WHERE repo = ? AND value = ? AND expires > ? RETURNING 1",
                (value, now + ttl, repo, expected, now),
            )
        return bool(rows)

    async def record_pulls(
        self, repo: str, pulls: dict[str, float], counts: dict[str, int] | None = None
    ) -> None:
        counts = counts if counts is not None else dict.fromkeys(pulls, 1)
        with self._transaction() as db:  # one commit for them all: this runs on the event loop
            db.executemany(
                "INSERT INTO pulls VALUES (?, ?, ?) ON CONFLICT (repo, digest)"
                " DO UPDATE SET at = max(at, excluded.at)",
                [(repo, digest, at) for digest, at in pulls.items()],
            )
            db.executemany(
                "INSERT INTO pull_counts VALUES (?, ?, ?) ON CONFLICT (repo, digest)"
                " DO UPDATE SET count = count + excluded.count",
                [(repo, digest, count) for digest, count in counts.items()],
            )

    async def pulls(self, repo: str) -> dict[str, float]:
        rows = self._run("SELECT digest, at FROM pulls WHERE repo = ?", (repo,))
        return {digest: at for digest, at in rows}

    async def record_push(self, repo: str, digest: str, at: float) -> None:
        self._run(
            "INSERT INTO pushes VALUES (?, ?, ?) ON CONFLICT (repo, digest)"
            " DO UPDATE SET at = max(at, excluded.at)",
            (repo, digest, at),
        )

    async def pushes(self, repo: str) -> dict[str, float]:
        rows = self._run("SELECT digest, at FROM pushes WHERE repo = ?", (repo,))
        return {digest: at for digest, at in rows}

    async def pull_counts(self, repo: str) -> dict[str, int]:
        rows = self._run("SELECT digest, count FROM pull_counts WHERE repo = ?", (repo,))
        return {digest: count for digest, count in rows}

    async def swap_storage_layout(self, layout: str) -> str | None:
        # Read and written in one step: of two processes starting at once, one sees the change.
        with self._transaction("BEGIN IMMEDIATE") as db:
            rows = db.execute("SELECT value FROM state WHERE key = 'storage-layout'").fetchall()
            db.execute("INSERT OR REPLACE INTO state VALUES ('storage-layout', ?)", (layout,))
        return str(rows[0][0]) if rows else None

    async def note_quota_repository(self, repo: str) -> None:
        self._run("INSERT OR IGNORE INTO quota_repositories VALUES (?)", (repo,))

    async def quota_repositories(self) -> set[str]:
        return {name for (name,) in self._run("SELECT name FROM quota_repositories")}

    async def forget_manifests(self, repo: str, keep: Collection[str]) -> list[str]:
        tables = ("pulls", "pushes", "pull_counts", "search_pushes")
        noted = self._run(
            " UNION ".join(f"SELECT digest FROM {table} WHERE repo = ?1" for table in tables),
            (repo,),
        )
        gone = sorted(digest for (digest,) in noted if digest not in keep)
        if gone:
            rows = [(repo, digest) for digest in gone]
            with self._transaction() as db:
                for table in tables:
                    db.executemany(f"DELETE FROM {table} WHERE repo = ? AND digest = ?", rows)
        return gone

    async def pulls_since(self, now: float | None = None) -> float | None:
        if now is not None:
            self._run("INSERT OR IGNORE INTO state VALUES ('pulls-since', ?)", (repr(now),))
        rows = self._run("SELECT value FROM state WHERE key = 'pulls-since'")
        return float(rows[0][0]) if rows else None

    async def add_api_key(self, hashed: str, user: str, details: dict[str, Any]) -> None:
        self._run(
            "INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?, ?, NULL)",
            (hashed, user, details["uuid"], json.dumps(details)),
        )

    async def api_key(self, hashed: str) -> tuple[str, dict[str, Any]] | None:
        rows = self._run("SELECT user, details, last_used FROM api_keys WHERE hash = ?", (hashed,))
        return (rows[0][0], _key_details(rows[0][1], rows[0][2])) if rows else None

    async def api_keys(self, user: str) -> list[dict[str, Any]]:
        rows = self._run("SELECT details, last_used FROM api_keys WHERE user = ?", (user,))
        return [_key_details(details, used) for details, used in rows]

    async def touch_api_key(self, hashed: str, last_used: str) -> None:
        self._run("UPDATE api_keys SET last_used = ? WHERE hash = ?", (last_used, hashed))

    async def delete_api_key(self, user: str, uuid: str) -> bool:
        rows = self._run(
            "DELETE FROM api_keys WHERE user = ? AND uuid = ? RETURNING 1", (user, uuid)
        )
        return bool(rows)

    async def set_user_groups(self, user: str, groups: list[str]) -> None:
        self._run("INSERT OR REPLACE INTO user_groups VALUES (?, ?)", (user, json.dumps(groups)))

    async def user_groups(self, user: str) -> list[str]:
        rows = self._run("SELECT groups FROM user_groups WHERE user = ?", (user,))
        return list(json.loads(rows[0][0])) if rows else []

    async def toggle_mark(self, user: str, kind: str, repo: str) -> bool:
        with self._transaction("BEGIN IMMEDIATE") as db:
            args = (user, kind, repo)
            sql = "DELETE FROM user_marks WHERE user = ? AND kind = ? AND repo = ? RETURNING 1"
            if db.execute(sql, args).fetchall():
                return False
            db.execute("INSERT INTO user_marks VALUES (?, ?, ?)", args)
            return True

    async def marked(self, user: str, kind: str) -> set[str]:
        rows = self._run("SELECT repo FROM user_marks WHERE user = ? AND kind = ?", (user, kind))
        return {repo for (repo,) in rows}

    async def star_counts(self, repos: list[str]) -> dict[str, int]:
        rows = self._run(
            "SELECT repo, COUNT(*) FROM user_marks WHERE kind = ?"
            " AND repo IN (SELECT value FROM json_each(?)) GROUP BY repo",
            (STAR, json.dumps(repos)),
        )
        return dict(rows)

    async def end_session(self, token: str, until: float) -> None:
        with self._transaction() as db:  # the notes of sessions that expired since go too
            db.execute("DELETE FROM ended_sessions WHERE until < ?", (time.time(),))
            db.execute("INSERT OR REPLACE INTO ended_sessions VALUES (?, ?)", (token, until))

    async def session_ended(self, token: str) -> bool:
        rows = self._run("SELECT until FROM ended_sessions WHERE token = ?", (token,))
        return bool(rows) and rows[0][0] >= time.time()

    async def search_ready(self) -> bool:
        return bool(self._run("SELECT 1 FROM state WHERE key = ?", (_READY,)))

    async def search_reset(self, mark_ready: bool) -> None:
        if mark_ready:
            now = str(time.time())
            self._run("INSERT OR REPLACE INTO state VALUES (?, ?)", (_READY, now))
            self._run("DELETE FROM state WHERE key = 'search-rebuild'")  # the lease, done
            return
        self._run("DELETE FROM state WHERE key LIKE 'search-ready%'")  # any format's
        self._run("DELETE FROM search_images")
        self._run("DELETE FROM search_repositories")
        self._run("DELETE FROM search_listed")
        self._run("DELETE FROM search_tagged")
        self._run("DELETE FROM search_pushes")

    async def search_lock(self, owner: str, seconds: int) -> bool:
        now = time.time()
        self._run(
            "DELETE FROM state WHERE key = 'search-rebuild' AND CAST(value AS REAL) < ?", (now,)
        )
        rows = self._run(
            "INSERT OR IGNORE INTO state VALUES ('search-rebuild', ?) RETURNING 1",
            (str(now + seconds),),
        )
        return bool(rows)

    async def search_put(
        self,
        repo: str,
        tag: str,
        record: dict[str, Any],
        text: str,
        tagged: float | None = None,
        push: Push | None = None,
    ) -> None:
        put = "INSERT OR REPLACE INTO search_images VALUES (?, ?, ?, ?)"
        args = (repo, tag, json.dumps(record), text)
        if tagged is None and push is None:
            self._run(put, args)
            return
        with self._transaction() as db:  # one commit, as for the record alone
            if tagged is not None:
                db.execute(_NOTE_TAGGED, (repo, tag, tagged))
            db.execute(put, args)
            if push is not None:
                db.execute(_NOTE_PUSH, (repo, record["digest"], push.at, push.by))

    async def search_add_repository(self, repo: str) -> None:
        self._run("INSERT OR IGNORE INTO search_repositories VALUES (?)", (repo,))

    async def search_note_push(self, repo: str, digest: str, push: Push) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO search_repositories VALUES (?)", (repo,))
            db.execute(_NOTE_PUSH, (repo, digest, push.at, push.by))

    async def search_remove(self, repo: str, tag: str) -> None:
        self._run("DELETE FROM search_images WHERE repo = ? AND tag = ?", (repo, tag))

    async def search_forget_push(self, repo: str, digest: str) -> None:
        self._run("DELETE FROM search_pushes WHERE repo = ? AND digest = ?", (repo, digest))

    async def search_stamps(self, repo: str) -> SearchStamps:
        tagged = self._run("SELECT tag, at FROM search_tagged WHERE repo = ?", (repo,))
        pushes = self._run("SELECT digest, at, by FROM search_pushes WHERE repo = ?", (repo,))
        return SearchStamps(
            {tag: at for tag, at in tagged}, {digest: Push(at, by) for digest, at, by in pushes}
        )

    async def search_records(self, repos: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for repo, tag, record in self._in("SELECT repo, tag, record FROM search_images", repos):
            found.setdefault(repo, {})[tag] = json.loads(record)
        return found

    async def search_listed(self, repos: list[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for repo, tag, updated in self._in("SELECT repo, tag, updated FROM search_listed", repos):
            found.setdefault(repo, {})[tag] = updated
        return found

    async def search_latest(self, repos: list[str]) -> dict[str, int]:
        rows = self._in(_LATEST, repos, "GROUP BY repo")
        return {repo: updated for repo, updated in rows}

    def _in(self, select: str, repos: list[str], then: str = "") -> list[tuple[Any, ...]]:
        """`select` for the rows of these repositories (`WHERE repo IN`, in chunks under
        sqlite's bound on parameters; for many, one read of the whole table, filtered
        here: a few times faster), `then` appended to each statement."""
        if len(repos) > _WHOLE_TABLE:
            wanted = set(repos)
            return [row for row in self._run(f"{select} {then}") if row[0] in wanted]
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(repos), 500):
            chunk = repos[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self._run(f"{select} WHERE repo IN ({marks}) {then}", tuple(chunk))
        return rows

    async def search_repositories(self, contains: str, after: str, limit: int) -> list[str]:
        rows = self._run(
            "SELECT name FROM search_repositories WHERE name > ? AND instr(name, ?) > 0"
            " ORDER BY name LIMIT ?",
            (after, contains, limit),
        )
        return [r[0] for r in rows]

    async def search_find(
        self, needle: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        repo, tag = after or ("", "")
        rows = self._run(
            "SELECT repo, tag FROM search_images WHERE (repo, tag) > (?, ?) AND instr(text, ?) > 0"
            " ORDER BY repo, tag LIMIT ?",
            (repo, tag, needle, limit),
        )
        return [(r[0], r[1]) for r in rows]

    async def health(self) -> None:
        self._run("SELECT 1")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _key_details(details: str, last_used: str | None) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(details)
    if last_used is not None:
        found["lastUsed"] = last_used
    return found
