"""What a request is aimed at, read once from its method, path and query.

`classify` is the one reading of a request. The classifying middleware stores its result in
the scope (`TARGET_KEY`) before anything else looks at the request; metrics labels,
authentication and authorization, cluster routing and the handlers all read that result and
never the raw path or query again. A request that two layers could read two ways (a
repeated `from`, an encoded key, a name that lands inside another repository) is refused
here, so they cannot disagree.

The path patterns are those of the distribution spec's endpoint table; a repository name is
everything between `/v2/` and the last fixed segment of its pattern (a name may itself have
a `manifests` or `tags` component, never a `blobs` one: see `names.RESERVED_COMPONENTS`).
Granian hands the path percent-decoded; the query string arrives raw and is decoded here,
once.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from ocireg import names
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError

TARGET_KEY = "ocireg.target"

# Query keys whose value changes what a request does: given twice, two readers could take
# different ones (the first, the last), so a repeat is refused rather than resolved.
MEANINGFUL_KEYS = frozenset(
    {
        "digest",
        "mount",
        "from",
        "n",
        "last",
        "artifactType",
        "q",
        "contains",
        "repository",
        "repo",  # the web pages' (page_repository routes by it) and userprefs'
        "action",  # userprefs'
        "reference",
        "id",  # an API key's (DELETE /zot/auth/apikey?id=)
    }
)


class Kind(enum.Enum):
    """How access control treats an endpoint."""

    HEALTH = "health"  # never needs credentials
    PING = "ping"  # GET /v2/, and unknown /v2/ paths (404 once authenticated)
    CATALOG = "catalog"
    REPOSITORY = "repository"
    OTHER = "other"  # outside /v2/: metrics and the like
    PAGE = "page"  # the web pages: they read their own session cookie (ocireg.ui)
    USER = "user"  # the caller's own records (API keys): any logged-in user, nobody else
    TOKEN = "token"  # zot's token exchange: it checks the credentials it is given itself


class Endpoint(enum.Enum):
    """The endpoints, each with its route template (the metrics label) and kind."""

    PING = ("/v2/", Kind.PING)
    CATALOG = ("/v2/_catalog", Kind.CATALOG)
    UPLOAD_START = ("/v2/{name:path}/blobs/uploads/", Kind.REPOSITORY)
    UPLOAD = ("/v2/{name:path}/blobs/uploads/{session}", Kind.REPOSITORY)
    BLOB = ("/v2/{name:path}/blobs/{digest}", Kind.REPOSITORY)
    MANIFEST = ("/v2/{name:path}/manifests/{reference}", Kind.REPOSITORY)
    TAGS = ("/v2/{name:path}/tags/list", Kind.REPOSITORY)
    REFERRERS = ("/v2/{name:path}/referrers/{digest}", Kind.REPOSITORY)
    CLUSTER = ("/v2/_ocireg/cluster", Kind.OTHER)  # a member's view of the cluster
    # zot's GraphQL search and the OCI extensions list: no repository named, the results
    # filtered per repository like the catalog's (routed only with extensions.search)
    GRAPHQL = ("/v2/_zot/ext/search", Kind.CATALOG)
    DISCOVER = ("/v2/_oci/ext/discover", Kind.CATALOG)
    # zot's stars and bookmarks (api/userprefs.py), authorized as search is; the `repo` of
    # its query is the target's repository, so that with separate storage per member the
    # cluster sends it to the member that holds (and keeps the marks of) that repository
    USERPREFS = ("/v2/_zot/ext/userprefs", Kind.CATALOG)
    # zot's login options for clients (api/mgmt.py): open to anyone, as in zot
    MGMT = ("/v2/_zot/ext/mgmt", Kind.HEALTH)
    # search (registry/search.py): a listing like the catalog, filtered by read access
    SEARCH = ("/v2/_ocireg/search", Kind.CATALOG)
    APIKEY = ("/zot/auth/apikey", Kind.USER)  # zot's API keys (routed with http.auth.apikey)
    TOKEN = ("/zot/auth/token", Kind.TOKEN)  # routed with http.auth.bearer.oidc
    LIVEZ = ("/livez", Kind.HEALTH)
    READYZ = ("/readyz", Kind.HEALTH)
    STARTUPZ = ("/startupz", Kind.HEALTH)
    PAGE = ("/ui", Kind.PAGE)  # `/` and `/ui/...`: the web pages (extensions.ui)
    UNKNOWN_V2 = ("unmatched", Kind.PING)  # under /v2/ but no endpoint: 404 NOT_FOUND
    OTHER = ("unmatched", Kind.OTHER)  # not ours to classify (/metrics, or nothing)

    def __init__(self, template: str, kind: Kind) -> None:
        self.template = template
        self.kind = kind


class Action(enum.Enum):
    """What the request does to its repository, as access control names it."""

    READ = "read"
    CREATE = "create"  # a tag PUT may turn out to be an update: decided by authorization
    DELETE = "delete"


_EXACT = {
    "/v2/": Endpoint.PING,
    "/v2": Endpoint.PING,
    "/v2/_catalog": Endpoint.CATALOG,
    "/v2/_ocireg/cluster": Endpoint.CLUSTER,
    "/v2/_zot/ext/search": Endpoint.GRAPHQL,
    "/v2/_oci/ext/discover": Endpoint.DISCOVER,
    "/v2/_zot/ext/userprefs": Endpoint.USERPREFS,
    "/v2/_zot/ext/mgmt": Endpoint.MGMT,
    "/v2/_ocireg/search": Endpoint.SEARCH,
    "/zot/auth/apikey": Endpoint.APIKEY,
    "/zot/auth/token": Endpoint.TOKEN,
    "/livez": Endpoint.LIVEZ,
    "/readyz": Endpoint.READYZ,
    "/startupz": Endpoint.STARTUPZ,
}

# In the order a router would try them (the upload patterns before the blob pattern), each
# with a substring every match contains: a cheap test before the regex.
_PATTERNS: tuple[tuple[Endpoint, str, re.Pattern[str]], ...] = tuple(
    (endpoint, marker, re.compile(pattern))
    for endpoint, marker, pattern in (
        # Also without its final slash: `uploads` is no digest, and `blobs` no name component.
        (Endpoint.UPLOAD_START, "/blobs/uploads", r"/v2/(?P<name>.*)/blobs/uploads/?"),
        (
            Endpoint.UPLOAD,
            "/blobs/uploads/",
            r"/v2/(?P<name>.*)/blobs/uploads/(?P<session>[^/]+)",
        ),
        (Endpoint.BLOB, "/blobs/", r"/v2/(?P<name>.*)/blobs/(?P<digest>[^/]+)"),
        (Endpoint.MANIFEST, "/manifests/", r"/v2/(?P<name>.*)/manifests/(?P<reference>[^/]+)"),
        (Endpoint.TAGS, "/tags/list", r"/v2/(?P<name>.*)/tags/list"),
        (Endpoint.REFERRERS, "/referrers/", r"/v2/(?P<name>.*)/referrers/(?P<digest>[^/]+)"),
    )
)

_NO_QUERY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Target:
    """One request, understood. `error` is set when the request cannot be served as asked;
    the classifying middleware raises it after storing the target (so metrics still know
    the endpoint)."""

    endpoint: Endpoint
    action: Action = Action.READ
    repository: str | None = None  # a valid name, not reserved
    reference: str | None = None  # a manifest's tag or digest, as given
    digest: Digest | None = None  # a blob's, or a referrers request's subject
    session: str | None = None  # an upload session id, as given
    tag: str | None = None  # the tag a manifest PUT writes
    query: Mapping[str, str] = field(default_factory=lambda: _NO_QUERY)  # decoded, once
    mount: Digest | None = None  # POST ?mount=<digest>&from=<repository>
    mount_from: str | None = None
    error: RegistryError | None = None

    @property
    def kind(self) -> Kind:
        return self.endpoint.kind


def target_of(scope: MutableMapping[str, Any]) -> Target:
    """The request's target: classified by the first layer that asks (the metrics layer,
    else the classifying middleware), stored in the scope, then read by everyone."""
    target = scope.get(TARGET_KEY)
    if target is None:
        target = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        scope[TARGET_KEY] = target
    assert isinstance(target, Target)
    return target


def drop_mount(scope: MutableMapping[str, Any]) -> None:
    """Serve the request as a plain upload start, not the mount it asks for (its `from`
    may not be read by this request): the spec lets a registry that does not mount answer
    202 with a session, and clients then send the blob's bytes."""
    scope[TARGET_KEY] = replace(target_of(scope), mount_from=None)


def classify(method: str, path: str, query_string: bytes = b"") -> Target:
    endpoint = _EXACT.get(path)
    if endpoint is not None:
        try:
            query = parse_query(query_string)
            repository = _valid(query.get("repo")) if endpoint is Endpoint.USERPREFS else None
            return Target(endpoint, _action(method), repository, query=query)
        except RegistryError as err:
            return Target(endpoint, _action(method), error=err)
    if not path.startswith("/v2/"):
        if is_page(path):
            return Target(Endpoint.PAGE, _action(method), page_repository(path, query_string))
        return Target(Endpoint.OTHER)
    for candidate, marker, pattern in _PATTERNS:
        if marker not in path:
            continue
        match = pattern.fullmatch(path)
        if match is not None:
            try:
                return _repository_target(candidate, method, match.groupdict(), query_string)
            except RegistryError as err:
                return Target(candidate, _action(method), error=err)
    return Target(Endpoint.UNKNOWN_V2)


# zot's OpenID login routes, served with the web pages (ocireg.ui.openid)
_LOGIN_PATHS = ("/zot/auth/login", "/zot/auth/logout")


def is_page(path: str) -> bool:
    """The web pages' paths (`ocireg.ui`): outside the API, never a repository's."""
    return (
        path in ("/", "/ui")
        or path.startswith(("/ui/", "/zot/auth/callback/"))
        or path in _LOGIN_PATHS
    )


def page_repository(path: str, query_string: bytes = b"") -> str | None:
    """The repository a page is about (`/ui/repo/<name>`, `/ui/image/<name>@<digest>`,
    `/ui/delete?repo=<name>`), so that with separate storage the cluster layer sends the page
    to the member that stores it, as it sends the API's requests; None for the other pages,
    and for a name that is not valid (the page itself says so)."""
    if path.startswith("/ui/repo/"):
        name = path.removeprefix("/ui/repo/")
    elif path.startswith("/ui/image/"):
        name = path.removeprefix("/ui/image/").rpartition("@")[0]
    elif path == "/ui/delete":
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        name = next((value for key, value in pairs if key == "repo"), "")
    else:
        return None
    return _valid(name)


def _valid(name: str | None) -> str | None:
    """`name` if it is a valid repository name, else None (the handler says why)."""
    if name is None:
        return None
    try:
        return names.validate_name(name)
    except RegistryError:
        return None


def _repository_target(
    endpoint: Endpoint, method: str, params: dict[str, str], query_string: bytes
) -> Target:
    repository = names.validate_name(params["name"])
    query = parse_query(query_string)
    action = _action(method)
    digest = Digest.parse(params["digest"]) if "digest" in params else None
    reference = params.get("reference")
    tag = None
    if endpoint is Endpoint.MANIFEST and method == "PUT" and reference and names.is_tag(reference):
        tag = reference
    mount = mount_from = None
    if endpoint is Endpoint.UPLOAD_START and query.get("mount") and query.get("from"):
        mount = Digest.parse(query["mount"])
        mount_from = names.validate_name(query["from"])
    return Target(
        endpoint,
        action,
        repository,
        reference=reference,
        digest=digest,
        session=params.get("session"),
        tag=tag,
        query=query,
        mount=mount,
        mount_from=mount_from,
    )


def _action(method: str) -> Action:
    if method in ("GET", "HEAD", "OPTIONS"):
        return Action.READ
    if method == "DELETE":
        return Action.DELETE
    return Action.CREATE


def parse_query(query_string: bytes) -> Mapping[str, str]:
    """The query, percent-decoded once; a repeated meaningful key is QUERY_INVALID."""
    if not query_string:
        return _NO_QUERY
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in query and key in MEANINGFUL_KEYS:
            raise RegistryError(ErrorCode.QUERY_INVALID, detail={"repeated": key})
        query.setdefault(key, value)
    return MappingProxyType(query)


class ClassifyMiddleware:
    """Makes sure every HTTP request is classified before the layers below it look, and
    answers the target's error, if any, before they run (the metrics layer above has
    already labelled the request by its endpoint)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = target_of(scope).error
            if error is not None:
                raise error
        await self.app(scope, receive, send)
