"""`storage.subPaths` (zot's): repositories whose name starts with a given first component
are kept under another root directory, each sub path with its own dedupe, commit and
garbage-collection keys. zot's rule picks the sub path: `/team` takes `team/app` and
`team/x/y`, never `team` itself, and a key of more than one component never takes anything.
A repository keeps its whole name under the sub path's root (`<root>/team/app`), as in zot.

As in zot, a key absent from a sub path is Go's zero value (dedupe, gc and commit off), and
a sub path with gc on gets zot's gcDelay and gcInterval defaults (1h). Sub paths are on local
disk only; everything else (the metadata store, locks) stays with the default storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocireg.errors import ConfigError
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
# zot's storage keys a sub path may have that ocireg does not read there (warnings); a
# storageDriver is refused instead: the repositories would be looked for on local disk.
_UNIMPLEMENTED = ("remoteCache", "cacheDriver", "redirectBlobURL", "maxRepos", "gcTimeWindow")


@dataclass(frozen=True)
class SubPath:
    route: str  # the first name component it takes: "team" for the key "/team"
    root_directory: Path
    dedupe: bool = False
    commit: bool = False
    gc: bool = False
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    retention: RetentionSettings = field(default_factory=RetentionSettings)


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
    if found and ctx.get("storage.storageDriver"):
        raise ConfigError(
            "storage.subPaths", "sub paths need the default storage on local disk too"
        )
    _apart(resolve_path(str(ctx.get("storage.rootDirectory")), ctx.base), found)
    return tuple(found)


def _apart(default_root: Path, subs: list[SubPath]) -> None:
    """As zot requires: no two storages share a root, nor has one inside another's (its
    repositories would also be found there, under other names)."""
    roots = [("storage.rootDirectory", default_root.resolve())]
    roots += [(f"storage.subPaths./{s.route}", s.root_directory.resolve()) for s in subs]
    for i, (where, root) in enumerate(roots):
        for other, other_root in roots[:i]:
            if root == other_root:
                raise ConfigError(f"{where}.rootDirectory", f"the same directory as {other}")
            if root.is_relative_to(other_root) or other_root.is_relative_to(root):
                raise ConfigError(
                    f"{where}.rootDirectory", f"one of it and {other} is inside the other"
                )


def _sub_path(ctx: Context, route: str, node: Any, where: str) -> SubPath:
    raw = canonical_keys(node or {}, (*_KEYS, "storageDriver"), where, _UNIMPLEMENTED, ctx.warnings)
    if raw.get("storageDriver"):
        raise ConfigError(join(where, "storageDriver"), "ocireg keeps sub paths on local disk only")
    if not isinstance(raw.get("rootDirectory"), str) or not raw["rootDirectory"]:
        raise ConfigError(join(where, "rootDirectory"), "required: where these repositories are")
    gc = boolean(raw.get("gc", False), join(where, "gc"))
    return SubPath(
        route=route,
        root_directory=resolve_path(raw["rootDirectory"], ctx.base),
        dedupe=boolean(raw.get("dedupe", False), join(where, "dedupe")),
        commit=boolean(raw.get("commit", False), join(where, "commit")),
        gc=gc,
        gc_delay=duration(raw.get("gcDelay", "1h" if gc else 0), join(where, "gcDelay")),
        gc_interval=duration(raw.get("gcInterval", "1h" if gc else 0), join(where, "gcInterval")),
        retention=retention_of(raw.get("retention"), join(where, "retention"), gc),
    )
