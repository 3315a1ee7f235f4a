"""`/v2/_zot/ext/search` over HTTP, as zot serves it, and `/v2/_oci/ext/discover`.

zot (gqlgen) takes a query as `GET ?query=` (zui, and zli, which also sends it as the body
of its GET) or as a JSON body `{"query", "variables", "operationName"}` to POST with
`Content-Type: application/json`. A query that does not parse or validate is answered 422,
a POST of another type 400 ("transport not supported"), both in GraphQL's
`{"errors": [{"message"}], "data": null}`; errors while resolving come with 200 and the data
that could be resolved, as in zot.

The request has been authenticated and authorized as the catalog is (`Kind.CATALOG`: the
endpoint names no repository, so in a cluster the member that received it answers it for
the whole registry); every result is then filtered by what the caller may read.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLError, parse, validate
from graphql.execution import ExecutionResult, execute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ocireg.api.common import store_of
from ocireg.api.graphql.limits import check_limits
from ocireg.api.graphql.schema import search_schema
from ocireg.api.graphql.source import Access, Source
from ocireg.api.mgmt import MGMT_PATH
from ocireg.auth.grants import grants
from ocireg.auth.policy import AccessPolicy
from ocireg.config import Config
from ocireg.identity import identity_of
from ocireg.target import Endpoint

SEARCH_PATH = "/v2/_zot/ext/search"
# zot's userprefs path (api/userprefs.py, which imports this module)
USERPREFS_PATH = "/v2/_zot/ext/userprefs"
# A query is text: zui's and zli's are under 1 KiB. Parsing 1 MiB took seconds of a worker.
MAX_BODY = 64 << 10
# Texts up to this size are kept parsed (`_cached`): every client query, and little memory
# (a syntax tree is ~80 times its text).
CACHED_TEXT = 4 << 10
_POLICY_KEY = "graphql_policy"


def search_routes(config: Config) -> dict[tuple[Endpoint, str], Any]:
    """The routes to add to the API's table: none unless `extensions.search` is enabled
    (the paths then answer 404 like any unknown /v2/ path)."""
    if not config.search.enabled:
        return {}
    # as zot lists them: userprefs only where it is routed
    endpoints = [SEARCH_PATH, *([USERPREFS_PATH] if config.ui.enabled else []), MGMT_PATH]
    extension = {
        "name": "_zot",
        "url": "https://github.com/project-zot/zot/blob/main/pkg/extensions/_zot.md",
        "description": "zot registry extensions",
        "endpoints": endpoints,
    }
    document = {"extensions": [extension]}

    async def discover(request: Request) -> Response:
        """The OCI extensions discovery document; zli looks for the search endpoint here
        before it sends a query."""
        return JSONResponse(document)

    return {
        (Endpoint.GRAPHQL, "GET"): search,
        (Endpoint.GRAPHQL, "POST"): search,
        (Endpoint.DISCOVER, "GET"): discover,
    }


async def search(request: Request) -> Response:
    try:
        query, variables, operation = await _read_request(request)
    except _Refused as refused:
        return _errors(refused.status, refused.message)
    schema = search_schema()
    try:
        document, problems = _checked(query)
    except GraphQLError as err:
        return _errors(422, err.message)
    if problems:
        return _answer(422, ExecutionResult(None, list(problems)))
    identity = identity_of(request.scope)
    source = Source(store_of(request), access_of(request), identity.user)
    result = execute(
        schema,
        document,
        context_value=source,
        variable_values=variables,
        operation_name=operation,
    )
    if not isinstance(result, ExecutionResult):
        result = await result
    return _answer(200, result)


def _checked(query: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]]:
    """The query parsed, within `limits`, and validated; a short text once per text."""
    if len(query) > MAX_BODY:  # a GET's ?query= (a POST's body is bounded as it is read)
        raise GraphQLError(f"query longer than {MAX_BODY} bytes")
    return _cached(query) if len(query) <= CACHED_TEXT else _check(query)


@lru_cache(maxsize=256)
def _cached(query: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]]:
    """zui and zli send a few texts again and again, and validating one costs more than
    answering it from cached facts."""
    return _check(query)


def _check(query: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]]:
    document = parse(query)
    check_limits(document)
    return document, tuple(validate(search_schema(), document))


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_request(request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
    """(query, variables, operationName) from the query string (GET) or the JSON body."""
    if request.method in ("GET", "HEAD"):
        params = request.query_params
        variables = _variables(params.get("variables"))
        return params.get("query") or "", variables, params.get("operationName") or None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Refused(400, "transport not supported")
    body = await _bounded_body(request)
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise _Refused(400, f"json request body could not be decoded: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("query", ""), str):
        raise _Refused(400, "json request body could not be decoded")
    variables = doc.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise _Refused(400, "variables must be an object")
    operation = doc.get("operationName")
    return doc.get("query") or "", variables, operation if isinstance(operation, str) else None


def _variables(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        variables = json.loads(raw)
    except ValueError:
        raise _Refused(400, "variables could not be decoded") from None
    if not isinstance(variables, dict):
        raise _Refused(400, "variables must be an object")
    return variables


async def _bounded_body(request: Request) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refused(413, f"request body larger than {MAX_BODY} bytes")
        parts.append(chunk)
    return b"".join(parts)


def access_of(request: Request) -> Access:
    """What the caller may read and delete, decided as the API decides it: a bearer token's
    grants, else `accessControl`, else (authentication alone, or none) everything."""
    identity = identity_of(request.scope)
    if identity.method == "bearer":
        return Access(
            read=lambda repo: grants(identity.access, "repository", repo, "pull"),
            delete=lambda repo: grants(identity.access, "repository", repo, "delete"),
        )
    policy = _policy(request)
    if policy is None:
        return Access(read=lambda _: True, delete=lambda _: True)
    return Access(
        read=lambda repo: policy.can(identity, "read", repo),
        delete=lambda repo: policy.can(identity, "delete", repo),
    )


def _policy(request: Request) -> AccessPolicy | None:
    state = request.app.state
    if not hasattr(state, _POLICY_KEY):
        settings = state.config.auth.access_control
        setattr(state, _POLICY_KEY, AccessPolicy(settings) if settings else None)
    policy: AccessPolicy | None = getattr(state, _POLICY_KEY)
    return policy


def _errors(status: int, message: str) -> Response:
    return JSONResponse({"errors": [{"message": message}], "data": None}, status_code=status)


def _answer(status: int, result: ExecutionResult) -> Response:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [err.formatted for err in result.errors]
    body["data"] = result.data
    return JSONResponse(body, status_code=status)
