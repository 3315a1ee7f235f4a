"""The route table: one line per endpoint of the distribution spec.

`{name:path}` is greedy and the suffixes below are fixed, so a repository name may itself
contain `manifests` or `blobs` components; upload routes come before blob routes.
"""

from __future__ import annotations

from starlette.routing import Route

from ocireg.api import base, blobs, discovery, manifests, uploads

ROUTES = [
    Route("/v2/", base.api_version, methods=["GET"]),
    Route("/v2/_catalog", discovery.catalog, methods=["GET"]),
    Route("/v2/{name:path}/blobs/uploads/", uploads.start_upload, methods=["POST"]),
    Route("/v2/{name:path}/blobs/uploads/{session}", uploads.patch_upload, methods=["PATCH"]),
    Route("/v2/{name:path}/blobs/uploads/{session}", uploads.complete_upload, methods=["PUT"]),
    Route("/v2/{name:path}/blobs/uploads/{session}", uploads.get_upload, methods=["GET"]),
    Route("/v2/{name:path}/blobs/uploads/{session}", uploads.cancel_upload, methods=["DELETE"]),
    Route("/v2/{name:path}/blobs/{digest}", blobs.get_blob, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/blobs/{digest}", blobs.delete_blob, methods=["DELETE"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.get_manifest, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.put_manifest, methods=["PUT"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.delete_manifest, methods=["DELETE"]),
    Route("/v2/{name:path}/tags/list", discovery.list_tags, methods=["GET"]),
    Route("/v2/{name:path}/referrers/{digest}", discovery.list_referrers, methods=["GET"]),
    Route("/livez", base.livez, methods=["GET"]),
    Route("/readyz", base.readyz, methods=["GET"]),
    Route("/startupz", base.startupz, methods=["GET"]),
]
