"""A new member list while serving: which file changes the running workers apply in place
(server/reload.py), and what a worker keeps of its peers across the change (Peers.update).
The end-to-end behaviour, under traffic, is in tests/cluster/test_membership.py."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from ocireg.cluster.membership import Membership, membership_from_config
from ocireg.cluster.peers import Peers
from ocireg.config import Config, build_config, load_config
from ocireg.server.reload import (
    CONFIG_DATA_ENV,
    LOCAL_MEMBER_ENV,
    MEMBERS_FILE_ENV,
    ConfigReloader,
    MembersFile,
    applies_in_place,
)

KEY = "loremipsumdolors"
THREE = ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"]


def raw_config(members: list[str], **cluster: Any) -> dict[str, Any]:
    return {
        "storage": {"rootDirectory": "/tmp/ocireg-unit"},
        "http": {"address": "127.0.0.1", "port": "5000"},
        "cluster": {"members": list(members), "hashKey": KEY, **cluster},
    }


def built(raw: dict[str, Any]) -> tuple[Config, Membership | None]:
    config = build_config(copy.deepcopy(raw))
    return config, membership_from_config(config, local_index=0 if config.cluster else None)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda raw: raw["cluster"]["members"].append("127.0.0.1:5003"), id="add"),
        pytest.param(lambda raw: raw["cluster"]["members"].pop(), id="remove"),
        pytest.param(lambda raw: raw["cluster"].update(routing="rendezvous"), id="routing"),
    ],
)
def test_the_member_list_or_routing_alone_applies_in_place(change: Any) -> None:
    raw = raw_config(THREE)
    current, running = built(raw)
    change(raw)
    assert applies_in_place(current, running, *built(raw))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda raw: raw["http"].update(
                accessControl={"repositories": {"**": {"anonymousPolicy": ["read"]}}}
            ),
            id="access-control",
        ),
        pytest.param(lambda raw: raw["cluster"].update(hashKey="ipsumloremdolors"), id="key"),
        pytest.param(
            lambda raw: raw["cluster"]["members"].__setitem__(0, "localhost:5000"),
            id="own-entry",
        ),
        pytest.param(lambda raw: raw["cluster"]["members"].__delitem__(slice(1, 3)), id="alone"),
        pytest.param(lambda raw: raw.pop("cluster"), id="no-cluster"),
    ],
)
def test_anything_else_replaces_the_workers(change: Any) -> None:
    raw = raw_config(THREE)
    current, running = built(raw)
    change(raw)
    assert not applies_in_place(current, running, *built(raw))


def test_a_peer_that_stays_keeps_what_was_learnt_of_it() -> None:
    peers = Peers(Membership(tuple(THREE), 0, KEY.encode()), shared_storage=None)
    peers.mark_down(THREE[2], "test")
    peers.state[THREE[1]].shared = True
    # Member 1 leaves; a new member joins in the middle of the list.
    new = ("127.0.0.1:5000", "127.0.0.1:5009", "127.0.0.1:5002")
    peers.update(Membership(new, 0, KEY.encode()))
    assert set(peers.state) == {"127.0.0.1:5009", "127.0.0.1:5002"}
    assert not peers.is_up("127.0.0.1:5002")  # still down: the state moved with the address
    assert peers.is_up("127.0.0.1:5009") and not peers.shares("127.0.0.1:5009")
    assert not peers.shares(THREE[1])  # a member that left is nobody's to fail over to
    assert peers.separate() == ["127.0.0.1:5009", "127.0.0.1:5002"]


def test_the_members_file_carries_the_list_and_this_members_place(tmp_path: Path) -> None:
    written = Membership(("127.0.0.1:5001", "127.0.0.1:5000"), 1, KEY.encode(), "rendezvous")
    members_file = MembersFile(tmp_path / "members.json")
    members_file.write(written)
    current = Membership(tuple(THREE), 0, KEY.encode())
    assert members_file.read(current) == written
    assert list(tmp_path.iterdir()) == [tmp_path / "members.json"]  # no temporary left


def test_a_worker_follows_the_file_through_a_cleaner_emptying_its_directory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run" / "members.json"
    members_file = MembersFile(path)
    peers = Peers(Membership(tuple(THREE), 0, KEY.encode()), shared_storage=None)
    four = Membership((*THREE, "127.0.0.1:5003"), 0, KEY.encode())
    two = Membership(tuple(THREE[:2]), 0, KEY.encode())

    async def scenario() -> None:
        follower = asyncio.create_task(members_file.follow(peers))
        try:
            members_file.write(four)
            await until(lambda: peers.membership == four)
            shutil.rmtree(path.parent)  # as a /tmp cleaner would
            await asyncio.sleep(1.5)  # the follower looks at least once meanwhile
            assert peers.membership == four  # routing as before
            members_file.write(two)  # the directory is made again
            await until(lambda: peers.membership == two)
            assert not follower.done()
        finally:
            follower.cancel()

    asyncio.run(scenario())


async def until(condition: Any) -> None:
    """Poll `condition` for up to 10 s (the follower looks once a second)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met within 10 s")


def test_an_edit_then_sighup_is_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/cluster.md: edit the file, then SIGHUP. The SIGHUP applies it; the file watch,
    looking next, finds nothing new (it applied the same list a second time)."""
    for name in (CONFIG_DATA_ENV, LOCAL_MEMBER_ENV):
        monkeypatch.delenv(name, raising=False)  # publish() sets them: restored after
    monkeypatch.setenv(MEMBERS_FILE_ENV, str(tmp_path / "members.json"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw_config(THREE)))
    current = load_config(path)
    reloader = ConfigReloader(path, current, membership_from_config(current, local_index=0))
    reloader._respawn = lambda: pytest.fail("a list change alone needs no new workers")
    path.write_text(json.dumps(raw_config([*THREE, "127.0.0.1:5003"])))
    with caplog.at_level(logging.INFO, logger="ocireg.server"):
        reloader._apply()  # SIGHUP
        reloader._look()  # the watch's next look
    applied = [r for r in caplog.records if r.getMessage().startswith("configuration reloaded")]
    assert len(applied) == 1
    assert reloader.membership is not None and len(reloader.membership.members) == 4
