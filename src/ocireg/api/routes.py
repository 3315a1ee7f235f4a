"""The route table: one line per endpoint and method of the distribution spec.

Paths are not matched here: `ocireg.target.classify` has already said which endpoint a
request is for, and `ocireg.api.dispatch` looks the handler up by (endpoint, method).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ocireg.api import base, blobs, discovery, manifests, search, uploads
from ocireg.api.responses import RawParts
from ocireg.registry import ImageStore
from ocireg.target import Endpoint, Target

Handler = Callable[[Request], Awaitable[Response]]
# Handlers of the requests a pull makes most, answered with raw ASGI messages: for them
# Starlette's Request and Response cost about as much as the work itself.
RawHandler = Callable[[ImageStore, Target, bool], Awaitable[RawParts]]

RAW_ROUTES: dict[tuple[Endpoint, str], RawHandler] = {
    (Endpoint.MANIFEST, "GET"): manifests.get_manifest_parts,
    (Endpoint.MANIFEST, "HEAD"): manifests.get_manifest_parts,
    (Endpoint.BLOB, "HEAD"): blobs.head_blob_parts,
}

ROUTES: dict[tuple[Endpoint, str], Handler] = {
    (Endpoint.PING, "GET"): base.api_version,
    (Endpoint.CATALOG, "GET"): discovery.catalog,
    (Endpoint.SEARCH, "GET"): search.search,
    (Endpoint.UPLOAD_START, "POST"): uploads.start_upload,
    (Endpoint.UPLOAD, "PATCH"): uploads.patch_upload,
    (Endpoint.UPLOAD, "PUT"): uploads.complete_upload,
    (Endpoint.UPLOAD, "GET"): uploads.get_upload,
    (Endpoint.UPLOAD, "DELETE"): uploads.cancel_upload,
    (Endpoint.BLOB, "GET"): blobs.get_blob,
    (Endpoint.BLOB, "DELETE"): blobs.delete_blob,
    (Endpoint.MANIFEST, "PUT"): manifests.put_manifest,
    (Endpoint.MANIFEST, "DELETE"): manifests.delete_manifest,
    (Endpoint.TAGS, "GET"): discovery.list_tags,
    (Endpoint.REFERRERS, "GET"): discovery.list_referrers,
    (Endpoint.LIVEZ, "GET"): base.livez,
    (Endpoint.READYZ, "GET"): base.readyz,
    (Endpoint.STARTUPZ, "GET"): base.startupz,
}
