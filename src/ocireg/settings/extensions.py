"""`extensions.metrics`, `extensions.scrub`, `extensions.search`, `extensions.ui` and
`extensions.lint` (zot's keys). A section that is present, even empty (YAML null), enables
the extension, as in zot (whose lint alone does not do so: without `enable` every manifest
push there answers 500)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings.keys import Context, boolean, check_keys, lower_keys, parse_duration
from ocireg.target import is_page

DEFAULT_SCRUB_INTERVAL = 24 * 3600.0


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = False
    path: str = "/metrics"


@dataclass(frozen=True)
class ScrubSettings:
    enabled: bool = False
    interval: float = DEFAULT_SCRUB_INTERVAL  # zot raises anything under 2h; we do not


def parse_metrics(ctx: Context) -> MetricsSettings:
    where = "extensions.metrics"
    section = _extension(ctx, where, ("prometheus",))
    if section is None:
        return MetricsSettings()
    raw, enabled = section
    prometheus = lower_keys(raw.get("prometheus") or {}, f"{where}.prometheus")
    check_keys(prometheus, ("path",), f"{where}.prometheus")
    path = prometheus.get("path", "/metrics")
    # Not under the web pages either: they skip authentication (ocireg.target.is_page).
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("/v2/"):
        raise ConfigError(
            f"{where}.prometheus.path", f"expected an absolute path outside /v2/, got {path!r}"
        )
    if is_page(path):
        raise ConfigError(f"{where}.prometheus.path", f"{path!r} is a web page's path")
    return MetricsSettings(enabled, path)


def parse_scrub(ctx: Context) -> ScrubSettings:
    where = "extensions.scrub"
    section = _extension(ctx, where, ("interval",))
    if section is None:
        return ScrubSettings()
    raw, enabled = section
    interval = parse_duration(raw.get("interval", "24h"), f"{where}.interval")
    if interval <= 0:
        raise ConfigError(f"{where}.interval", f"expected a positive duration, got {interval}")
    return ScrubSettings(enabled, interval)


@dataclass(frozen=True)
class SearchSettings:
    enabled: bool = False


@dataclass(frozen=True)
class UISettings:
    enabled: bool = False


def parse_search(ctx: Context) -> SearchSettings:
    where = "extensions.search"
    section = _extension(ctx, where, ("cve",))
    if section is None:
        return SearchSettings()
    raw, enabled = section
    if raw.get("cve") is not None:
        # zot's vulnerability scanning (trivy); a zot config that has it still loads.
        ctx.warnings.append(f"{where}.cve")
    return SearchSettings(enabled)


def parse_ui(ctx: Context) -> UISettings:
    where = "extensions.ui"
    section = _extension(ctx, where, ())
    if section is None:
        return UISettings()
    _, enabled = section
    search = _extension(ctx, "extensions.search", ("cve",))
    if enabled and not (search is not None and search[1]):
        # as zot: the pages list and find through the search extension
        raise ConfigError(f"{where}.enable", "the UI needs extensions.search enabled")
    return UISettings(enabled)


@dataclass(frozen=True)
class LintSettings:
    # Annotation keys every image manifest pushed must have (in its annotations or its
    # config's labels); empty: nothing is checked.
    mandatory_annotations: tuple[str, ...] = ()


def parse_lint(ctx: Context) -> LintSettings:
    where = "extensions.lint"
    section = _extension(ctx, where, ("mandatoryannotations",))
    if section is None:
        return LintSettings()
    raw, enabled = section
    keys = raw.get("mandatoryannotations") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(
            f"{where}.mandatoryAnnotations", f"expected a list of annotation keys, got {keys!r}"
        )
    return LintSettings(tuple(dict.fromkeys(keys)) if enabled else ())


def _extension(
    ctx: Context, where: str, known: tuple[str, ...]
) -> tuple[dict[str, Any], bool] | None:
    """The extension's map (keys lower-cased and checked) and its `enable` flag, or None
    when the section is absent."""
    if not ctx.has(where):
        return None
    raw = lower_keys(ctx.get(where) or {}, where)
    check_keys(raw, ("enable", *known), where)
    return raw, boolean(raw.get("enable", True), f"{where}.enable")
