"""Configuration reload without a restart: on SIGHUP, and when the file changes.

Granian's main process respawns its workers one by one on SIGHUP (a new worker starts, then
the old one stops after finishing its requests), keeping the listening socket. Before it
does, `ConfigReloader.reload` (a Granian reload hook, in the main process) reads and checks
the file. A valid file becomes the configuration the new workers build themselves from (the
parsed map travels in the environment, so every worker of one generation sees the same
text even if the file changes again meanwhile). An invalid one is refused with an error log
line, and the new workers start from the previous configuration: the member keeps serving.

What a reload applies: everything a worker builds at start, notably `cluster.members`,
`cluster.routing` and `http.accessControl`. What it cannot: the listening socket and the
worker count (`http.address`, `http.port`, `http.tls`, `http.workers`), and this member's
own entry must stay in `cluster.members`; changes there are refused or logged as needing a
restart.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from ocireg.cluster.membership import membership_from_config
from ocireg.config import Config, build_config, read_config_file
from ocireg.errors import ConfigError

log = logging.getLogger("ocireg.server")

# The map the current generation of workers builds from (JSON), set by the main process.
CONFIG_DATA_ENV = "OCIREG_CONFIG_DATA"
LOCAL_MEMBER_ENV = "OCIREG_CLUSTER_LOCAL_MEMBER"
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


def publish(raw: dict[str, Any], local_member: int | None) -> None:
    """Hand the next workers this configuration (and, in a cluster, their member index)."""
    os.environ[CONFIG_DATA_ENV] = json.dumps(raw)
    if local_member is None:
        os.environ.pop(LOCAL_MEMBER_ENV, None)
    else:
        os.environ[LOCAL_MEMBER_ENV] = str(local_member)


class ConfigReloader:
    def __init__(self, path: Path, current: Config) -> None:
        self.path = path
        self.current = current
        self._seen = self._identity()
        self._stop = threading.Event()

    def reload(self) -> None:
        """Granian's reload hook: check the file; publish it, or keep the previous one."""
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
            return
        publish(raw, membership.local_index if membership else None)
        before = self.current.cluster.members if self.current.cluster else ()
        after = config.cluster.members if config.cluster else ()
        self.current = config
        log.warning(
            "configuration reloaded; workers restart one by one",
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
        """Signal ourselves (SIGHUP) when the file changes; a daemon thread."""
        threading.Thread(target=self._watch, name="ocireg-config-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            seen = self._identity()
            if seen is not None and seen != self._seen:
                self._seen = seen
                log.info("configuration file changed", extra={"path": str(self.path)})
                os.kill(os.getpid(), signal.SIGHUP)
