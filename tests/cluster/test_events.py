"""`extensions.events` in a cluster: a push that a member forwards to the repository's owner
sends its events from the owner, naming the user who pushed (the identity the hop carries)
and the client's address, not the forwarding member's."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.auth.conftest import write_htpasswd
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.events import EventSink
from tests.support.oci import push_small_image


def test_a_forwarded_push_names_its_user_and_client(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", {"alice": "wonderland"})
    with EventSink() as sink:
        events = {"events": {"sinks": [{"type": "http", "address": sink.url}]}}
        configs = cluster_configs(tmp_path, count=2, shared_root=False, extensions=events)
        for config in configs:
            config["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        with running_members(tmp_path, configs) as members:
            repo = repo_owned_by(1, count=2)
            # the client talks to member 0; member 1 owns the repository
            with httpx.Client(base_url=members[0].url, auth=("alice", "wonderland")) as c:
                assert push_small_image(c, repo, "v1")[0].status_code == 201
            received = sink.wait_for(2)
    assert [e.type for e in received] == [
        "zotregistry.repository.created",
        "zotregistry.image.updated",
    ]
    for event in received:
        assert event.data["actor"] == {"name": "alice"}
        assert event.data["request"]["addr"] == "127.0.0.1"  # the client, without the member's port
