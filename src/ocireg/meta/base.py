"""The metadata-store contract. Storage is the source of truth: everything here can be
rebuilt from it (`ocireg rebuild-meta`), and a store that comes back empty (a new Redis, a
FLUSHALL) says so through `ready()` until the rebuild has run."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

# Enough for a worker that missed a burst of writes by others to catch up without re-reading.
INDEX_CHANGES_KEPT = 64
# The format of the search index's records. A store marked ready for another format counts
# as not ready, so the index is rebuilt (in the background, or by `ocireg rebuild-meta`):
# raised when records gain a field that reads rely on (2: `listed` and `updated`).
SEARCH_FORMAT = 2
# What a user may mark a repository with (zot's userprefs): a star counts, a bookmark is theirs.
STAR = "star"
BOOKMARK = "bookmark"
MARKS = (STAR, BOOKMARK)


class Push(NamedTuple):
    """A push of a manifest: when (seconds since the epoch), and by whom ("": anonymous)."""

    at: float
    by: str = ""


@dataclass(frozen=True)
class SearchStamps:
    """What the search index noted of a repository's tags and manifests (zot's
    TaggedTimestamp, PushTimestamp and PushedBy; registry/search.py)."""

    tagged: dict[str, float] = field(default_factory=dict)  # tag -> when it was created
    pushes: dict[str, Push] = field(default_factory=dict)  # digest -> its first push


class MetaUnavailable(Exception):
    """The store cannot be reached; requests that need it get 503."""


class MetaStore(Protocol):
    name: str

    async def ready(self) -> bool:
        """True once a rebuild completed on this store (and nothing flushed it since)."""
        ...

    async def mark_ready(self) -> None: ...

    async def swap_storage_layout(self, layout: str) -> str | None:
        """Record `layout` (which directories hold which repositories: `storage.subPaths`)
        and return the one recorded before, in one step; None when there was none.
        `clear()` leaves it."""
        ...

    async def try_rebuild_lock(self, owner: str, seconds: int) -> bool:
        """Claim the right to rebuild for `seconds`; False when someone else holds it."""
        ...

    async def clear(self) -> None:
        """Forget everything ocireg stored (before a rebuild)."""
        ...

    async def add_referrer(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None: ...

    async def remove_referrer(self, repo: str, subject: str, digest: str) -> None: ...

    async def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]: ...

    async def set_blob_location(self, digest: str, path: str) -> None: ...

    async def blob_location(self, digest: str) -> str | None:
        """A storage path known to hold the bytes of `digest` (for dedupe stubs)."""
        ...

    async def blob_copies(self, digest: str) -> list[str]:
        """The paths zot's dedupe cache records for `digest` (its original and the stubs it
        left), as zot wrote them; empty where that cache cannot be read (zot's bolt file)."""
        ...

    async def moved_blob(self, digest: str, old: str, new: str) -> None:
        """The bytes of `digest` moved from `old` to `new` (paths as `blob_location` gives
        them): `new` is its location from now on, in zot's dedupe cache too where that named
        `old`."""
        ...

    async def add_repository(self, name: str) -> None:
        """Note that repository `name` exists (the catalog index)."""
        ...

    async def repositories_after(self, last: str, limit: int) -> list[str]:
        """Up to `limit` repository names greater than `last` in byte order."""
        ...

    async def mark_scanned(self, repo: str, digests: list[str]) -> None:
        """Note that these manifests of `repo` were looked at for a subject (their referrers,
        if any, are recorded)."""
        ...

    async def scanned(self, repo: str) -> set[str]:
        """The manifests of `repo` looked at for a subject."""
        ...

    async def add_index_change(
        self, repo: str, before: str | None, after: str, change: str
    ) -> None:
        """Note that index.json of `repo` went from version `before` to `after` by `change`
        (JSON); only the most recent INDEX_CHANGES_KEPT per repository are kept."""
        ...

    async def index_changes(self, repo: str) -> list[tuple[str | None, str, str]]:
        """The kept changes of `repo`, oldest first: (before, after, change)."""
        ...

    async def index_version(self, repo: str) -> str | None:
        """The value kept under `repo`'s index-version key (registry/versions.py gives it its
        meaning), None when there is none or it has expired."""
        ...

    async def set_index_version(self, repo: str, value: str, ttl: int) -> None:
        """Replace the key's value, whatever it was; it expires after `ttl` seconds."""
        ...

    async def swap_index_version(
        self, repo: str, expected: str | None, value: str, ttl: int
    ) -> bool:
        """Atomically: if the key holds `expected` (None: there is no key, or it expired),
        set it to `value` for `ttl` seconds and return True; else change nothing, False."""
        ...

    # --- push and pull times, pull counts: retention's rules, search's counts ---------------
    # Not rebuildable from storage, so `clear()` leaves them; a store that loses them (a
    # FLUSHALL) loses the time they were first kept too, which makes retention cautious again.

    async def record_pulls(
        self, repo: str, pulls: dict[str, float], counts: dict[str, int] | None = None
    ) -> None:
        """Note that these manifests of `repo` (digest -> time) were pulled then, and add
        `counts` (digest -> pulls since the last record; one each when not given) to their
        download counts."""
        ...

    async def pulls(self, repo: str) -> dict[str, float]:
        """The last pull time noted for each manifest of `repo` (digest -> time)."""
        ...

    async def record_push(self, repo: str, digest: str, at: float) -> None:
        """Note that manifest `digest` of `repo` was pushed (under a tag or by digest) then:
        its file keeps the time it was first written, which a push of a manifest stored
        already does not change."""
        ...

    async def pushes(self, repo: str) -> dict[str, float]:
        """The last push time noted for each manifest of `repo` (digest -> time)."""
        ...

    async def pull_counts(self, repo: str) -> dict[str, int]:
        """How many times each manifest of `repo` was pulled since pulls are noted."""
        ...

    async def pulls_since(self, now: float | None = None) -> float | None:
        """Since when pulls are noted; with `now`, that is `now` if nobody said it earlier."""
        ...

    async def note_quota_repository(self, repo: str) -> None:
        """Note that a manifest was pushed into `repo` (`storage.maxRepos`: it counts from
        then on, emptied or not, as in zot). `clear()` leaves it."""
        ...

    async def quota_repositories(self) -> set[str]:
        """Every repository `note_quota_repository` noted."""
        ...

    async def forget_manifests(self, repo: str, keep: Collection[str]) -> list[str]:
        """Drop the push and pull times and the pull counts of the manifests of `repo` not
        in `keep` (its index, after garbage collection removed manifests from it), the
        search index's pushes of them too: which manifests had any."""
        ...

    # --- API keys (`http.auth.apikey`; auth/apikeys.py gives the records their meaning) ------
    # Not rebuildable from storage either, so `clear()` leaves them.

    async def add_api_key(self, hashed: str, user: str, details: dict[str, Any]) -> None:
        """Keep the key whose secret hashes to `hashed`, owned by `user`, with its details
        (`details["uuid"]` names it for `delete_api_key`)."""
        ...

    async def api_key(self, hashed: str) -> tuple[str, dict[str, Any]] | None:
        """The owner and details of the key whose secret hashes to `hashed`, its `lastUsed`
        as `touch_api_key` last set it; None when there is none."""
        ...

    async def api_keys(self, user: str) -> list[dict[str, Any]]:
        """The details of every key `user` owns, each with its `lastUsed`."""
        ...

    async def touch_api_key(self, hashed: str, last_used: str) -> None:
        """Note when the key was last used; nothing when it was deleted meanwhile."""
        ...

    async def delete_api_key(self, user: str, uuid: str) -> bool:
        """Forget `user`'s key named `uuid`; False when `user` owns no such key."""
        ...

    async def set_user_groups(self, user: str, groups: list[str]) -> None:
        """The groups `user` had at their last password login (API keys act with them)."""
        ...

    async def user_groups(self, user: str) -> list[str]: ...

    # --- zot's user preferences: the repositories each user starred or bookmarked ----------
    # (api/userprefs.py). Not rebuildable from storage, so `clear()` leaves them. Kept by
    # name: a repository that goes and comes back under the same name keeps its marks.

    async def toggle_mark(self, user: str, kind: str, repo: str) -> bool:
        """Mark `repo` for `user` if it was not (kind: one of `MARKS`), else unmark it, in
        one step with the repository's star count; True when it is marked now."""
        ...

    async def marked(self, user: str, kind: str) -> set[str]:
        """The repositories `user` marked so."""
        ...

    async def star_counts(self, repos: list[str]) -> dict[str, int]:
        """How many users starred each of these repositories (absent: none)."""
        ...

    # --- web sessions ended by a logout (ocireg.ui): kept until they would have expired ------

    async def end_session(self, token: str, until: float) -> None:
        """Note that the session `token` (a digest of its cookie) was ended by a logout; it
        would have expired at `until` (epoch seconds), after which the note may go."""
        ...

    async def session_ended(self, token: str) -> bool: ...

    # --- the search index (registry/search.py gives the records their meaning) ---------------
    # Kept apart from the rest: `clear()` leaves it, `search_reset()` empties it.

    async def search_ready(self) -> bool:
        """True once a search rebuild completed (and nothing flushed the store since)."""
        ...

    async def search_reset(self, mark_ready: bool) -> None:
        """`mark_ready` False: forget the whole search index (before a rebuild); True: note
        that the rebuild completed, and release its lease (`search_lock`)."""
        ...

    async def search_lock(self, owner: str, seconds: int) -> bool:
        """Claim the right to rebuild the search index for `seconds`."""
        ...

    async def search_put(
        self,
        repo: str,
        tag: str,
        record: dict[str, Any],
        text: str,
        tagged: float | None = None,
        push: Push | None = None,
    ) -> None:
        """Record tag `tag` of `repo` (replacing what it said), `text` being what a query
        may find it by (lower case); note the repository too. A record whose `listed` is
        true is also kept, with its integer `updated`, for `search_listed`/`search_latest`
        (in the same step). In that step too: `tagged`, the time the tag was created, noted
        only if the tag had no record (a moved tag keeps its time; one recorded without a
        time keeps none); `push`, noted for the record's manifest as `search_note_push`."""
        ...

    async def search_add_repository(self, repo: str) -> None: ...

    async def search_note_push(self, repo: str, digest: str, push: Push) -> None:
        """Note the repository and a push of manifest `digest` into it: its first push
        time stays, and its pusher once one is known (a first push by an anonymous caller
        takes the name of the next one who has a name), as zot keeps them."""
        ...

    async def search_remove(self, repo: str, tag: str) -> None:
        """Forget the tag's record and the time it was created."""
        ...

    async def search_forget_push(self, repo: str, digest: str) -> None:
        """Forget the push of manifest `digest` (deleted from `repo`): pushed again, it is
        a first push again. `forget_manifests` forgets these pushes too."""
        ...

    async def search_stamps(self, repo: str) -> SearchStamps:
        """What `search_put` and `search_note_push` noted of `repo`."""
        ...

    async def search_records(self, repos: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """The records of these repositories: repo -> tag -> record (absent: none)."""
        ...

    async def search_listed(self, repos: list[str]) -> dict[str, dict[str, int]]:
        """The listed tags of these repositories with their `updated`: repo -> tag -> updated
        (a repository without any is absent)."""
        ...

    async def search_latest(self, repos: list[str]) -> dict[str, int]:
        """The newest `updated` of each repository's listed tags, or the time one of them
        was created (microseconds) if that is later, as zot's RepoSummary.LastUpdated
        (absent: it has no listed tag)."""
        ...

    async def search_repositories(self, contains: str, after: str, limit: int) -> list[str]:
        """Up to `limit` noted repositories after `after` in byte order whose name contains
        `contains` ("" matches all)."""
        ...

    async def search_find(
        self, needle: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """Up to `limit` (repo, tag) after `after` whose text contains `needle` (lower
        case), sorted."""
        ...

    async def health(self) -> None:
        """Raise MetaUnavailable when the store cannot serve requests."""
        ...

    async def close(self) -> None: ...
