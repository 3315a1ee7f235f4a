"""Run the app under Granian: N worker processes on one port, uvloop, optional TLS."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from granian import Granian
from granian.constants import Interfaces, Loops
from granian.log import LogLevels

from ocireg.cluster.membership import DEFAULT_RESOLVE_TIMEOUT, membership_from_config
from ocireg.config import Config
from ocireg.server.app import CONFIG_ENV
from ocireg.server.metrics import prepare_multiprocess_dir
from ocireg.server.reload import ConfigReloader, prepare_members_file, publish
from ocireg.ui.session import publish_instance_secret

RELOAD_OVERLAP = 4.0  # seconds an old and a new worker serve side by side on a reload
# Bounded wait for cluster member names that do not resolve yet (seconds).
RESOLVE_TIMEOUT_ENV = "OCIREG_CLUSTER_RESOLVE_TIMEOUT"

log = logging.getLogger("ocireg.server")


def serve(config: Config, raw: dict[str, Any], read: tuple[int, int, int] | None = None) -> None:
    """Serve `config`, which was built from the map `raw` (the file's content); `read`: the
    file's identity before it was read (server/reload.py, `ConfigReloader`)."""
    # Workers are separate processes that build their app from the published map themselves.
    os.environ[CONFIG_ENV] = str(config.source.resolve()) if config.source else ""
    # Found once here, so a start-up error is one clear message and every worker agrees.
    timeout = float(os.environ.get(RESOLVE_TIMEOUT_ENV) or DEFAULT_RESOLVE_TIMEOUT)
    membership = membership_from_config(config, timeout=timeout)
    cleanup_members_file = prepare_members_file()
    publish(raw, membership)
    publish_instance_secret()  # the web sessions' key without a cluster (ui/session.py)
    if membership is not None:
        log.info(
            "cluster member",
            extra={"member": membership.local_member, "members": list(membership.members)},
        )
    # Before any worker exists: workers inherit the metrics directory through the environment.
    cleanup_metrics = prepare_multiprocess_dir(config)
    tls = config.http.tls
    server = Granian(
        "ocireg.server.app:app_from_environment",
        factory=True,
        address=config.http.address,
        port=config.http.port,
        interface=Interfaces.ASGI,
        workers=config.http.workers,
        loop=Loops.uvloop,
        log_enabled=True,
        log_level=_granian_level(config.log.level),
        ssl_cert=Path(tls.cert) if tls else None,
        ssl_key=Path(tls.key) if tls else None,
        ssl_ca=Path(tls.cacert) if tls and tls.cacert else None,
        # Granian can only require client certificates or not: with http.tls.cacert every
        # client must present one signed by it (zot verifies only certificates that are given).
        ssl_client_verify=bool(tls and tls.cacert),
        respawn_failed_workers=True,
        # On a reload (SIGHUP, server/reload.py) Granian starts a new worker, waits this
        # long, then stops the old one; it does not wait for the new one to listen. Shorter,
        # and clients meet refused connections in between (docs/cluster.md, "Adding and
        # removing members"). Crashed workers are respawned at once.
        respawn_interval=RELOAD_OVERLAP,
    )
    reloader = ConfigReloader(config.source, config, membership, read) if config.source else None
    if reloader is not None:
        # SIGHUP and a saved file: a new member list is applied in place by the running
        # workers; any other change respawns them, after this hook (server/reload.py)
        server.on_startup(reloader.take_sighup)
        server.on_reload(reloader.reload)
        reloader.watch()
    log.info(
        "starting",
        extra={
            "address": config.http.address,
            "port": config.http.port,
            "workers": config.http.workers,
            "root": str(config.storage.root_directory),
            "subPaths": {f"/{s.route}": s.location for s in config.sub_paths},
        },
    )
    try:
        server.serve()
    finally:
        if reloader is not None:
            reloader.stop()
        cleanup_metrics()
        cleanup_members_file()


def _granian_level(level: str) -> LogLevels:
    return LogLevels(
        {"warn": "warning", "panic": "critical", "fatal": "critical"}.get(level, level)
    )
