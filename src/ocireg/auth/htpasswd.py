"""HTTP Basic credentials checked against an htpasswd file of bcrypt entries (as zot).

bcrypt is slow on purpose (~50-250 ms per check), so checks run in a thread and never
block the event loop, and a verified credential is remembered for a short while
(`auth.remembered`). The file is re-read when its modification time changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from ocireg.auth.remembered import Remembered
from ocireg.errors import ConfigError

log = logging.getLogger("ocireg.auth")
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$", "$2x$")


@dataclass(frozen=True)
class HtpasswdFile:
    entries: dict[str, bytes]
    skipped: tuple[str, ...]  # users whose entry is not bcrypt (zot cannot check them either)


def read_htpasswd(path: Path, where: str = "http.auth.htpasswd.path") -> HtpasswdFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None
    entries: dict[str, bytes] = {}
    skipped: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            continue
        if hashed.startswith(_BCRYPT_PREFIXES):
            entries[user] = hashed.encode()
        else:
            skipped.append(user)
    return HtpasswdFile(entries, tuple(skipped))


class Htpasswd:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = self._stat()
        self._file = read_htpasswd(path)
        self._warn_skipped()
        self._remembered: Remembered[bool] = Remembered()

    def _stat(self) -> float:
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return -1.0

    def _warn_skipped(self) -> None:
        if self._file.skipped:
            log.warning(
                "htpasswd entries that are not bcrypt are ignored",
                extra={"path": str(self.path), "users": list(self._file.skipped)},
            )

    def _reload_if_changed(self) -> None:
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self._file = read_htpasswd(self.path)
        except ConfigError as exc:  # keep serving with what we had; say why
            log.error("cannot reload htpasswd file", extra={"error": str(exc)})
            return
        self._remembered.clear()  # a removed user or a changed password must stop working
        self._warn_skipped()

    def entry(self, user: str) -> bytes | None:
        """The user's bcrypt hash as the file says now (web sessions are bound to it, so
        that a changed password or a removed user ends them: `ocireg.ui.session`)."""
        self._reload_if_changed()
        return self._file.entries.get(user)

    def lists(self, user: str) -> bool:
        """Whether the file has an entry for `user`."""
        return self.entry(user) is not None

    async def check(self, user: str, password: str) -> bool:
        self._reload_if_changed()
        hashed = self._file.entries.get(user)
        verified = await self._remembered.check(
            user, password, lambda: self._verify(password, hashed)
        )
        return bool(verified)

    @staticmethod
    async def _verify(password: str, hashed: bytes | None) -> bool | None:
        ok = await asyncio.to_thread(_checkpw, password.encode(), hashed or _dummy_hash())
        return True if ok and hashed is not None else None


@functools.cache
def _dummy_hash() -> bytes:
    """Checked when the user is unknown, so that the answer takes as long either way."""
    return bcrypt.hashpw(b"-", bcrypt.gensalt(rounds=10))


def _checkpw(password: bytes, hashed: bytes) -> bool:
    if len(password) > 72:  # bcrypt's limit; Go's bcrypt (zot) refuses these too
        return False
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash in the file: never a match
        return False
