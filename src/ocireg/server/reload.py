"""Configuration reload without a restart: on SIGHUP, and when the file changes.

The main process reads and checks the file (`ConfigReloader`). A valid file becomes the
configuration that workers build themselves from (the parsed map travels in the
environment, so every worker of one generation sees the same text even if the file changes
again meanwhile). An invalid one is refused with an error log line: the member keeps
serving with what it had.

The file is read when it changes (the watch) and on SIGHUP, and a valid one is applied in
one of two ways:

- **In place**, when nothing but `cluster.members` and `cluster.routing` differs, with
  this member's own entry and the cluster still there: the main process writes the new
  list to a small file that every worker follows (`MembersFile`), and each running worker
  routes by it within a second (`Peers.update`). No worker is replaced and no connection
  is closed, which is what adding or removing a member under traffic needs.
- **By replacing the workers**, for any other change: Granian's main process respawns its
  workers one by one (a new worker starts, then the old one stops after finishing its
  requests), keeping the listening socket; `ConfigReloader.reload` runs first as Granian's
  reload hook. A client's idle keep-alive connection to an old worker is closed then
  (docs/cluster.md).

SIGHUP is Granian's signal for the second way: `take_sighup` (a Granian start-up hook, run
after Granian installs its own handlers) puts this module's check in front of it. With a
Granian that installed its handlers later, SIGHUP would replace the workers whatever
changed, as before.

What a reload cannot apply: the listening socket and the worker count (`http.address`,
`http.port`, `http.tls`, `http.workers`), and this member's own entry must stay in
`cluster.members`; such changes are refused, naming the key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocireg.cluster.membership import Membership, membership_from_config
from ocireg.cluster.peers import Peers
from ocireg.config import Config, build_config, read_config_file
from ocireg.errors import ConfigError

log = logging.getLogger("ocireg.server")

# The map the current generation of workers builds from (JSON), set by the main process.
CONFIG_DATA_ENV = "OCIREG_CONFIG_DATA"
LOCAL_MEMBER_ENV = "OCIREG_CLUSTER_LOCAL_MEMBER"
# The file holding the member list the running workers route by (`MembersFile`).
MEMBERS_FILE_ENV = "OCIREG_CLUSTER_MEMBERS_FILE"
WATCH_EVERY = 1.0  # seconds between looks at the file
# Seconds a reload may wait for new member names to resolve (start-up waits longer).
RELOAD_RESOLVE_TIMEOUT = 10.0


def checked_config(raw: dict[str, Any], source: Path | None) -> Config:
    """The config the map `raw` (read from `source`) describes, checked as `serve` checks
    it: every section parsed (by `build_config`), auth files read."""
    from ocireg.auth.core import check_auth

    config = build_config(raw, source=source)
    check_auth(config)
    return config


def publish(raw: dict[str, Any], membership: Membership | None) -> None:
    """Hand the workers this configuration: the next ones build from it, and the running
    ones follow its member list (in a cluster). The file first: if it cannot be written,
    nothing is handed over."""
    members_file = os.environ.get(MEMBERS_FILE_ENV)
    if membership is not None and members_file:
        MembersFile(Path(members_file)).write(membership)
    os.environ[CONFIG_DATA_ENV] = json.dumps(raw)
    if membership is None:
        os.environ.pop(LOCAL_MEMBER_ENV, None)
    else:
        os.environ[LOCAL_MEMBER_ENV] = str(membership.local_index)


def prepare_members_file() -> Callable[[], None]:
    """In the main process, before workers start: a private file for `MembersFile`, named
    in the environment the workers inherit. Returns the cleanup."""
    try:
        directory = Path(tempfile.mkdtemp(prefix="ocireg-members-"))
    except OSError as exc:  # a read-only root file system without a writable TMPDIR
        log.warning(
            "no temporary directory for the member list; a new list will replace the workers",
            extra={"error": str(exc)},
        )
        os.environ.pop(MEMBERS_FILE_ENV, None)
        return lambda: None
    os.environ[MEMBERS_FILE_ENV] = str(directory / "members.json")
    return lambda: shutil.rmtree(directory, ignore_errors=True)


def applies_in_place(
    current: Config, running: Membership | None, new: Config, membership: Membership | None
) -> bool:
    """True when `new` differs from `current` in the member list or routing alone, and
    both are clusters with the same entry for this member (a forwarded request's proof
    names the entry it was sent to): the running workers can route by it as they are."""
    old, now = current.cluster, new.cluster
    if old is None or now is None or running is None or membership is None:
        return False
    if membership.local_member != running.local_member:
        return False
    same_rest = dataclasses.replace(
        new,
        cluster=dataclasses.replace(now, members=old.members, routing=old.routing),
        warnings=current.warnings,
        notices=current.notices,
    )
    return same_rest == current


def identity_or_none(path: Path | None) -> tuple[int, int, int] | None:
    try:
        return None if path is None else file_identity(path)
    except OSError:
        return None


class ConfigReloader:
    def __init__(
        self,
        path: Path,
        current: Config,
        membership: Membership | None,
        read: tuple[int, int, int] | None = None,
    ) -> None:
        """`read`: the file's identity before `current` was read from it (taken now if not
        given): a change made since, while the member was starting, is applied at the
        watch's first look."""
        self.path = path
        self.current = current
        self.membership = membership  # the list the running workers route by
        self._seen = read or identity_or_none(path)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the watch thread, SIGHUP's thread, Granian's hook
        self._respawn: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGHUP)

    def take_sighup(self) -> None:
        """Granian's start-up hook: SIGHUP checks the file first (`_apply`), and only a
        change beyond the member list reaches Granian's own handler, which replaces the
        workers."""
        granian = signal.getsignal(signal.SIGHUP)
        if not callable(granian):
            return
        self._respawn = lambda: granian(signal.SIGHUP, None)

        def on_sighup(signum: int, frame: object) -> None:
            # A signal handler must return quickly; the check may wait for names to resolve.
            threading.Thread(target=self._apply_logged, name="ocireg-sighup", daemon=True).start()

        signal.signal(signal.SIGHUP, on_sighup)

    def reload(self) -> None:
        """Granian's reload hook: check the file; publish it for the workers that replace
        the running ones, or keep the previous configuration."""
        try:
            with self._lock:
                checked = self._check()
                if checked is not None:
                    self._publish(*checked, how="workers restart one by one")
        except Exception:  # raised out of a hook, it would end Granian's main process
            log.exception(
                "configuration reload failed; the workers restart with the previous one",
                extra={"path": str(self.path)},
            )

    def _apply(self) -> None:
        """Apply the file in place when that suffices, else have Granian replace the
        workers (its reload hook checks the file again)."""
        with self._lock:
            # The file as it is now is applied (or refused) here: the watch need not look at
            # it again (an edit then SIGHUP, as docs/cluster.md says, was applied twice).
            # Taken before the read: an edit in between is seen by the watch.
            seen = identity_or_none(self.path)
            checked = self._check()
            if seen is not None:
                self._seen = seen
            if checked is None:
                return
            raw, config, membership = checked
            followed = MEMBERS_FILE_ENV in os.environ  # the workers follow a members file
            if not followed or not applies_in_place(
                self.current, self.membership, config, membership
            ):
                # Granian replaces the workers when its main loop comes to it, which may be
                # after a replacement under way (seconds): the file is read again then.
                log.info("configuration needs new workers", extra={"path": str(self.path)})
                self._respawn()
                return
            self._publish(raw, config, membership, how="workers apply the member list in place")

    def _apply_logged(self) -> None:
        try:
            self._apply()
        except Exception:  # the watch and SIGHUP outlive any one change they could not apply
            log.exception("configuration reload failed", extra={"path": str(self.path)})

    def _check(self) -> tuple[dict[str, Any], Config, Membership | None] | None:
        try:
            raw = read_config_file(self.path)
            config = checked_config(raw, self.path)
            self._refuse_socket_changes(config)
            membership = membership_from_config(config, timeout=RELOAD_RESOLVE_TIMEOUT)
        except ConfigError as exc:
            log.error(
                "configuration reload refused; the previous configuration stays in force",
                extra={"path": str(self.path), "error": str(exc)},
            )
            return None
        return raw, config, membership

    def _publish(
        self, raw: dict[str, Any], config: Config, membership: Membership | None, how: str
    ) -> None:
        publish(raw, membership)
        before = self.current.cluster.members if self.current.cluster else ()
        after = config.cluster.members if config.cluster else ()
        self.current = config
        self.membership = membership
        log.warning(
            f"configuration reloaded; {how}",
            extra={"path": str(self.path), "members_before": before, "members": after},
        )

    def _refuse_socket_changes(self, config: Config) -> None:
        old, new = self.current.http, config.http
        for key, a, b in (
            ("http.address", old.address, new.address),
            ("http.port", old.port, new.port),
            ("http.workers", old.workers, new.workers),
            ("http.tls", old.tls, new.tls),
        ):
            if a != b:
                raise ConfigError(key, f"changed from {a!r} to {b!r}: that needs a restart")

    # --- the file watch ------------------------------------------------------------------

    def watch(self) -> None:
        """Apply the file each time it changes (`_apply`); a daemon thread."""
        threading.Thread(target=self._watch, name="ocireg-config-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            self._look()

    def _look(self) -> None:
        """One look of the watch: apply the file if it changed since it was last applied."""
        seen = identity_or_none(self.path)
        if seen is not None and seen != self._seen:
            self._seen = seen
            log.info("configuration file changed", extra={"path": str(self.path)})
            self._apply_logged()


def file_identity(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced or rewritten (the config file, the members
    file), without reading it."""
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class MembersFile:
    """The member list the running workers of this member route by: written by the main
    process (`publish`), followed by each worker (`follow`), which applies a new list to
    its `Peers`. The key and this member's entry are not in it: they do not change
    in place."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, membership: Membership) -> None:
        body = {
            "members": list(membership.members),
            "routing": membership.routing,
            "localIndex": membership.local_index,
        }
        # The directory is under /tmp, which a cleaner may have emptied on a long-lived host.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(body))
        temporary.replace(self.path)  # a reader sees the old list or the new one, whole

    def read(self, current: Membership) -> Membership:
        body = json.loads(self.path.read_text())
        return Membership(
            tuple(body["members"]), int(body["localIndex"]), current.hash_key, body["routing"]
        )

    async def follow(self, peers: Peers) -> None:
        """Apply each new list to `peers`; a task for the life of the worker. The first look
        is at once: a list published while this worker was starting is not missed."""
        seen: tuple[int, int, int] | None = None
        failed = ""  # the last error logged: each is logged once, not every second
        while True:
            try:
                identity = file_identity(self.path)
                if identity != seen:
                    seen = identity
                    membership = self.read(peers.membership)
                    if membership != peers.membership:
                        peers.update(membership)
                        log.info(
                            "cluster member list applied", extra={"members": membership.members}
                        )
                failed = ""
            except FileNotFoundError:
                pass  # removed by a /tmp cleaner: the next list published writes it again
            except (OSError, ValueError, KeyError, TypeError) as exc:
                if str(exc) != failed:
                    failed = str(exc)
                    log.warning(
                        "cluster member list file unreadable; routing as before",
                        extra={"path": str(self.path), "error": failed},
                    )
            await asyncio.sleep(WATCH_EVERY)
