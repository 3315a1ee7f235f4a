"""Redis (redis-py asyncio), shared by every member of a cluster.

Keys, under zot's `keyprefix` (default "zot") and our own namespace so that a Redis shared
with zot keeps its keys apart: `<p>:ocireg:ready`, `<p>:ocireg:rebuild` (rebuild lease),
`<p>:ocireg:referrers:<repo>:<subject>` (HASH digest -> descriptor JSON) and
`<p>:ocireg:blobs` (HASH digest -> path), `<p>:ocireg:index-version:<repo>` (STRING with a
TTL). The search index lives in its own namespace `{<p>:ocireg-search}:...` (one hash
slot, so that its scripts run on a Redis Cluster too; `clear()` leaves it): `repositories`
(sorted set), `images:<repo>` (HASH tag -> record JSON), `members:<repo>` (HASH tag -> its
member of `text`), `text` (sorted set of `<repo>\x01<tag>\x00<text>`, filtered by a script),
`listed:<repo>` (sorted set: the tags zot lists as images, scored by update time), `listed`
(the same for every repository, `<repo>\x01<tag>`), `latest` (sorted set: each repository's
newest listed time, or its listed tags' newest creation if later, negated), `stamps:<repo>`
(HASH: when each tag was created, when each manifest was first pushed and by whom),
`tagged:<repo>` (sorted set: the listed tags by creation time), `ready:v<format>` and
`rebuild`. Push and pull times (retention) and pull counts (search) are
`<p>:ocireg-pushes:<repo>` and `<p>:ocireg-pulls:<repo>` (HASH digest -> time),
`<p>:ocireg-pull-counts:<repo>` (HASH digest -> count) and `<p>:ocireg-pulls-since`, also
left by `clear()`: storage cannot give them back; so are `<p>:ocireg-storage-layout`, the
sub paths the records were made under, and `<p>:ocireg-quota-repositories` (SET), the
repositories `storage.maxRepos` counts.
API keys, which storage cannot give back either, live in `{<p>:ocireg-apikeys}:...` (one
hash slot, for their scripts): `keys` (HASH secret's hash -> `{"user", "details"}` JSON),
`used` (HASH secret's hash -> lastUsed), `user:<user>` (HASH uuid -> secret's hash) and
`groups` (HASH user -> their groups at their last password login, JSON). The repositories
users starred or bookmarked (zot's userprefs), which storage cannot give back either, live in
`{<p>:ocireg-userprefs}:...` (one hash slot, for their script): `star:<user>` and
`bookmark:<user>` (SETs of repository names) and `stars` (HASH repository -> star count).
Web sessions ended by a logout are `<p>:ocireg-ended-sessions:<digest of the cookie>`, each
with the TTL the session had left.
zot's own dedupe hash `<p>:blobs:original` is read as a fallback for blob locations (zot
writes it when dedupe is on).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from redis.exceptions import RedisError

from ocireg.meta.base import (
    INDEX_CHANGES_KEPT,
    SEARCH_FORMAT,
    STAR,
    MetaUnavailable,
    Push,
    SearchStamps,
)
from ocireg.meta.redis_client import client_from_config, error_text
from ocireg.settings.drivers import RedisSettings

_WHOLE_SET = 2000  # repositories asked for at once above which a set is read whole

# Compare-and-set of one key: GET and SET in one atomic step (a script runs alone).
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


# Replace (ARGV[2] a record) or remove (ARGV[2] empty) one tag's record and its text member
# in one step, so that concurrent writers cannot leave a member behind; and keep the tag in
# the repository's listed tags (ARGV[5] its update time, '' when not listed) and the
# repository's newest listed time in `latest` (score: that time, negated so that ZRANGE
# gives the newest first and equal times in name order), and in `listed` (every listed tag
# of the registry, `<repo>\x01<tag>`: read whole when most repositories are asked for).
# In the same step, in the repository's `stamps` hash: the tag's creation time (ARGV[7], ''
# none) if it had no record, forgotten with the record; a push of the record's manifest
# (ARGV[8] its digest, '' none; ARGV[9] its time, ARGV[10] its pusher), as `_NOTE_PUSH`.
# A listed tag's creation time, where known, is in `tagged:<repo>` (microseconds), and the
# repository's time in `latest` is the later of its newest listed image and that newest
# creation (zot's RepoSummary.LastUpdated).
# KEYS: images hash, members hash, text, repositories, listed:<repo>, latest, listed, stamps,
# tagged:<repo>; ARGV: tag, record, member, repo, updated, `<repo>\x01<tag>`, tagged,
# digest, at, by.
_SEARCH_PUT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[3], old) end
if ARGV[2] == '' then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[8], 'tag:' .. ARGV[1])
else
    if ARGV[7] ~= '' and not old then redis.call('HSET', KEYS[8], 'tag:' .. ARGV[1], ARGV[7]) end
    if ARGV[8] ~= '' then
        redis.call('HSETNX', KEYS[8], 'push:' .. ARGV[8], ARGV[9])
        if ARGV[10] ~= '' then redis.call('HSETNX', KEYS[8], 'by:' .. ARGV[8], ARGV[10]) end
    end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
    redis.call('ZADD', KEYS[3], 0, ARGV[3])
    redis.call('ZADD', KEYS[4], 0, ARGV[4])
end
if ARGV[2] ~= '' and ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
    redis.call('ZADD', KEYS[7], ARGV[5], ARGV[6])
    local tagged = redis.call('HGET', KEYS[8], 'tag:' .. ARGV[1])
    if tagged then
        redis.call('ZADD', KEYS[9], math.floor(tonumber(tagged) * 1000000 + 0.5), ARGV[1])
    else
        redis.call('ZREM', KEYS[9], ARGV[1])
    end
else
    redis.call('ZREM', KEYS[5], ARGV[1])
    redis.call('ZREM', KEYS[7], ARGV[6])
    redis.call('ZREM', KEYS[9], ARGV[1])
end
local top = redis.call('ZRANGE', KEYS[5], -1, -1, 'WITHSCORES')
if #top > 0 then
    local newest = tonumber(top[2])
    local tagged = redis.call('ZRANGE', KEYS[9], -1, -1, 'WITHSCORES')
    if #tagged > 0 and tonumber(tagged[2]) > newest then newest = tonumber(tagged[2]) end
    redis.call('ZADD', KEYS[6], -newest, ARGV[4])
else
    redis.call('ZREM', KEYS[6], ARGV[4])
end
return 1
"""
# API keys: forget one by its owner's uuid (KEYS: keys, used, user:<user>; ARGV: uuid), and
# note a use only of a key that is still there (KEYS: keys, used; ARGV: hash, time), so that
# a use racing a delete leaves nothing behind.
# Mark ARGV[1] in the set KEYS[1] if it is not, else unmark it; a star also counts in the
# hash KEYS[2] (ARGV[2] '1'), in the same step. Returns 1 when marked now.
_TOGGLE_MARK = """
local marked = redis.call('SREM', KEYS[1], ARGV[1]) == 0
if marked then redis.call('SADD', KEYS[1], ARGV[1]) end
if ARGV[2] == '1' then
    local count = redis.call('HINCRBY', KEYS[2], ARGV[1], marked and 1 or -1)
    if count <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
end
return marked and 1 or 0
"""
_KEY_DELETE = """
local hashed = redis.call('HGET', KEYS[3], ARGV[1])
if not hashed then return 0 end
redis.call('HDEL', KEYS[1], hashed)
redis.call('HDEL', KEYS[2], hashed)
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""
_KEY_TOUCH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"""
# A whole sorted set with its scores as one string, `member\nscore\n...`: redis-py parses a
# reply of 20,000 elements in Python at some 10-20 us each; one string it does not.
_DUMP = """
return table.concat(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), '\\n')
"""
# The members of a sorted set (all scores 0) after ARGV[1] in byte order ('' from the first)
# that contain ARGV[2], at most ARGV[3] of them; with ARGV[4] '1' the text is looked for only
# after a member's first NUL byte, and what precedes it is returned. Server-side, so that a
# filter that matches little does not carry the whole set over the network (10,000 members:
# a few ms of Redis time).
_FILTER = """
local start = ARGV[1] == '' and '-' or '(' .. ARGV[1]
local limit = tonumber(ARGV[3])
local out = {}
while #out < limit do
    local chunk = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, 1000)
    for _, m in ipairs(chunk) do
        local head, from = m, 1
        if ARGV[4] == '1' then
            local sep = string.find(m, '\\0', 1, true) or (#m + 1)
            head, from = string.sub(m, 1, sep - 1), sep + 1
        end
        if string.find(m, ARGV[2], from, true) then
            out[#out + 1] = head
            if #out >= limit then break end
        end
    end
    if #chunk < 1000 then break end
    start = '(' .. chunk[#chunk]
end
return out
"""


class RedisMeta:
    name = "redis"

    def __init__(self, settings: RedisSettings) -> None:
        self.connection = client_from_config(settings)
        self.client, self.endpoint = self.connection.client, self.connection.endpoint
        self.prefix = settings.keyprefix
        self.ns = f"{self.prefix}:ocireg"
        self._swap = self.client.register_script(_SWAP)
        self.search_ns = f"{{{self.prefix}:ocireg-search}}"
        self._search_ready = f"{self.search_ns}:ready:v{SEARCH_FORMAT}"
        self._search_put = self.client.register_script(_SEARCH_PUT)
        self._filter = self.client.register_script(_FILTER)
        self._dump = self.client.register_script(_DUMP)
        self.pulls_ns = f"{self.prefix}:ocireg-pulls"  # outside `ns`: `clear()` leaves it
        self.counts_ns = f"{self.prefix}:ocireg-pull-counts"  # and these too
        self.pushes_ns = f"{self.prefix}:ocireg-pushes"
        self.layout_key = f"{self.prefix}:ocireg-storage-layout"
        self.quota_key = f"{self.prefix}:ocireg-quota-repositories"  # a SET
        self.keys_ns = f"{{{self.prefix}:ocireg-apikeys}}"  # outside `ns` too
        self.sessions_ns = f"{self.prefix}:ocireg-ended-sessions"  # and these
        self._key_delete = self.client.register_script(_KEY_DELETE)
        self._key_touch = self.client.register_script(_KEY_TOUCH)
        self.marks_ns = f"{{{self.prefix}:ocireg-userprefs}}"  # and these
        self._toggle_mark = self.client.register_script(_TOGGLE_MARK)

    async def _do(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise MetaUnavailable(f"redis {self.endpoint}: {error_text(exc)}") from exc

    def _ref_key(self, repo: str, subject: str) -> str:
        return f"{self.ns}:referrers:{repo}:{subject}"

    async def ready(self) -> bool:
        return bool(await self._do(self.client.exists(f"{self.ns}:ready")))

    async def mark_ready(self) -> None:
        await self._do(self.client.set(f"{self.ns}:ready", "1"))

    async def try_rebuild_lock(self, owner: str, seconds: int) -> bool:
        key = f"{self.ns}:rebuild"
        return bool(await self._do(self.client.set(key, owner, nx=True, ex=seconds)))

    async def clear(self) -> None:
        await self._do(self._clear())

    async def _clear(self) -> None:
        # SCAN is an async iterator, not one awaitable: run all of it under `_do`'s mapping.
        keys = [k async for k in self.client.scan_iter(match=f"{self.ns}:*", count=1000)]
        keys = [k for k in keys if not str(k).endswith(":rebuild")]
        for i in range(0, len(keys), 500):
            await self.client.delete(*keys[i : i + 500])

    async def add_referrer(self, repo: str, subject: str, descriptor: dict[str, Any]) -> None:
        await self._do(
            self.client.hset(
                self._ref_key(repo, subject), descriptor["digest"], json.dumps(descriptor)
            )
        )

    async def remove_referrer(self, repo: str, subject: str, digest: str) -> None:
        await self._do(self.client.hdel(self._ref_key(repo, subject), digest))

    async def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        found = await self._do(self.client.hgetall(self._ref_key(repo, subject)))
        return [json.loads(found[k]) for k in sorted(found)]

    async def set_blob_location(self, digest: str, path: str) -> None:
        await self._do(self.client.hset(f"{self.ns}:blobs", digest, path))

    async def blob_location(self, digest: str) -> str | None:
        path = await self._do(self.client.hget(f"{self.ns}:blobs", digest))
        if path is None:
            path = await self._do(self.client.hget(f"{self.prefix}:blobs:original", digest))
        return path.decode() if isinstance(path, bytes) else path

    async def blob_copies(self, digest: str) -> list[str]:
        original = await self._do(self.client.hget(f"{self.prefix}:blobs:original", digest))
        if original is None:
            return []
        copies = await self._do(self.client.smembers(f"{self.prefix}:blobs:duplicates:{digest}"))
        return sorted({_text(original), *map(_text, copies)})

    async def moved_blob(self, digest: str, old: str, new: str) -> None:
        # As zot's cache does when it deletes its original: another copy takes its place.
        original = f"{self.prefix}:blobs:original"
        await self.set_blob_location(digest, new)
        if _text(await self._do(self.client.hget(original, digest)) or b"") == old:
            await self._do(self.client.hset(original, digest, new))
        await self._do(self.client.srem(f"{self.prefix}:blobs:duplicates:{digest}", old))

    async def add_repository(self, name: str) -> None:
        # One sorted set, all scores 0: ZRANGEBYLEX pages it in byte order.
        await self._do(self.client.zadd(f"{self.ns}:repositories", {name: 0}))

    async def repositories_after(self, last: str, limit: int) -> list[str]:
        start = f"({last}" if last else "-"
        found = await self._do(
            self.client.zrangebylex(f"{self.ns}:repositories", start, "+", start=0, num=limit)
        )
        return [n.decode() if isinstance(n, bytes) else str(n) for n in found]

    async def mark_scanned(self, repo: str, digests: list[str]) -> None:
        if digests:
            await self._do(self.client.sadd(f"{self.ns}:scanned:{repo}", *digests))

    async def scanned(self, repo: str) -> set[str]:
        found = await self._do(self.client.smembers(f"{self.ns}:scanned:{repo}"))
        return {d.decode() if isinstance(d, bytes) else str(d) for d in found}

    async def add_index_change(
        self, repo: str, before: str | None, after: str, change: str
    ) -> None:
        key = f"{self.ns}:index-changes:{repo}"
        entry = json.dumps([before, after, change])
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(key, entry).ltrim(key, -INDEX_CHANGES_KEPT, -1)
        await self._do(pipe.execute())

    async def index_changes(self, repo: str) -> list[tuple[str | None, str, str]]:
        found = await self._do(self.client.lrange(f"{self.ns}:index-changes:{repo}", 0, -1))
        return [tuple(json.loads(entry)) for entry in found]

    def _version_key(self, repo: str) -> str:
        return f"{self.ns}:index-version:{repo}"

    async def index_version(self, repo: str) -> str | None:
        found = await self._do(self.client.get(self._version_key(repo)))
        return found.decode() if isinstance(found, bytes) else found

    async def set_index_version(self, repo: str, value: str, ttl: int) -> None:
        await self._do(self.client.set(self._version_key(repo), value, ex=ttl))

    async def swap_index_version(
        self, repo: str, expected: str | None, value: str, ttl: int
    ) -> bool:
        key = self._version_key(repo)
        if expected is None:
            return bool(await self._do(self.client.set(key, value, ex=ttl, nx=True)))
        return bool(await self._do(self._swap(keys=[key], args=[expected, value, ttl])))

    # --- search index --------------------------------------------------------------------

    async def record_pulls(
        self, repo: str, pulls: dict[str, float], counts: dict[str, int] | None = None
    ) -> None:
        counts = counts if counts is not None else dict.fromkeys(pulls, 1)
        pipe = self.client.pipeline(transaction=False)
        # Members flush a few seconds apart at most: the last time written winning is close
        # enough; the counts add up.
        pipe.hset(f"{self.pulls_ns}:{repo}", mapping=pulls)
        for digest, count in counts.items():
            pipe.hincrby(f"{self.counts_ns}:{repo}", digest, count)
        await self._do(pipe.execute())

    async def pulls(self, repo: str) -> dict[str, float]:
        found = await self._do(self.client.hgetall(f"{self.pulls_ns}:{repo}"))
        return {_text(digest): float(at) for digest, at in found.items()}

    async def record_push(self, repo: str, digest: str, at: float) -> None:
        # Written under the repository's lock, before its index.json changes: the last
        # write is the latest push.
        await self._do(self.client.hset(f"{self.pushes_ns}:{repo}", digest, repr(at)))

    async def pushes(self, repo: str) -> dict[str, float]:
        found = await self._do(self.client.hgetall(f"{self.pushes_ns}:{repo}"))
        return {_text(digest): float(at) for digest, at in found.items()}

    async def pull_counts(self, repo: str) -> dict[str, int]:
        found = await self._do(self.client.hgetall(f"{self.counts_ns}:{repo}"))
        return {_text(digest): int(count) for digest, count in found.items()}

    async def swap_storage_layout(self, layout: str) -> str | None:
        before = await self._do(self.client.set(self.layout_key, layout, get=True))
        return None if before is None else _text(before)

    async def note_quota_repository(self, repo: str) -> None:
        await self._do(self.client.sadd(self.quota_key, repo))

    async def quota_repositories(self) -> set[str]:
        return {_text(name) for name in await self._do(self.client.smembers(self.quota_key))}

    async def forget_manifests(self, repo: str, keep: Collection[str]) -> list[str]:
        keys = [f"{ns}:{repo}" for ns in (self.pulls_ns, self.pushes_ns, self.counts_ns)]
        stamps = self._stamps_key(repo)
        pipe = self.client.pipeline(transaction=False)
        for key in (*keys, stamps):
            pipe.hkeys(key)
        *per_key, stamped = await self._do(pipe.execute())
        noted = {_text(d) for digests in per_key for d in digests}
        fields = [_text(field) for field in stamped]
        pushed = {field.removeprefix("push:") for field in fields if field.startswith("push:")}
        gone = sorted(digest for digest in noted | pushed if digest not in keep)
        if gone:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hdel(key, *gone)
            pipe.hdel(stamps, *(f"{kind}:{d}" for d in gone for kind in ("push", "by")))
            await self._do(pipe.execute())
        return gone

    async def pulls_since(self, now: float | None = None) -> float | None:
        key = f"{self.pulls_ns}-since"
        if now is not None:
            await self._do(self.client.set(key, repr(now), nx=True))
        found = await self._do(self.client.get(key))
        return None if found is None else float(found)

    async def search_ready(self) -> bool:
        return bool(await self._do(self.client.exists(self._search_ready)))

    async def search_reset(self, mark_ready: bool) -> None:
        if mark_ready:  # and the rebuild's lease is released
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self._search_ready, "1").delete(f"{self.search_ns}:rebuild")
            await self._do(pipe.execute())
        else:
            await self._do(self._search_clear())

    async def _search_clear(self) -> None:
        pattern = self.search_ns.replace("{", "\\{").replace("}", "\\}") + ":*"
        keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        keys = [k for k in keys if not _text(k).endswith(":rebuild")]
        for i in range(0, len(keys), 500):
            await self.client.delete(*keys[i : i + 500])

    async def search_lock(self, owner: str, seconds: int) -> bool:
        key = f"{self.search_ns}:rebuild"
        return bool(await self._do(self.client.set(key, owner, nx=True, ex=seconds)))

    def _search_keys(self, repo: str) -> list[str]:
        ns = self.search_ns
        return [
            f"{ns}:images:{repo}",
            f"{ns}:members:{repo}",
            f"{ns}:text",
            f"{ns}:repositories",
            f"{ns}:listed:{repo}",
            f"{ns}:latest",
            f"{ns}:listed",
            self._stamps_key(repo),
            f"{ns}:tagged:{repo}",
        ]

    def _stamps_key(self, repo: str) -> str:
        """HASH `tag:<tag>` -> creation time, `push:<digest>` -> first push time,
        `by:<digest>` -> its pusher (absent: anonymous)."""
        return f"{self.search_ns}:stamps:{repo}"

    async def search_put(
        self,
        repo: str,
        tag: str,
        record: dict[str, Any],
        text: str,
        tagged: float | None = None,
        push: Push | None = None,
    ) -> None:
        updated = record.get("updated")
        listed = record.get("listed") is True and isinstance(updated, int)
        await self._search_script(
            repo,
            tag,
            json.dumps(record),
            member=f"{repo}\x01{tag}\x00{text}",
            updated=str(updated) if listed else "",
            tagged="" if tagged is None else repr(tagged),
            push=("", "", "") if push is None else (record["digest"], repr(push.at), push.by),
        )

    async def _search_script(
        self,
        repo: str,
        tag: str,
        record: str = "",
        member: str = "",
        updated: str = "",
        tagged: str = "",
        push: tuple[str, str, str] = ("", "", ""),
    ) -> None:
        """`_SEARCH_PUT` with its arguments in order; without a record it removes the tag."""
        args = [tag, record, member, repo, updated, f"{repo}\x01{tag}", tagged, *push]
        await self._do(self._search_put(keys=self._search_keys(repo), args=args))

    async def search_add_repository(self, repo: str) -> None:
        await self._do(self.client.zadd(f"{self.search_ns}:repositories", {repo: 0}))

    async def search_note_push(self, repo: str, digest: str, push: Push) -> None:
        key = self._stamps_key(repo)
        # One round trip, and one step (MULTI/EXEC, the keys share a hash slot): two pushes
        # at once cannot leave one's time with the other's name.
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(f"{self.search_ns}:repositories", {repo: 0})
        pipe.hsetnx(key, f"push:{digest}", repr(push.at))
        if push.by:
            pipe.hsetnx(key, f"by:{digest}", push.by)
        await self._do(pipe.execute())

    async def search_remove(self, repo: str, tag: str) -> None:
        await self._search_script(repo, tag)

    async def search_forget_push(self, repo: str, digest: str) -> None:
        await self._do(self.client.hdel(self._stamps_key(repo), f"push:{digest}", f"by:{digest}"))

    async def search_stamps(self, repo: str) -> SearchStamps:
        found = await self._do(self.client.hgetall(self._stamps_key(repo)))
        fields = {_text(name): _text(value) for name, value in found.items()}
        stamps = SearchStamps()
        for name, value in fields.items():
            kind, _, key = name.partition(":")
            if kind == "tag":
                stamps.tagged[key] = float(value)
            elif kind == "push":
                stamps.pushes[key] = Push(float(value), fields.get(f"by:{key}", ""))
        return stamps

    async def search_records(self, repos: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        pipe = self.client.pipeline(transaction=False)
        for repo in repos:
            pipe.hgetall(f"{self.search_ns}:images:{repo}")
        found = await self._do(pipe.execute()) if repos else []
        return {
            repo: {_text(tag): json.loads(record) for tag, record in records.items()}
            for repo, records in zip(repos, found, strict=True)
            if records
        }

    async def search_listed(self, repos: list[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        if len(repos) > _WHOLE_SET:  # one command, not one per repository
            wanted = set(repos)
            for member, score in await self._whole(f"{self.search_ns}:listed"):
                repo, tag = _split(member)
                if repo in wanted:
                    found.setdefault(repo, {})[tag] = score
            return found
        pipe = self.client.pipeline(transaction=False)
        for repo in repos:
            pipe.zrange(f"{self.search_ns}:listed:{repo}", 0, -1, withscores=True)
        per_repo = await self._do(pipe.execute()) if repos else []
        for repo, tags in zip(repos, per_repo, strict=True):
            if tags:
                found[repo] = {_text(tag): int(score) for tag, score in tags}
        return found

    async def search_latest(self, repos: list[str]) -> dict[str, int]:
        key = f"{self.search_ns}:latest"
        found: dict[str, int] = {}
        if len(repos) > _WHOLE_SET:
            wanted = set(repos)
            return {repo: -score for repo, score in await self._whole(key) if repo in wanted}
        for i in range(0, len(repos), 1000):
            chunk = repos[i : i + 1000]
            scores = await self._do(self.client.zmscore(key, chunk))
            found |= {r: -int(s) for r, s in zip(chunk, scores, strict=True) if s is not None}
        return found

    async def _whole(self, key: str) -> list[tuple[str, int]]:
        """Every (member, integer score) of a sorted set, in one reply (_DUMP)."""
        parts = _text(await self._do(self._dump(keys=[key]))).split("\n")
        if parts == [""]:
            return []
        return [(parts[i], int(float(parts[i + 1]))) for i in range(0, len(parts), 2)]

    async def search_repositories(self, contains: str, after: str, limit: int) -> list[str]:
        key = f"{self.search_ns}:repositories"
        if not contains:
            start = f"({after}" if after else "-"
            names = self.client.zrangebylex(key, start, "+", start=0, num=limit)
        else:
            names = self._filter(keys=[key], args=[after, contains, limit, "0"])
        return [_text(name) for name in await self._do(names)]

    async def search_find(
        self, needle: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        # members `<repo>\x01<tag>\x00<text>`, in (repo, tag) order: the part before the NUL;
        # `<repo>\x01<tag>\x01` sorts after every member of that tag and before the next tag
        start = f"{after[0]}\x01{after[1]}\x01" if after else ""
        args = [start, needle, limit, "1"]
        found = self._filter(keys=[f"{self.search_ns}:text"], args=args)
        return [_split(_text(head)) for head in await self._do(found)]

    async def add_api_key(self, hashed: str, user: str, details: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        record = json.dumps({"user": user, "details": details})
        pipe.hset(f"{self.keys_ns}:keys", hashed, record)
        pipe.hset(f"{self.keys_ns}:user:{user}", details["uuid"], hashed)
        await self._do(pipe.execute())

    async def api_key(self, hashed: str) -> tuple[str, dict[str, Any]] | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(f"{self.keys_ns}:keys", hashed)
        pipe.hget(f"{self.keys_ns}:used", hashed)
        record, used = await self._do(pipe.execute())
        if record is None:
            return None
        found = json.loads(record)
        return str(found["user"]), _key_details(found["details"], used)

    async def api_keys(self, user: str) -> list[dict[str, Any]]:
        hashes = await self._do(self.client.hvals(f"{self.keys_ns}:user:{user}"))
        if not hashes:
            return []
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(f"{self.keys_ns}:keys", hashes)
        pipe.hmget(f"{self.keys_ns}:used", hashes)
        records, used = await self._do(pipe.execute())
        return [
            _key_details(json.loads(record)["details"], last)
            for record, last in zip(records, used, strict=True)
            if record is not None
        ]

    async def touch_api_key(self, hashed: str, last_used: str) -> None:
        keys = [f"{self.keys_ns}:keys", f"{self.keys_ns}:used"]
        await self._do(self._key_touch(keys=keys, args=[hashed, last_used]))

    async def delete_api_key(self, user: str, uuid: str) -> bool:
        keys = [f"{self.keys_ns}:{name}" for name in ("keys", "used", f"user:{user}")]
        return bool(await self._do(self._key_delete(keys=keys, args=[uuid])))

    async def set_user_groups(self, user: str, groups: list[str]) -> None:
        await self._do(self.client.hset(f"{self.keys_ns}:groups", user, json.dumps(groups)))

    async def user_groups(self, user: str) -> list[str]:
        found = await self._do(self.client.hget(f"{self.keys_ns}:groups", user))
        return [] if found is None else list(json.loads(found))

    async def toggle_mark(self, user: str, kind: str, repo: str) -> bool:
        keys = [f"{self.marks_ns}:{kind}:{user}", f"{self.marks_ns}:stars"]
        args = [repo, "1" if kind == STAR else "0"]
        return bool(await self._do(self._toggle_mark(keys=keys, args=args)))

    async def marked(self, user: str, kind: str) -> set[str]:
        found = await self._do(self.client.smembers(f"{self.marks_ns}:{kind}:{user}"))
        return {_text(repo) for repo in found}

    async def star_counts(self, repos: list[str]) -> dict[str, int]:
        if not repos:
            return {}
        found = await self._do(self.client.hmget(f"{self.marks_ns}:stars", repos))
        return {repo: int(n) for repo, n in zip(repos, found, strict=True) if n is not None}

    async def end_session(self, token: str, until: float) -> None:
        # Gone by itself once the session would have expired anyway.
        ttl = int(until - time.time()) + 1
        if ttl > 0:
            await self._do(self.client.set(f"{self.sessions_ns}:{token}", b"1", ex=ttl))

    async def session_ended(self, token: str) -> bool:
        return bool(await self._do(self.client.exists(f"{self.sessions_ns}:{token}")))

    async def health(self) -> None:
        await self._do(self.client.ping())

    async def close(self) -> None:
        await self.connection.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key_details(details: dict[str, Any], last_used: Any) -> dict[str, Any]:
    if last_used is not None:
        details["lastUsed"] = _text(last_used)
    return details


def _split(head: str) -> tuple[str, str]:
    repo, _, tag = head.partition("\x01")
    return repo, tag
