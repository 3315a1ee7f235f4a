"""`storage.subPaths` (zot's): repositories whose name starts with a given first component
are kept under another root directory, each sub path with its own dedupe, commit and
garbage-collection keys. zot's rule picks the sub path: `/team` takes `team/app` and
`team/x/y`, never `team` itself, and a key of more than one component never takes anything.
A repository keeps its whole name under the sub path's root (`<root>/team/app`), as in zot.

A sub path is on local disk (`rootDirectory`), or on S3 with a `storageDriver` of its own
(bucket, prefix, endpoint, credentials: zot's keys, as `storage.storageDriver`), under a
default storage on either. As in zot, a key absent from a sub path is Go's zero value
(dedupe, gc and commit off), and a sub path with gc on gets zot's gcDelay and gcInterval
defaults (1h). The metadata store and the locks stay with the default storage: a sub path
on S3 needs nothing on local disk (zot keeps its cache file under the sub path's
`rootDirectory` there; ocireg reads and ignores that key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings.drivers import S3Settings, parse_driver_map, s3_dedupe_notice
from ocireg.settings.keys import (
    Context,
    boolean,
    canonical_keys,
    duration,
    join,
    resolve_path,
)
from ocireg.settings.retention import RetentionSettings, retention_of

_KEYS = ("rootDirectory", "dedupe", "commit", "gc", "gcDelay", "gcInterval", "retention")
# zot's storage keys a sub path may have that ocireg does not read there (warnings): one
# metadata store serves every root (the default storage's), redirects follow the top level.
_UNIMPLEMENTED = ("remoteCache", "cacheDriver", "redirectBlobURL", "maxRepos", "gcTimeWindow")


@dataclass(frozen=True)
class SubPath:
    route: str  # the first name component it takes: "team" for the key "/team"
    root_directory: Path | None  # on local disk; None on S3
    s3: S3Settings | None = None  # its own bucket and prefix; None on local disk
    dedupe: bool = False
    commit: bool = False
    gc: bool = False
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def location(self) -> str:
        """Where its repositories are, as one text: a directory, or S3's endpoint, bucket
        and key prefix (the metadata store notes these: server/services.py)."""
        if self.s3 is not None:
            return self.s3.location
        assert self.root_directory is not None
        return str(self.root_directory.resolve())


def route_of(repo: str) -> str | None:
    """zot's route prefix of a repository name, without its slash: its first component, or
    None for a one-component name (always the default storage's)."""
    first, slash, _ = repo.partition("/")
    return first if slash else None


def sub_path_of(sub_paths: tuple[SubPath, ...], repo: str) -> SubPath | None:
    """The sub path that takes `repo`, None when it is the default storage's."""
    route = route_of(repo)
    return next((sub for sub in sub_paths if sub.route == route), None)


def parse_sub_paths(ctx: Context) -> tuple[SubPath, ...]:
    node = ctx.get("storage.subPaths")
    if not node:
        return ()
    found = []
    for key in sorted(node):
        where = f"storage.subPaths.{key}"
        route = str(key).lower()  # zot's keys are read lower-cased
        if not route.startswith("/") or not route[1:] or "/" in route[1:]:
            # zot compares "/" and a name's first component with the key as written
            ctx.notices.append(
                f"{where}: takes no repository (a sub path is chosen by the first component of"
                " a repository's name, and its key is that component after a slash: /team)"
            )
            continue
        found.append(_sub_path(ctx, route[1:], node[key], where))
    default = parse_driver_map(ctx.get("storage.storageDriver"), "storage.storageDriver")
    if found and default is None:
        _apart_on_disk(resolve_path(str(ctx.get("storage.rootDirectory")), ctx.base), found)
    elif found:
        _apart_on_disk(None, found)
    _apart_on_s3(default, found)
    return tuple(found)


# A storage's place, to compare with the others': the key that names the storage, what
# only places of one group can collide in (an S3 endpoint and bucket), and its path there.
_Place = tuple[str, object, PurePath]


def _apart(places: list[_Place], key: str, noun: str) -> None:
    """No two places of one group are the same, nor is one inside another (its
    repositories would also be found there, under other names); the error names the
    storage's `key`."""
    for i, (where, group, path) in enumerate(places):
        for other, other_group, other_path in places[:i]:
            if group != other_group:
                continue
            if path == other_path:
                raise ConfigError(f"{where}.{key}", f"the same {noun} as {other}")
            if path.is_relative_to(other_path) or other_path.is_relative_to(path):
                raise ConfigError(f"{where}.{key}", f"one of it and {other} is inside the other")


def _apart_on_disk(default_root: Path | None, subs: list[SubPath]) -> None:
    """As zot requires: no two storages on local disk share a root, nor has one inside
    another's."""
    places: list[_Place] = []
    if default_root is not None:
        places.append(("storage.rootDirectory", None, default_root.resolve()))
    places += [
        (f"storage.subPaths./{s.route}", None, s.root_directory.resolve())
        for s in subs
        if s.root_directory is not None
    ]
    _apart(places, "rootDirectory", "directory")


def _apart_on_s3(default: S3Settings | None, subs: list[SubPath]) -> None:
    """The same for the storages on S3, by their key prefixes in one bucket of one endpoint.
    zot compares their local `rootDirectory` (its cache files) instead, and lets two share a
    prefix, where each would list the other's repositories as its own."""
    stores = [] if default is None else [("storage.storageDriver", default)]
    stores += [(f"storage.subPaths./{s.route}.storageDriver", s.s3) for s in subs if s.s3]
    places: list[_Place] = [
        (where, (s3.endpoint, s3.bucket), PurePath("/", s3.prefix)) for where, s3 in stores
    ]
    _apart(places, "rootdirectory", "prefix")


def _sub_path(ctx: Context, route: str, node: Any, where: str) -> SubPath:
    raw = canonical_keys(node or {}, (*_KEYS, "storageDriver"), where, _UNIMPLEMENTED, ctx.warnings)
    s3 = parse_driver_map(
        raw.get("storageDriver"), join(where, "storageDriver"), ctx.warnings, ctx.notices
    )
    root: Path | None = None
    if s3 is None:
        if not isinstance(raw.get("rootDirectory"), str) or not raw["rootDirectory"]:
            raise ConfigError(
                join(where, "rootDirectory"), "required: where these repositories are"
            )
        root = resolve_path(raw["rootDirectory"], ctx.base)
    gc = boolean(raw.get("gc", False), join(where, "gc"))
    dedupe = boolean(raw.get("dedupe", False), join(where, "dedupe"))
    if s3 is not None and dedupe:
        ctx.notices.append(s3_dedupe_notice(join(where, "dedupe")))
    return SubPath(
        route=route,
        root_directory=root,
        s3=s3,
        dedupe=dedupe,
        commit=boolean(raw.get("commit", False), join(where, "commit")),
        gc=gc,
        gc_delay=duration(raw.get("gcDelay", "1h" if gc else 0), join(where, "gcDelay")),
        gc_interval=duration(raw.get("gcInterval", "1h" if gc else 0), join(where, "gcInterval")),
        retention=retention_of(raw.get("retention"), join(where, "retention"), gc),
    )
