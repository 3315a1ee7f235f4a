"""end-1: the API version check, and the health probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import store_of
from ocireg.storage import StorageUnavailable


async def api_version(request: Request) -> Response:
    """end-1: GET /v2/."""
    return JSONResponse({})


async def livez(request: Request) -> Response:
    return Response(status_code=200)


async def readyz(request: Request) -> Response:
    """Ready while storage answers; load balancers stop sending traffic otherwise."""
    try:
        await store_of(request).driver.health()
    except StorageUnavailable as exc:
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    return Response(status_code=200)


async def startupz(request: Request) -> Response:
    return Response(status_code=200)
