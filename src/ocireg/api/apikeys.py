"""zot's `/zot/auth/apikey` (routed with `http.auth.apikey`): the caller's API keys.

POST makes one from `{"label", "scopes", "expirationDate"}` and answers 201 with its
details and the key, shown this once; GET lists the caller's keys without them; DELETE
`?id=<uuid>` revokes one. Authentication has run (anonymous callers got 401 there:
`Kind.USER`); what a key is and does is `ocireg.auth.apikeys`'.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import limited_body, store_of, target
from ocireg.auth.apikeys import KeyRequestError, create_key, listed
from ocireg.config import Config
from ocireg.errors import ErrorCode, RegistryError
from ocireg.identity import IDENTITY_KEY, Identity
from ocireg.target import Endpoint

MAX_BODY = 8 << 10  # zot's MaxAPIKeyBodySize


def api_key_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """The routes to add to the API's table: none unless API keys are on (the path then
    answers 404)."""
    if not config.auth.api_keys:
        return {}
    return {
        (Endpoint.APIKEY, "POST"): create_api_key,
        (Endpoint.APIKEY, "GET"): list_api_keys,
        (Endpoint.APIKEY, "DELETE"): revoke_api_key,
    }


def _caller(request: Request) -> Identity:
    identity: Identity = request.scope[IDENTITY_KEY]
    assert identity.user is not None, "Kind.USER endpoints refuse anonymous callers"
    return identity


async def create_api_key(request: Request) -> Response:
    """POST /zot/auth/apikey."""
    async with limited_body(request, MAX_BODY, ErrorCode.API_KEY_REQUEST_TOO_LARGE) as body:
        try:
            payload = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            raise RegistryError(ErrorCode.API_KEY_REQUEST_INVALID, "body is not JSON") from None
    try:
        answer = await create_key(
            store_of(request).meta,
            _caller(request),
            payload,
            request.headers.get("user-agent", ""),
        )
    except KeyRequestError as exc:
        raise RegistryError(ErrorCode.API_KEY_REQUEST_INVALID, str(exc)) from None
    return JSONResponse(answer, status_code=201)


async def list_api_keys(request: Request) -> Response:
    """GET /zot/auth/apikey."""
    keys = await store_of(request).meta.api_keys(_caller(request).user or "")
    keys.sort(key=lambda details: (details.get("createdAt", ""), details.get("uuid", "")))
    return JSONResponse({"apiKeys": [listed(details) for details in keys]})


async def revoke_api_key(request: Request) -> Response:
    """DELETE /zot/auth/apikey?id=<uuid>. As zot: 200 whether or not the caller had such a
    key (another user's key is left alone)."""
    key_id = target(request).query.get("id")
    if key_id is None:
        raise RegistryError(ErrorCode.QUERY_INVALID, "id is required", {"missing": "id"})
    await store_of(request).meta.delete_api_key(_caller(request).user or "", key_id)
    return Response(status_code=200)
