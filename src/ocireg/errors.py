"""The one error type of the registry and the table of OCI error codes.

The distribution spec names codes but not statuses; the statuses here are the ones real
clients and the conformance suite expect. Handlers never pick a status by hand: they raise
`RegistryError(ErrorCode.X)` and one middleware renders the spec's JSON envelope.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.Enum):
    """OCI error codes with their default message and HTTP status."""

    BLOB_UNKNOWN = ("blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("blob upload unknown to registry", 404)
    DIGEST_INVALID = ("provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("manifest references a manifest or blob unknown to registry", 400)
    MANIFEST_INVALID = ("manifest invalid", 400)
    MANIFEST_UNKNOWN = ("manifest unknown to registry", 404)
    NAME_INVALID = ("invalid repository name", 400)
    NAME_UNKNOWN = ("repository name not known to registry", 404)
    SIZE_INVALID = ("provided length did not match content length", 400)
    UNAUTHORIZED = ("authentication required", 401)
    DENIED = ("requested access to the resource is denied", 403)
    UNSUPPORTED = ("the operation is unsupported", 405)
    TOOMANYREQUESTS = ("too many requests", 429)
    # Not in the spec's list, which has no code for these situations; same envelope.
    NOT_FOUND = ("no such endpoint", 404)
    RANGE_INVALID = ("requested range not satisfiable", 416)
    REQUEST_TIMEOUT = ("no request body received for too long", 408)
    LOOP_DETECTED = ("request forwarded by a cluster member is not owned here", 508)
    UNKNOWN = ("unknown error", 500)
    UNAVAILABLE = ("service unavailable", 503)

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


class RegistryError(Exception):
    """An error that becomes the spec's `{"errors": [...]}` response."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.status = status or code.status
        self.headers = dict(headers or {})
        super().__init__(f"{code.name}: {self.message}")

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


class ConfigError(Exception):
    """A configuration problem, with the key path and what was expected."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
