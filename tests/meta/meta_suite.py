"""One behaviour suite for every metadata store, bound per store like the driver suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ocireg.meta import MetaStore
from ocireg.meta.base import BOOKMARK, STAR, Push, SearchStamps

Body = Callable[[MetaStore], Awaitable[None]]
SUBJECT = "sha256:" + "a" * 64


def _desc(n: int) -> dict[str, object]:
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{n:064x}",
        "size": n,
    }


class MetaSuite:
    tmp: Path

    def make_store(self) -> MetaStore:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def run(self, body: Body) -> None:
        async def main() -> None:
            store = self.make_store()
            try:
                await store.clear()
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    def test_empty_store_is_not_ready_until_marked(self) -> None:
        async def body(m: MetaStore) -> None:
            assert not await m.ready()
            await m.mark_ready()
            assert await m.ready()
            await m.clear()
            assert not await m.ready()

        self.run(body)

    def test_referrers_per_repo_and_subject(self) -> None:
        async def body(m: MetaStore) -> None:
            await m.add_referrer("r", SUBJECT, _desc(2))
            await m.add_referrer("r", SUBJECT, _desc(1))
            await m.add_referrer("r", SUBJECT, _desc(1))  # idempotent
            await m.add_referrer("other", SUBJECT, _desc(3))
            assert await m.referrers("r", SUBJECT) == [_desc(1), _desc(2)]
            await m.remove_referrer("r", SUBJECT, str(_desc(1)["digest"]))
            assert await m.referrers("r", SUBJECT) == [_desc(2)]
            assert await m.referrers("r", "sha256:" + "b" * 64) == []
            await m.clear()
            assert await m.referrers("other", SUBJECT) == []

        self.run(body)

    def test_blob_locations(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.blob_location(SUBJECT) is None
            await m.set_blob_location(SUBJECT, "repo/blobs/sha256/" + "a" * 64)
            assert await m.blob_location(SUBJECT) == "repo/blobs/sha256/" + "a" * 64
            # Moved (the bytes copied over a zot dedupe stub): the new place is the location.
            await m.moved_blob(SUBJECT, "repo/blobs/sha256/" + "a" * 64, "b/blobs/x")
            assert await m.blob_location(SUBJECT) == "b/blobs/x"
            assert await m.blob_copies(SUBJECT) == []  # no zot cache written here

        self.run(body)

    def test_rebuild_lease_has_one_holder(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.try_rebuild_lock("one", 60)
            assert not await m.try_rebuild_lock("two", 60)

        self.run(body)

    def test_health(self) -> None:
        async def body(m: MetaStore) -> None:
            await m.health()

        self.run(body)

    def test_scanned_manifests_per_repo(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.scanned("r") == set()
            await m.mark_scanned("r", ["sha256:1", "sha256:2"])
            await m.mark_scanned("r", ["sha256:2"])  # idempotent
            await m.mark_scanned("r", [])
            await m.mark_scanned("other", ["sha256:3"])
            assert await m.scanned("r") == {"sha256:1", "sha256:2"}
            await m.clear()
            assert await m.scanned("r") == set()

        self.run(body)

    def test_index_changes_keep_the_most_recent_in_order(self) -> None:
        from ocireg.meta.base import INDEX_CHANGES_KEPT

        async def body(m: MetaStore) -> None:
            await m.add_index_change("r", None, "v0", '["a"]')
            for n in range(INDEX_CHANGES_KEPT + 5):
                await m.add_index_change("r", f"v{n}", f"v{n + 1}", f'["{n}"]')
            await m.add_index_change("other", None, "x", "[]")
            kept = await m.index_changes("r")
            assert len(kept) == INDEX_CHANGES_KEPT
            last = INDEX_CHANGES_KEPT + 4
            assert kept[-1] == (f"v{last}", f"v{last + 1}", f'["{last}"]')
            assert [after for _, after, _ in kept] == [f"v{n + 1}" for n in range(5, last + 1)]
            assert await m.index_changes("nobody") == []

        self.run(body)

    def test_index_version_set_read_and_swap(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.index_version("r") is None
            # None as `expected`: only while there is no value
            assert await m.swap_index_version("r", None, "t:1", 60)
            assert not await m.swap_index_version("r", None, "t:2", 60)
            assert await m.index_version("r") == "t:1"
            # compare-and-set: only from the value held now
            assert not await m.swap_index_version("r", "t:other", "v:x", 60)
            assert await m.swap_index_version("r", "t:1", "v:x", 60)
            assert await m.index_version("r") == "v:x"
            assert not await m.swap_index_version("r", "t:1", "v:y", 60)
            await m.set_index_version("r", "t:3", 60)  # unconditional
            assert await m.index_version("r") == "t:3"
            assert await m.index_version("other") is None
            await m.clear()  # a rebuild forgets every version: readers ask storage
            assert await m.index_version("r") is None

        self.run(body)

    def test_pull_times_per_repository_survive_a_rebuild(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.pulls("r") == {}
            assert await m.pulls_since() is None
            assert await m.pulls_since(50.0) == 50.0
            assert await m.pulls_since(80.0) == 50.0  # set once: the first watcher's time
            await m.record_pulls("r", {"sha256:a": 100.0, "sha256:b": 101.5})
            await m.record_pulls("r", {"sha256:a": 120.0})
            await m.record_pulls("other", {"sha256:a": 7.0})
            assert await m.pulls("r") == {"sha256:a": 120.0, "sha256:b": 101.5}
            await m.clear()  # rebuild-meta: storage cannot give these back, so they stay
            assert await m.pulls("other") == {"sha256:a": 7.0}
            assert await m.pulls_since() == 50.0

        self.run(body)

    def test_many_pulls_recorded_at_once_are_all_read_back(self) -> None:
        """The pull log hands a repository's pulls over in one call (sqlite: one transaction
        for them all); each is stored beside what the repository had."""
        many = {f"sha256:{n:064x}": 1000.0 + n for n in range(500)}
        earlier = {"sha256:" + "f" * 64: 5000.0}

        async def body(m: MetaStore) -> None:
            await m.record_pulls("r", earlier)
            assert await m.pulls_since(10.0) == 10.0
            await m.record_pulls("r", many)
            await m.record_pulls("other", {"sha256:" + "0" * 64: 1.0})
            assert await m.pulls("r") == {**many, **earlier}
            assert await m.pulls("other") == {"sha256:" + "0" * 64: 1.0}
            assert await m.pulls_since() == 10.0

        self.run(body)

    def test_the_storage_layout_is_swapped_and_survives_a_clear(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.swap_storage_layout("") is None
            assert await m.swap_storage_layout('{"/team": "/data/team"}') == ""
            await m.clear()  # the records go, the layout they are made under stays
            assert await m.swap_storage_layout("") == '{"/team": "/data/team"}'
            assert await m.swap_storage_layout("") == ""

        self.run(body)

    def test_repositories_the_quota_counts_are_noted_once_and_survive_a_clear(self) -> None:
        async def body(m: MetaStore) -> None:
            assert await m.quota_repositories() == set()
            for repo in ("team/a", "team/b", "team/a"):
                await m.note_quota_repository(repo)
            await m.clear()
            assert await m.quota_repositories() == {"team/a", "team/b"}

        self.run(body)

    def test_api_keys_per_user_survive_a_clear(self) -> None:
        async def body(m: MetaStore) -> None:
            user = f"u{uuid.uuid4().hex[:8]}"  # the Redis store outlives a test: its own user
            assert await m.api_keys(user) == [] and await m.api_key("h1") is None
            await m.add_api_key("h1", user, {"uuid": "k1", "label": "a"})
            await m.add_api_key("h2", user, {"uuid": "k2", "label": "b"})
            await m.add_api_key("h3", "other", {"uuid": "k3", "label": "c"})
            await m.touch_api_key("h1", "2030-01-01T00:00:00Z")
            await m.clear()
            assert await m.api_key("h1") == (
                user,
                {"uuid": "k1", "label": "a", "lastUsed": "2030-01-01T00:00:00Z"},
            )
            assert sorted(k["uuid"] for k in await m.api_keys(user)) == ["k1", "k2"]
            assert not await m.delete_api_key(user, "k3")  # another user's key stays
            assert await m.api_key("h3") is not None
            assert await m.delete_api_key(user, "k1")
            assert not await m.delete_api_key(user, "k1")
            await m.touch_api_key("h1", "2031-01-01T00:00:00Z")  # after the delete: nothing
            assert await m.api_key("h1") is None
            assert [k["uuid"] for k in await m.api_keys(user)] == ["k2"]
            await m.delete_api_key("other", "k3")
            assert await m.user_groups(user) == []
            await m.set_user_groups(user, ["devs", "ops"])
            assert await m.user_groups(user) == ["devs", "ops"]

        self.run(body)

    def test_stars_and_bookmarks_toggle_per_user_count_and_survive_a_clear(self) -> None:
        async def body(m: MetaStore) -> None:
            tag = uuid.uuid4().hex[:8]  # the Redis store outlives a test: its own names
            alice, bob, repo, other = f"alice{tag}", f"bob{tag}", f"r{tag}", f"o{tag}"
            assert await m.marked(alice, STAR) == set()
            assert await m.star_counts([repo, other]) == {}
            assert await m.toggle_mark(alice, STAR, repo)
            assert await m.toggle_mark(bob, STAR, repo)
            assert await m.toggle_mark(bob, BOOKMARK, other)
            assert await m.star_counts([repo, other]) == {repo: 2}
            assert await m.marked(alice, STAR) == {repo}
            assert await m.marked(bob, BOOKMARK) == {other}
            assert await m.marked(alice, BOOKMARK) == set()
            await m.clear()
            assert not await m.toggle_mark(alice, STAR, repo)  # unstarred
            assert await m.star_counts([repo]) == {repo: 1}
            assert not await m.toggle_mark(bob, BOOKMARK, other)  # a bookmark does not count
            assert await m.star_counts([repo, other]) == {repo: 1}
            assert not await m.toggle_mark(bob, STAR, repo)
            assert await m.star_counts([repo]) == {} and await m.star_counts([]) == {}
            assert await m.marked(bob, STAR) == set() == await m.marked(bob, BOOKMARK)

        self.run(body)

    def test_ended_sessions_are_noted_until_they_would_have_expired(self) -> None:
        async def body(m: MetaStore) -> None:
            ended, other, stale = (uuid.uuid4().hex for _ in range(3))
            await m.end_session(ended, time.time() + 60)
            await m.end_session(stale, time.time() - 1)  # expired already: nothing to refuse
            await m.clear()  # not rebuildable: a rebuild must not reopen sessions
            assert await m.session_ended(ended)
            assert not await m.session_ended(other)
            assert not await m.session_ended(stale)

        self.run(body)

    def test_notes_of_manifests_no_longer_listed_are_forgotten(self) -> None:
        """Garbage collection drops the push and pull times and pull counts of the manifests
        its repository no longer lists, and only of those, in that repository only."""
        a, b, c = (f"sha256:{x * 64}" for x in "abc")

        async def body(m: MetaStore) -> None:
            await m.record_pulls("r", {a: 1.0, b: 2.0}, {a: 3, b: 1})
            await m.record_push("r", c, 5.0)
            await m.record_push("r", a, 6.0)
            await m.record_pulls("other", {b: 9.0})
            assert await m.forget_manifests("r", {a, b, c}) == []
            assert await m.forget_manifests("r", {a}) == [b, c]
            assert await m.pulls("r") == {a: 1.0}
            assert await m.pull_counts("r") == {a: 3}
            assert await m.pushes("r") == {a: 6.0}
            assert await m.pulls("other") == {b: 9.0}
            assert await m.forget_manifests("r", set()) == [a]
            assert (await m.pulls("r"), await m.pushes("r"), await m.pull_counts("r")) == (
                {},
                {},
                {},
            )
            assert await m.forget_manifests("nothing/noted", set()) == []

        self.run(body)

    def test_index_version_expires(self) -> None:
        async def body(m: MetaStore) -> None:
            await m.set_index_version("r", "v:x", 1)
            assert await m.index_version("r") == "v:x"
            deadline = asyncio.get_running_loop().time() + 10
            while await m.index_version("r") is not None:
                assert asyncio.get_running_loop().time() < deadline, "never expired"
                await asyncio.sleep(0.1)
            # an expired value counts as none: a claim from None succeeds, one from it fails
            assert not await m.swap_index_version("r", "v:x", "v:y", 60)
            assert await m.swap_index_version("r", None, "t:1", 60)

        self.run(body)

    def test_search_records_find_and_pages(self) -> None:
        async def body(m: MetaStore) -> None:
            await m.search_reset(mark_ready=False)
            assert not await m.search_ready()
            await m.search_put("b/one", "v1", {"digest": "d1"}, "v1\nstar*[x]")
            await m.search_put("a/two", "v2", {"digest": "d2"}, "v2\nplain")
            await m.search_put("a/two", "v2", {"digest": "d3"}, "v2\nreplaced")
            await m.search_add_repository("c/three")
            assert await m.search_find("star*[x", None, 10) == [("b/one", "v1")]
            assert await m.search_find("*", None, 10) == [("b/one", "v1")]  # no wildcard
            assert await m.search_find("plain", None, 10) == []  # the replaced text is gone
            assert await m.search_find("v", None, 10) == [("a/two", "v2"), ("b/one", "v1")]
            assert await m.search_find("v", None, 1) == [("a/two", "v2")]
            assert await m.search_find("v", ("a/two", "v2"), 5) == [("b/one", "v1")]
            assert await m.search_find("v", ("a/two", "v"), 5) == [("a/two", "v2"), ("b/one", "v1")]
            assert await m.search_find("b/one", None, 10) == []  # names are not the text
            assert await m.search_records(["a/two", "c/three", "x"]) == {
                "a/two": {"v2": {"digest": "d3"}}
            }
            assert await m.search_repositories("", "", 10) == ["a/two", "b/one", "c/three"]
            assert await m.search_repositories("", "a/two", 1) == ["b/one"]
            assert await m.search_repositories("/t", "", 10) == ["a/two", "c/three"]
            await m.search_remove("b/one", "v1")
            assert await m.search_find("v", None, 10) == [("a/two", "v2")]
            await m.clear()  # the rest of the store: the search index stays
            assert await m.search_lock("me", 60)
            assert not await m.search_lock("other", 60)
            await m.search_reset(mark_ready=True)  # done: the lease is released
            assert await m.search_ready()
            assert await m.search_lock("other", 60)
            assert await m.search_find("v", None, 10) == [("a/two", "v2")]
            await m.search_reset(mark_ready=False)
            assert not await m.search_ready()
            assert await m.search_repositories("", "", 10) == []

        self.run(body)

    def test_search_listed_tags_and_latest(self) -> None:
        """zot's lists order by these: only listed tags count, a replaced or removed tag
        moves its repository's newest time (back), a repository without listed tags has
        none; times are exact to the microsecond, the zero time (year 1) included."""
        zero = -62135596800 * 10**6
        later = 1714557600 * 10**6 + 123456

        def record(updated: int, listed: bool = True) -> dict[str, object]:
            return {"digest": "d", "updated": updated, "listed": listed}

        async def body(m: MetaStore) -> None:
            await m.search_reset(mark_ready=False)
            await m.search_put("a", "v1", record(later - 1), "v1")
            await m.search_put("a", "v2", record(later), "v2")
            await m.search_put("a", "sig", record(later + 5, listed=False), "sig")
            await m.search_put("b", "old", record(zero), "old")
            await m.search_put("c", "sig", record(later, listed=False), "sig")
            await m.search_put("d", "v1", {"digest": "d"}, "v1")  # a record of format 1
            names = ["a", "b", "c", "d", "x"]
            many = names + [f"absent/{i}" for i in range(3000)]  # read whole, then filtered
            for asked in (names, many):
                assert await m.search_listed(asked) == {
                    "a": {"v1": later - 1, "v2": later},
                    "b": {"old": zero},
                }
                assert await m.search_latest(asked) == {"a": later, "b": zero}
            assert await m.search_latest(["b", *many[5:]]) == {"b": zero}
            await m.search_put("a", "v2", record(later - 7), "v2")  # the tag moved
            assert await m.search_latest(["a"]) == {"a": later - 1}
            await m.search_put("a", "v1", record(later, listed=False), "v1")  # now a signature
            await m.search_remove("a", "v2")
            assert await m.search_listed(["a"]) == {}
            assert await m.search_listed(many) == {"b": {"old": zero}}
            assert await m.search_latest(["a", "b"]) == {"b": zero}
            await m.search_reset(mark_ready=False)
            assert await m.search_latest(names) == {}

        self.run(body)

    def test_search_stamps_keep_the_first_tag_and_push_times(self) -> None:
        """zot's TaggedTimestamp, PushTimestamp and PushedBy: a tag keeps the time it was
        created while it moves (one recorded without a time gets none later), a manifest
        its first push and its first named pusher, per repository; a removed tag, a
        forgotten or collected manifest and a reset index start again."""
        d1, d2, d3 = (f"sha256:{x * 64}" for x in "123")

        async def body(m: MetaStore) -> None:
            await m.search_reset(mark_ready=False)
            assert await m.search_stamps("r") == SearchStamps()
            await m.search_put("r", "v1", {"digest": d1}, "v1", 10.0, Push(10.0, "alice"))
            await m.search_put("r", "v1", {"digest": d2}, "v1", 20.0, Push(20.0))  # moved
            await m.search_put("r", "v2", {"digest": d1}, "v2", 30.0, Push(30.0, "bob"))
            await m.search_put("r", "old", {"digest": d3}, "old")  # no times (a rebuild...)
            await m.search_put("r", "old", {"digest": d3}, "old", 40.0, Push(40.0))  # ...kept
            await m.search_note_push("r", d2, Push(50.0, "carol"))  # the pusher filled in
            await m.search_note_push("other", d1, Push(60.0))
            stamps = await m.search_stamps("r")
            assert stamps.tagged == {"v1": 10.0, "v2": 30.0}
            assert stamps.pushes == {
                d1: Push(10.0, "alice"),
                d2: Push(20.0, "carol"),
                d3: Push(40.0, ""),
            }
            assert await m.search_stamps("other") == SearchStamps({}, {d1: Push(60.0)})
            assert "other" in await m.search_repositories("", "", 10)
            await m.search_remove("r", "v1")
            await m.search_put("r", "v1", {"digest": d2}, "v1", 70.0, Push(70.0, "dave"))
            await m.search_forget_push("r", d1)
            await m.search_put("r", "v3", {"digest": d1}, "v3", 80.0, Push(80.0, "erin"))
            stamps = await m.search_stamps("r")
            assert stamps.tagged == {"v1": 70.0, "v2": 30.0, "v3": 80.0}
            assert stamps.pushes == {
                d1: Push(80.0, "erin"),
                d2: Push(20.0, "carol"),
                d3: Push(40.0, ""),
            }
            assert await m.forget_manifests("r", {d1, d3}) == [d2]  # garbage collection
            assert (await m.search_stamps("r")).pushes.keys() == {d1, d3}
            await m.search_reset(mark_ready=False)
            assert await m.search_stamps("r") == SearchStamps()
            await m.search_put("r", "v1", {"digest": d1}, "v1", 90.0, Push(90.0))
            assert await m.search_stamps("r") == SearchStamps({"v1": 90.0}, {d1: Push(90.0)})

        self.run(body)

    def test_search_latest_counts_when_a_listed_tag_was_created(self) -> None:
        """zot's RepoSummary.LastUpdated, which its repository lists order by: the newest
        listed image's update time, or a listed tag's creation if later (microseconds)."""
        image = 1714557600 * 10**6 + 123456
        created = 1800000000.5

        def record(listed: bool = True) -> dict[str, object]:
            return {"digest": "d", "updated": image, "listed": listed}

        async def body(m: MetaStore) -> None:
            await m.search_reset(mark_ready=False)
            await m.search_put("a", "v1", record(), "v1", created, Push(created))
            await m.search_put("a", "sig", record(False), "sig", created + 9, Push(created + 9))
            await m.search_put("b", "v1", record(), "v1", 1.5, Push(1.5))  # an older creation
            assert await m.search_latest(["a", "b"]) == {"a": 1800000000500000, "b": image}
            many = ["a", "b", *(f"absent/{i}" for i in range(3000))]  # read whole
            assert await m.search_latest(many) == {"a": 1800000000500000, "b": image}
            await m.search_put("a", "v1", record(), "v1", created + 5)  # moved: kept its time
            assert await m.search_latest(["a"]) == {"a": 1800000000500000}
            await m.search_remove("a", "v1")
            await m.search_put("a", "v2", record(), "v2")  # no creation time known
            assert await m.search_latest(["a"]) == {"a": image}

        self.run(body)
