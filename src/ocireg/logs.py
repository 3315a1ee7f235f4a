"""JSON-lines logging with the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str, output: Path | None, audit: Path | None = None) -> None:
    """Route every `ocireg.*` logger to stderr or `output`, one JSON object per line; the
    audit logger (`audit_log`) to the file `audit` alone, or nowhere."""
    logger = logging.getLogger("ocireg")
    logger.handlers[:] = [_json_lines_to(output)]
    logger.setLevel(_LEVELS.get(level, logging.INFO))
    logger.propagate = False
    audit_logger = logging.getLogger(AUDIT_LOGGER)
    audit_logger.propagate = False
    audit_logger.handlers[:] = []
    if audit is None:
        audit_logger.disabled = True
        return
    audit_logger.handlers[:] = [_json_lines_to(audit)]
    audit_logger.setLevel(logging.INFO)  # whatever `log.level` says, as zot's
    audit_logger.disabled = False


AUDIT_LOGGER = "ocireg.audit"


def _json_lines_to(path: Path | None) -> logging.Handler:
    """A handler writing JSON lines to the file `path`, or to stderr."""
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    return handler


def audit_log() -> logging.Logger | None:
    """The audit logger when `log.audit` names a file (zot's audit log), else None."""
    logger = logging.getLogger(AUDIT_LOGGER)
    return None if logger.disabled or not logger.handlers else logger


class Progress:
    """Where a run over every repository stands (gc, scrub, rebuild-meta), logged every
    `every` seconds and once at the end, so that a run over 100,000 repositories is not silent
    for an hour."""

    def __init__(
        self,
        logger: logging.Logger,
        job: str,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.job, self.every, self.clock = logger, job, every, clock
        self.started = self.last = clock()
        self.done = 0

    def step(self, repository: str) -> None:
        """One more repository finished."""
        self.done += 1
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._log("progress", repository=repository)

    def finish(self) -> None:
        self._log("finished")

    def _log(self, what: str, **extra: Any) -> None:
        self.logger.info(
            f"{self.job} {what}",
            extra={
                "repositories": self.done,
                "seconds": round(self.clock() - self.started, 1),
                **extra,
            },
        )
