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
    """Every error the registry answers: message, HTTP status, and the code on the wire.

    One entry per situation, so no call site picks a status: where two situations share a
    spec code but not a status (a chunk out of order is BLOB_UPLOAD_INVALID with 416, a
    malformed upload request BLOB_UPLOAD_INVALID with 400), each has its own entry naming
    the wire code it answers with.
    """

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
    # Variants of spec codes: the same code on the wire, another status.
    UPLOAD_RANGE_INVALID = (
        "chunk does not continue the upload where it stands",
        416,
        "BLOB_UPLOAD_INVALID",
    )
    MANIFEST_TOO_LARGE = ("manifest too large", 413, "MANIFEST_INVALID")
    # zot's answers (405 DENIED) to a DELETE of what the repository's images still need: a
    # blob that is one of its manifests or that one names, a manifest an index names
    BLOB_REFERENCED = (
        "blob is a manifest of the repository or named by one; delete the manifest first",
        405,
        "DENIED",
    )
    MANIFEST_REFERENCED = (
        "manifest is named by an image index of the repository; delete the index first",
        405,
        "DENIED",
    )
    # Not in the spec's list, which has no code for these situations; same envelope.
    QUERY_INVALID = ("query parameter repeated or malformed", 400)
    PAGINATION_NUMBER_INVALID = ("n must be a non-negative integer", 400)
    NOT_FOUND = ("no such endpoint", 404)
    METHOD_NOT_ALLOWED = ("method not allowed on this endpoint", 405, "UNSUPPORTED")
    RANGE_INVALID = ("requested range not satisfiable", 416)
    REQUEST_TIMEOUT = ("no request body received for too long", 408)
    BODY_INVALID = ("request body ended before its end, or its chunked framing is malformed", 400)
    # zot's /zot/auth/apikey answers these with an empty body; here in the same envelope
    API_KEY_REQUEST_INVALID = ("API key request invalid", 400)
    API_KEY_REQUEST_TOO_LARGE = ("API key request body too large", 413)
    # zot's /zot/auth/token answers these with UNSUPPORTED and a reason; so here
    TOKEN_REQUEST_INVALID = ("token request invalid", 400, "UNSUPPORTED")
    TOKEN_REQUEST_TOO_LARGE = ("token request body too large", 413, "UNSUPPORTED")
    AUTHORIZATION_REPEATED = ("several Authorization headers", 401, "UNSUPPORTED")
    LOOP_DETECTED = ("request forwarded by a cluster member is not owned here", 508)
    UNKNOWN = ("unknown error", 500)
    UNAVAILABLE = ("service unavailable", 503)

    def __init__(self, message: str, status: int, wire: str | None = None) -> None:
        self.message = message
        self.status = status
        self.wire = wire or self.name


class RegistryError(Exception):
    """An error that becomes the spec's `{"errors": [...]}` response. `headers` are for the
    HTTP layers (a challenge, a Content-Range); the registry layer sets none."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{code.wire}: {self.message}")

    @property
    def status(self) -> int:
        return self.code.status

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code.wire, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


class ConfigError(Exception):
    """A configuration problem, with the key path and what was expected."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
