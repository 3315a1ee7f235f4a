"""`extensions.sync` (zot's keys, case-insensitive): typed settings and their validation.

`sync_settings(config)` is the one entry point; it reads nothing but the config (the
credentials file is read when the sync service starts, `load_credentials`). A section that
is present, even empty, enables sync unless `enable` is false, as in zot.

Keys zot knows and ocireg does not implement are accepted and listed in
`SyncSettings.ignored` (the service logs them once); keys nobody knows are errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ocireg.errors import ConfigError
from ocireg.globs import GlobError, compile_glob
from ocireg.goregexp import GoRegexp, GoRegexpError, compile_go
from ocireg.settings.keys import Context, boolean, canonical_keys, duration, join, string

if TYPE_CHECKING:
    from ocireg.config import Config

SECTION = "extensions.sync"
# zot stages each copy in `downloadDir` (and requires it with S3) so that nothing half-copied
# reaches storage; here a copy's blobs go through the store's own upload sessions, which are
# invisible until their digest is verified, and its manifests last (docs/sync.md).
DOWNLOAD_DIR_UNUSED = (
    f"{SECTION}.downloadDir is not used: copies are staged in the store's upload sessions, "
    "invisible until verified; nothing is written there"
)
_TOP_KEYS = ("enable", "credentialsFile", "downloadDir", "registries")
_REGISTRY_KEYS = (
    "urls",
    "onDemand",
    "pollInterval",
    "manifestCheckInterval",
    "tlsVerify",
    "certDir",
    "maxRetries",
    "retryDelay",
    "maxRetryDelay",
    "syncTimeout",
    "content",
    "preserveDigest",
    "onlySigned",
    "syncLegacyCosignTags",
)
# zot's registry keys that change nothing here: accepted, reported once.
_REGISTRY_IGNORED = (
    "credentialHelper",
    "oauth2CredentialHelper",
    "reqConcurrent",
    "reqPerSec",
    "disableHTTP2",
    "maxIdleConnsPerHost",
)
_CONTENT_KEYS = ("prefix", "tags", "destination", "stripPrefix")
_TAG_KEYS = ("regex", "excludeRegex", "semver")
DEFAULT_SYNC_TIMEOUT = 3600.0  # one whole image copy; a stall is caught sooner (read timeout)


@dataclass(frozen=True)
class TagFilter:
    regex: GoRegexp | None = None
    exclude: GoRegexp | None = None
    semver: bool = False


@dataclass(frozen=True)
class ContentRule:
    prefix: str  # a doublestar glob over upstream repository names
    destination: str = ""
    strip_prefix: bool = False
    tags: TagFilter | None = None


@dataclass(frozen=True)
class RegistrySettings:
    urls: tuple[str, ...]
    on_demand: bool = False
    poll_interval: float = 0.0  # 0: no periodic sync
    manifest_check_interval: float = 0.0  # 0: a tag is checked upstream on every request
    tls_verify: bool = True
    cert_dir: Path | None = None
    max_retries: int = 0
    retry_delay: float = 0.0
    max_retry_delay: float = 0.0
    sync_timeout: float = DEFAULT_SYNC_TIMEOUT
    content: tuple[ContentRule, ...] = ()
    only_signed: bool = False  # copy only images the upstream holds a signature of
    # cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`): copied with their subject, and a
    # `.sig` tag counts as a signature for `only_signed`
    legacy_cosign_tags: bool = True


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class SyncSettings:
    enabled: bool = False
    credentials_file: Path | None = None
    download_dir: Path | None = None  # accepted, not used: see DOWNLOAD_DIR_UNUSED
    registries: tuple[RegistrySettings, ...] = ()
    ignored: tuple[str, ...] = field(default=())

    @property
    def on_demand(self) -> tuple[RegistrySettings, ...]:
        return tuple(r for r in self.registries if r.on_demand) if self.enabled else ()

    @property
    def periodic(self) -> tuple[RegistrySettings, ...]:
        if not self.enabled:
            return ()
        return tuple(r for r in self.registries if r.poll_interval > 0 and r.content)


def sync_settings(config: Config) -> SyncSettings:
    """The typed `extensions.sync` of a loaded config (parsed by `parse_sync`)."""
    return config.sync


def parse_sync(ctx: Context) -> SyncSettings:
    """Parse `extensions.sync` (the parser of `config.SECTIONS`); absent means disabled."""
    if not ctx.has(SECTION):
        return SyncSettings()
    ignored: list[str] = []
    raw = canonical_keys(ctx.get(SECTION) or {}, _TOP_KEYS, SECTION, (), ignored)
    enabled = _bool(raw, "enable", True, SECTION)
    registries = raw.get("registries") or []
    if not isinstance(registries, list):
        raise ConfigError(f"{SECTION}.registries", f"expected a list, got {registries!r}")
    parsed = tuple(
        _registry(entry, f"{SECTION}.registries[{i}]", ignored)
        for i, entry in enumerate(registries)
    )
    credentials = raw.get("credentialsFile")
    download = raw.get("downloadDir")
    return SyncSettings(
        enabled=enabled,
        credentials_file=Path(string(credentials, f"{SECTION}.credentialsFile", required=False))
        if credentials
        else None,
        download_dir=Path(string(download, f"{SECTION}.downloadDir", required=False))
        if download
        else None,
        registries=parsed,
        ignored=tuple(ignored),
    )


def check_sync(config: Config) -> list[str]:
    """For `ocireg verify` and start-up: the section parsed (errors raise `ConfigError`);
    returns warnings: the zot-only keys that are ignored, and a credentials file that cannot
    be used (zot then syncs without credentials, and so does ocireg)."""
    settings = sync_settings(config)
    warnings = [f"{key}: zot option not implemented by ocireg; ignored" for key in settings.ignored]
    if settings.enabled and settings.download_dir is not None:
        warnings.append(DOWNLOAD_DIR_UNUSED)
    if settings.enabled and settings.credentials_file is not None:
        try:
            load_credentials(settings.credentials_file)
        except ConfigError as err:
            warnings.append(f"{err}; syncing without credentials")
    return warnings


def load_credentials(path: Path) -> dict[str, Credentials]:
    """zot's credentials file: `{"host[:port]": {"username": ..., "password": ...}}`."""
    where = f"{SECTION}.credentialsFile"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(where, f"{path}: expected a map of host to credentials")
    out: dict[str, Credentials] = {}
    for host, entry in data.items():
        fields = {str(k).lower(): v for k, v in entry.items()} if isinstance(entry, dict) else {}
        user, password = fields.get("username"), fields.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise ConfigError(f"{where}[{host}]", "expected {username, password} strings")
        out[str(host)] = Credentials(user, password)
    return out


def _registry(raw: Any, where: str, ignored: list[str]) -> RegistrySettings:
    entry = canonical_keys(raw, _REGISTRY_KEYS, where, _REGISTRY_IGNORED, ignored)
    urls = entry.get("urls")
    if not isinstance(urls, list) or not urls:
        raise ConfigError(f"{where}.urls", f"expected a non-empty list of URLs, got {urls!r}")
    for i, url in enumerate(urls):
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{where}.urls[{i}]", f"expected an http(s) URL, got {url!r}")
    retries = entry.get("maxRetries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(
            f"{where}.maxRetries", f"expected a non-negative integer, got {retries!r}"
        )
    if retries and "retryDelay" not in entry:
        raise ConfigError(f"{where}.retryDelay", "required when maxRetries is set")
    retry_delay = _duration(entry, "retryDelay", 0, where)
    content = entry.get("content") or []
    if not isinstance(content, list):
        raise ConfigError(f"{where}.content", f"expected a list, got {content!r}")
    cert_dir = entry.get("certDir")
    timeout = _duration(entry, "syncTimeout", 0, where)
    return RegistrySettings(
        urls=tuple(u.rstrip("/") for u in urls),
        on_demand=_bool(entry, "onDemand", False, where),
        poll_interval=_duration(entry, "pollInterval", 0, where),
        manifest_check_interval=_duration(entry, "manifestCheckInterval", 0, where),
        tls_verify=_bool(entry, "tlsVerify", True, where),
        cert_dir=Path(string(cert_dir, f"{where}.certDir", required=False)) if cert_dir else None,
        max_retries=retries,
        retry_delay=retry_delay,
        max_retry_delay=max(retry_delay, _duration(entry, "maxRetryDelay", 0, where)),
        sync_timeout=timeout or DEFAULT_SYNC_TIMEOUT,
        content=tuple(_content(c, f"{where}.content[{i}]") for i, c in enumerate(content)),
        only_signed=_bool(entry, "onlySigned", False, where),
        legacy_cosign_tags=_bool(entry, "syncLegacyCosignTags", True, where),
    )


def _content(raw: Any, where: str) -> ContentRule:
    entry = canonical_keys(raw, _CONTENT_KEYS, where)
    prefix = entry.get("prefix")
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise ConfigError(f"{where}.prefix", f"expected a repository glob, got {prefix!r}")
    try:
        compile_glob(prefix.removeprefix("/"))
    except GlobError as exc:
        raise ConfigError(f"{where}.prefix", f"invalid repository glob: {exc}") from None
    destination = entry.get("destination", "")
    tags = entry.get("tags")
    return ContentRule(
        prefix=prefix,
        destination=string(destination, f"{where}.destination", required=False)
        if destination
        else "",
        strip_prefix=_bool(entry, "stripPrefix", False, where),
        tags=_tags(tags, f"{where}.tags") if tags is not None else None,
    )


def _tags(raw: Any, where: str) -> TagFilter:
    entry = canonical_keys(raw, _TAG_KEYS, where)
    return TagFilter(
        regex=_regex(entry.get("regex"), f"{where}.regex"),
        exclude=_regex(entry.get("excludeRegex"), f"{where}.excludeRegex"),
        semver=_bool(entry, "semver", False, where),
    )


def _regex(value: Any, where: str) -> GoRegexp | None:
    if value is None or value == "":
        return None
    try:
        return compile_go(string(value, where, required=False))
    except GoRegexpError as exc:
        raise ConfigError(where, f"not a valid regular expression: {exc}") from None


def _bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    """The key's value, `default` when absent."""
    return boolean(raw.get(key, default), join(where, key))


def _duration(raw: dict[str, Any], key: str, default: Any, where: str) -> float:
    return duration(raw.get(key, default), join(where, key))
