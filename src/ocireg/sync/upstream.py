"""The client of one upstream registry entry: its URLs tried in order, Basic and Docker/OCI
token authentication, TLS from `tlsVerify`/`certDir`, bounded reads and timeouts.

Every answer that is not what the distribution spec promises becomes an `UpstreamError`
naming the upstream and the reason; `UpstreamMissing` is the upstream's plain "not found":
the next URL is still asked (it may hold what this one lacks), but it is not counted or
logged as an upstream error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import RegistryError
from ocireg.registry.manifests import MANIFEST_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX
from ocireg.sync.settings import Credentials, RegistrySettings

log = logging.getLogger("ocireg.sync")
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0  # no byte for this long: the upstream has stalled
MAX_LIST_PAGES = 1000
# A blob's bytes are handed on in pieces of up to BLOB_PIECE: each piece costs the copy a
# hash job, a write job and a send to each client following it, so few large pieces cost
# less than many small ones (docs/performance.md, workload 10). A smaller piece goes when
# nothing more has arrived and it holds at least BLOB_PIECE_MIN (a client following the copy
# of a slow upstream, and the session's file, still get bytes as they come).
# At most RING/8 (transfers.py): the pieces a follower can no longer get from memory must be
# on disk already, and up to 8 pieces wait to be written (1 read and waiting for room, 2 read
# ahead, 1 at hand, 4 queued in the write lane).
BLOB_PIECE = 2 << 20
BLOB_PIECE_MIN = 512 << 10
# aiohttp pauses reading the socket when this much is buffered and not yet read: the
# default (64 KiB) pauses and resumes it every few pieces.
READ_BUFFER = 1 << 20
ACCEPT = ", ".join(sorted(MANIFEST_TYPES))
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
T = TypeVar("T")
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class UpstreamError(Exception):
    def __init__(self, upstream: str, reason: str, transient: bool = False) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.transient = transient  # worth another URL or a retry


class UpstreamMissing(UpstreamError):
    """The upstream answered that the repository, manifest or blob does not exist."""


@dataclass(frozen=True)
class Fetched:
    """A manifest read from upstream, its digest verified."""

    body: bytes
    media_type: str
    digest: Digest
    upstream: str


Recorder = Callable[[str, str, float], None]  # (kind, label, amount): see SyncService


def no_record(kind: str, label: str, amount: float) -> None:
    pass


def ssl_context(settings: RegistrySettings) -> ssl.SSLContext:
    """Docker's certs.d layout: `*.crt` are CAs, `client.cert` + `client.key` a client pair."""
    ctx = ssl.create_default_context()
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    directory = settings.cert_dir
    if directory is not None and directory.is_dir():
        for ca in sorted(directory.glob("*.crt")):
            ctx.load_verify_locations(cafile=str(ca))
        cert, key = directory / "client.cert", directory / "client.key"
        if cert.exists() and key.exists():
            ctx.load_cert_chain(str(cert), str(key))
    return ctx


def remote_path(base_url: str, repo: str) -> str:
    """Docker Hub keeps official images under `library/`; clients add it, so does sync."""
    if urlsplit(base_url).hostname in _DOCKER_HUB and "/" not in repo:
        return f"library/{repo}"
    return repo


class Upstream:
    """One `registries[]` entry. One per worker process; sessions are made on first use."""

    def __init__(
        self,
        settings: RegistrySettings,
        credentials: dict[str, Credentials],
        record: Recorder = no_record,
    ) -> None:
        self.settings = settings
        self.urls = settings.urls
        self.credentials = credentials
        self.record = record
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (url, scope) -> token
        self._schemes: dict[str, str] = {}  # url -> "basic"|"bearer", as last challenged
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT, sock_read=min(IDLE_TIMEOUT, settings.sync_timeout)
        )

    @property
    def name(self) -> str:
        return self.urls[0]

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            needs_tls = any(u.startswith("https:") for u in self.urls)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=64, ssl=ssl_context(self.settings) if needs_tls else False
                ),
                timeout=self._timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                read_bufsize=READ_BUFFER,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- the registry API -----------------------------------------------------------------

    async def manifest(self, repo: str, reference: str) -> Fetched:
        """GET a manifest; its digest checked against the reference or Docker-Content-Digest."""
        async with self._request("GET", repo, f"manifests/{reference}") as (url, resp):
            declared = resp.headers.get("Docker-Content-Digest")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            body = await _read_capped(resp, MAX_MANIFEST_BYTES, url)
        expected = _parse_digest(reference) or _parse_digest(declared or "")
        digest = Digest.of(body, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise UpstreamError(
                url, f"manifest digest mismatch: expected {expected}, got {digest} for {reference}"
            )
        if media_type not in MANIFEST_TYPES:
            media_type = _sniff(body, url)
        return Fetched(body, media_type, digest, url)

    async def manifest_digest(self, repo: str, reference: str) -> Digest:
        """HEAD a manifest: the digest upstream holds for a tag now."""
        async with self._request("HEAD", repo, f"manifests/{reference}") as (_, resp):
            declared = _parse_digest(resp.headers.get("Docker-Content-Digest", ""))
        if declared is None:  # some registries only say it on GET
            return (await self.manifest(repo, reference)).digest
        return declared

    @contextlib.asynccontextmanager
    async def blob(
        self, repo: str, digest: Digest
    ) -> AsyncIterator[tuple[int | None, AsyncIterator[bytes]]]:
        """The blob's size (if the upstream says it) and its bytes as they arrive (the caller
        verifies the digest while storing)."""
        async with self._request("GET", repo, f"blobs/{digest}") as (url, resp):

            async def pieces() -> AsyncIterator[bytes]:
                # The pieces aiohttp received, taken as they are (no join), joined once.
                parts: list[bytes] = []
                size = taken = 0
                try:
                    async for part, _ in resp.content.iter_chunks():
                        parts.append(part)
                        size += len(part)
                        taken += len(part)
                        idle = resp.content.total_bytes <= taken  # nothing more buffered
                        if size >= BLOB_PIECE or (idle and size >= BLOB_PIECE_MIN):
                            yield parts[0] if len(parts) == 1 else b"".join(parts)
                            parts, size = [], 0
                    if size:
                        yield b"".join(parts)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.record("upstream_error", self.name, 1)
                    raise UpstreamError(url, f"blob transfer failed: {_reason(exc)}") from None

            yield resp.content_length, pieces()

    async def tags(self, repo: str) -> list[str]:
        return await self._list(repo, "tags/list", "tags")

    async def catalog(self) -> list[str]:
        return await self._list(None, "_catalog", "repositories")

    async def referrers(self, repo: str, digest: Digest) -> list[dict[str, Any]] | None:
        """The referrers index's descriptors; None where the upstream has no referrers API."""
        try:
            async with self._request("GET", repo, f"referrers/{digest}") as (url, resp):
                body = await _read_capped(resp, MAX_MANIFEST_BYTES, url)
        except UpstreamMissing:
            return None
        # None: not a referrers answer (e.g. a registry that predates it)
        return index_descriptors(body)

    async def _list(self, repo: str | None, path: str, key: str) -> list[str]:
        items: list[str] = []
        next_path: str | None = path
        for _ in range(MAX_LIST_PAGES):
            if next_path is None:
                break
            async with self._request("GET", repo, next_path) as (url, resp):
                body = await _read_capped(resp, MAX_MANIFEST_BYTES, url)
                link = resp.headers.get("Link", "")
            try:
                page = jsondoc.loads(body).get(key) or []
            except (ValueError, AttributeError):
                raise UpstreamError(url, f"malformed {path} answer") from None
            items.extend(str(i) for i in page if isinstance(i, str))
            next_path = _next_page(link)
        return items

    # --- requests, URL failover and authentication -------------------------------------------

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, repo: str | None, path: str
    ) -> AsyncIterator[tuple[str, aiohttp.ClientResponse]]:
        """A successful response from the first URL that gives one."""
        failure: UpstreamError | None = None
        for base in self.urls:
            if repo is None:
                url = f"{base}/v2/{path}"
                scope = "registry:catalog:*"
            else:
                name = remote_path(base, repo)
                url = f"{base}/v2/{name}/{path}"
                scope = f"repository:{name}:pull"
            try:
                resp = await self._send(method, base, url, scope)
            except UpstreamError as exc:
                failure = exc
                # A plain "not found" (a tag not there, a registry without the referrers
                # API) is an answer, not a failure of the upstream: not counted, not logged.
                if not isinstance(exc, UpstreamMissing):
                    self.record("upstream_error", self.name, 1)
                    log.warning("upstream failed", extra={"upstream": base, "reason": exc.reason})
                continue
            try:
                yield url, resp
            finally:
                resp.release()
            return
        assert failure is not None
        raise failure

    async def _send(self, method: str, base: str, url: str, scope: str) -> aiohttp.ClientResponse:
        headers = {"Accept": ACCEPT} if "/manifests/" in url else {}
        resp = await self._raw(method, url, {**headers, **self._auth(base, scope)})
        if resp.status == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            auth = await self._answer(base, scope, challenge)
            resp = await self._raw(method, url, {**headers, **auth})
        if resp.status < 300:
            return resp
        status = resp.status
        detail = await _error_text(resp)
        resp.release()
        if status == 404:
            raise UpstreamMissing(url, f"not found: {detail}")
        raise UpstreamError(url, f"HTTP {status}: {detail}", transient=status in _TRANSIENT)

    async def _raw(self, method: str, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        try:
            return await self.session().request(method, url, headers=headers, max_redirects=5)
        except aiohttp.TooManyRedirects:
            raise UpstreamError(url, "too many redirects") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamError(url, f"unreachable: {_reason(exc)}", transient=True) from None

    def _basic(self, base: str) -> dict[str, str]:
        creds = self.credentials.get(urlsplit(base).netloc)
        if creds is None:
            return {}
        pair = f"{creds.username}:{creds.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def _auth(self, base: str, scope: str) -> dict[str, str]:
        """What to send before being challenged: what the last challenge asked for."""
        if self._schemes.get(base) == "basic":
            return self._basic(base)
        token = self._tokens.get((base, scope))
        if token is not None and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        return {}

    async def _answer(self, base: str, scope: str, challenge: str) -> dict[str, str]:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            self._schemes[base] = "basic"
            if not self._basic(base):
                raise UpstreamError(base, "requires credentials (none in credentialsFile)")
            return self._basic(base)
        if scheme != "bearer" or "realm" not in params:
            raise UpstreamError(base, f"unsupported authentication challenge {challenge[:100]!r}")
        self._schemes[base] = "bearer"
        query = {"scope": params.get("scope", scope)}
        if "service" in params:
            query["service"] = params["service"]
        token_url = urljoin(base, params["realm"]) + "?" + urlencode(query)
        resp = await self._raw("GET", token_url, self._basic(base))
        try:
            if resp.status != 200:
                raise UpstreamError(base, f"token server answered HTTP {resp.status}")
            body = await _read_capped(resp, 1 << 20, token_url)
        finally:
            resp.release()
        try:
            doc = jsondoc.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
            lifetime = 0.0
        if not isinstance(token, str) or not token:
            raise UpstreamError(base, "token server gave no token")
        # Refresh a little early: the token must not expire between two requests of a copy.
        self._tokens[(base, scope)] = (token, time.monotonic() + max(lifetime - 10, 5))
        return {"Authorization": f"Bearer {token}"}


async def with_retries(
    settings: RegistrySettings,
    attempt: Callable[[], Awaitable[T]],
    deadline: float | None = None,
) -> T:
    """`maxRetries` more attempts after a transient failure, `retryDelay` apart, doubling up
    to `maxRetryDelay` (zot's semantics: fixed when that is unset). With `deadline` (a
    `time.monotonic()` value), no attempt starts after it: a client waits that long at most."""
    delay = settings.retry_delay
    for remaining in range(settings.max_retries, -1, -1):
        try:
            return await attempt()
        except UpstreamError as exc:
            late = deadline is not None and time.monotonic() + delay > deadline
            if not exc.transient or remaining == 0 or late:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.max_retry_delay)
    raise AssertionError("unreachable")


# --- helpers -----------------------------------------------------------------------------------


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise UpstreamError(url, f"answer too large ({resp.content_length} > {limit} bytes)")
    data = bytearray()
    try:
        async for piece in resp.content.iter_chunked(64 << 10):
            data += piece
            if len(data) > limit:
                raise UpstreamError(url, f"answer too large (over {limit} bytes)")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamError(url, f"read failed: {_reason(exc)}", transient=True) from None
    return bytes(data)


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        return (await resp.content.read(300)).decode("utf-8", "replace").strip()
    return ""


def index_descriptors(body: bytes) -> list[dict[str, Any]] | None:
    """The descriptors (with a digest) an index lists; None if `body` is not an index."""
    try:
        doc = jsondoc.loads(body)
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
    except ValueError:
        manifests = None
    if not isinstance(manifests, list):
        return None
    return [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]


def _parse_digest(text: str) -> Digest | None:
    try:
        return Digest.parse(text) if ":" in text else None
    except RegistryError:
        return None


def _sniff(body: bytes, url: str) -> str:
    try:
        doc = jsondoc.loads(body)
    except ValueError:
        raise UpstreamError(url, "manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise UpstreamError(url, "manifest is not a JSON object")
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type in MANIFEST_TYPES:
        return media_type
    if "manifests" in doc:
        return OCI_INDEX
    return "application/vnd.oci.image.manifest.v1+json"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def _next_page(link: str) -> str | None:
    """The `rel="next"` target of a Link header, as a path below /v2/."""
    if 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    path = urlsplit(target)
    text = path.path + (f"?{path.query}" if path.query else "")
    return text.removeprefix("/v2/") if text.startswith("/v2/") else None


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    key, value, quoted, current = "", "", False, ""
    for ch in rest + ",":
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            key, _, value = current.partition("=")
            if key.strip():
                params[key.strip().lower()] = value.strip().strip('"')
            current = ""
        else:
            current += ch
    return scheme.lower(), params
