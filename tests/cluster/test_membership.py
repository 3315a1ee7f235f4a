"""Member lists that change without restarts: a member added and one removed by editing the
files while clients keep pushing and pulling, applied by the running workers; any other
change replaces the workers; a broken file refused; the status command and endpoint with a
member down and two members whose lists differ. On one shared root and on SeaweedFS +
Redis."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.test_shared_storage import cluster_status, wait_all_shared
from tests.conftest import use_backend
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, owner_of, start_members
from tests.support.oci import OCI_MANIFEST, manifest_path, push_image
from tests.support.server import RegistryProcess, base_config, free_port, run_cli, wait_until
from tests.support.threads import Background


def rewrite(member: RegistryProcess, members: list[str]) -> None:
    """Edit the member's config file as an operator would; its file watch reloads it."""
    config = copy.deepcopy(member.config)
    config["cluster"]["members"] = list(members)
    member.config = config
    member.config_path.write_text(json.dumps(config))


def save(path: Path, content: bytes) -> None:
    """Replace the file whole (the watch must not see it empty, as `write_bytes` leaves it
    for a moment, where a count of refused files matters)."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(content)
    temporary.replace(path)


def members_file(member: RegistryProcess) -> Path:
    """The file the member's workers follow (server/reload.py): in a new directory under
    the temporary directory, the one holding its list and its place in it (its workers
    are forked: their /proc environ does not show the name the main process set)."""
    members = member.config["cluster"]["members"]
    place = members.index(f"127.0.0.1:{member.port}")
    for path in Path(tempfile.gettempdir()).glob("ocireg-members-*/members.json"):
        with contextlib.suppress(OSError, ValueError):
            body = json.loads(path.read_text())
            if body["members"] == members and body["localIndex"] == place:
                return path
    raise AssertionError(f"no members file for {member.name}")


def log_of(member: RegistryProcess) -> str:
    """The member's whole log (`logs()` keeps only the end, which the access log fills)."""
    return member.log_path.read_text(errors="replace")


def workers_started(member: RegistryProcess) -> int:
    return log_of(member).count("worker ready")


def fingerprints(members: list[RegistryProcess]) -> set[str]:
    return {cluster_status(m)["fingerprint"] for m in members}


@pytest.fixture(params=["filesystem", "s3"])
def cluster4(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[list[RegistryProcess], list[dict[str, Any]]]]:
    """Three running members, and the config of a fourth (listed only in its own file)."""
    configs = cluster_configs(tmp_path, count=4)
    if request.param == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        redis: Redis = request.getfixturevalue("redis_server")
        root, prefix = f"/m{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
        for i, cfg in enumerate(configs):
            cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")
            use_backend(cfg, seaweedfs, redis, root, prefix)
    four = list(configs[0]["cluster"]["members"])
    for cfg in configs[:3]:
        cfg["cluster"]["members"] = four[:3]
    procs = start_members(tmp_path, configs[:3])
    try:
        wait_all_shared(procs)
        yield procs, configs
    finally:
        for proc in procs:
            proc.stop()


def wait_uploads_refused(client: httpx.Client, repo: str) -> None:
    """Wait until the workers serving `client` have an anonymous policy of `read`: an
    upload is refused with 401 UNAUTHORIZED (an old worker may still accept one while
    workers are replaced)."""

    def refused() -> httpx.Response | None:
        r = client.post(f"/v2/{repo}/blobs/uploads/")
        return r if r.status_code != 202 else None

    post = wait_until(refused, timeout=30)
    assert post.status_code == 401 and post.json()["errors"][0]["code"] == "UNAUTHORIZED"


def start_added_member(tmp_path: Path, config: dict[str, Any]) -> tuple[RegistryProcess, list[str]]:
    """Start the member that `config` adds (the last of its list) on a port found free just
    now, and the new list. The port `cluster_configs` found has been free for as long as the
    traffic ran: another test session on the machine may have taken it meanwhile (and
    Granian binds with SO_REUSEPORT, so two servers could split its connections)."""
    config = copy.deepcopy(config)
    port = free_port()
    config["http"]["port"] = str(port)
    config["cluster"]["members"] = [*config["cluster"]["members"][:-1], f"127.0.0.1:{port}"]
    member = RegistryProcess(tmp_path, config, name="member3").start()
    return member, list(config["cluster"]["members"])


class Traffic(Background):
    """Clients pushing and pulling through the members in `targets` until stopped; every
    failure is kept."""

    def __init__(self, targets: list[RegistryProcess]) -> None:
        self.targets = list(targets)
        self.pushed: dict[tuple[str, str], str] = {}
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._working_on: dict[int, RegistryProcess] = {}  # worker -> member it pushes through
        super().__init__([functools.partial(self._work, i) for i in range(2)], daemon=True)

    def count(self) -> int:
        with self._lock:
            return len(self.pushed)

    def _work(self, worker: int) -> None:
        n = 0
        while not self.stopping.is_set():
            with self._lock:
                member = self.targets[(n + worker) % len(self.targets)]
                self._working_on[worker] = member
            repo, tag = f"members/r{n % 12}", f"w{worker}-{n}"
            try:
                with httpx.Client(base_url=member.url, timeout=30) as client:
                    image = push_image(client, repo, tag)
                    r = client.get(manifest_path(repo, tag), headers={"Accept": OCI_MANIFEST})
                    assert r.status_code == 200 and r.content == image.manifest, r.text
                with self._lock:
                    self.pushed[(repo, tag)] = image.digest
            except (AssertionError, httpx.HTTPError) as exc:
                with self._lock:
                    self.failures.append(f"{member.url} {repo}:{tag}: {exc}")
            with self._lock:
                del self._working_on[worker]
            n += 1

    def use(self, targets: list[RegistryProcess]) -> None:
        with self._lock:
            self.targets = list(targets)

    def done_with(self, member: RegistryProcess) -> bool:
        """No client is in the middle of a push or pull through `member` (one that began
        before `use` left it out finishes there, as behind a load balancer draining it)."""
        with self._lock:
            return member not in self._working_on.values()


def test_add_then_remove_a_member_by_editing_files_with_no_failed_request(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]], tmp_path: Path
) -> None:
    procs, configs = cluster4
    with Traffic(procs) as traffic:
        wait_until(lambda: traffic.count() >= 8, timeout=60)
        started = [workers_started(member) for member in procs]
        fourth, four = start_added_member(tmp_path, configs[3])
        try:
            for member in procs:
                rewrite(member, four)
            everyone = [*procs, fourth]
            wait_until(lambda: len(fingerprints(everyone)) == 1, timeout=30)
            # The old members read the new one's record within a look (cluster/peers.py),
            # not at their next record rewrite (every 30 s): until then they would forward
            # all its repositories' requests to it, reads and uploads too.
            wait_all_shared(everyone, timeout=10)
            traffic.use(everyone)
            done = traffic.count()
            wait_until(lambda: traffic.count() >= done + 12, timeout=90)
            # Remove member 2: the load balancer stops sending to it, the others' files drop
            # it, then it stops.
            remaining = [procs[0], procs[1], fourth]
            traffic.use(remaining)
            for member in remaining:
                rewrite(member, [four[0], four[1], four[3]])
            wait_until(lambda: len(fingerprints(remaining)) == 1, timeout=30)
            wait_until(lambda: traffic.done_with(procs[2]), timeout=60)
            procs[2].stop()
            done = traffic.count()
            wait_until(lambda: traffic.count() >= done + 12, timeout=90)
        finally:
            traffic.__exit__()
            fourth_pushed = dict(traffic.pushed)
            # The last reload may still be replacing workers: a connection it closes or
            # resets is tried again (docs/cluster.md); what is checked is the answer.
            headers = {"Accept": OCI_MANIFEST, "Connection": "close"}
            for member in [procs[0], procs[1], fourth]:
                with httpx.Client(base_url=member.url, timeout=30) as client:
                    for (repo, tag), digest in sorted(fourth_pushed.items()):
                        path = manifest_path(repo, tag)
                        r = wait_until(lambda p=path: client.head(p, headers=headers), timeout=30)
                        assert r.status_code == 200, (member.url, repo, tag)
                        assert r.headers["docker-content-digest"] == digest
            fourth.stop()
    assert not traffic.failures, traffic.failures[:5]
    # Both lists were applied by the workers that were running: none was replaced.
    assert [workers_started(member) for member in procs] == started
    for member in procs[:2]:
        log = log_of(member)
        assert log.count("configuration reloaded; workers apply the member list in place") == 2
        assert log.count("cluster member list applied") == 2


@pytest.mark.parametrize("cluster4", ["filesystem"], indirect=True)
def test_sighup_replaces_no_worker_when_the_member_list_alone_could_change(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]],
) -> None:
    member = cluster4[0][1]
    started = workers_started(member)
    in_place = "configuration reloaded; workers apply the member list in place"
    member.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_until(lambda: in_place in log_of(member), timeout=30)
    with httpx.Client(base_url=member.url, timeout=30) as client:
        image = push_image(client, "members/hup", "v1")
        assert client.get(manifest_path("members/hup", "v1")).content == image.manifest
    assert workers_started(member) == started
    assert "workers restart one by one" not in log_of(member)


@pytest.mark.parametrize("cluster4", ["filesystem"], indirect=True)
def test_a_change_beyond_the_member_list_replaces_the_workers(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]],
) -> None:
    procs, _ = cluster4
    member = procs[0]
    with httpx.Client(base_url=member.url, timeout=30) as client:
        image = push_image(client, "members/policy", "v1")
    started = workers_started(member)
    config = copy.deepcopy(member.config)
    config["http"]["accessControl"] = {"repositories": {"**": {"anonymousPolicy": ["read"]}}}
    member.config = config
    member.config_path.write_text(json.dumps(config))
    wait_until(lambda: "workers restart one by one" in log_of(member), timeout=30)
    wait_until(lambda: workers_started(member) > started, timeout=60)
    # The new workers read the policy: anonymous clients may pull, no longer upload (an
    # upload is answered by the member that receives it, on shared storage).
    headers = {"Accept": OCI_MANIFEST, "Connection": "close"}
    with httpx.Client(base_url=member.url, timeout=30, headers=headers) as client:
        wait_uploads_refused(client, "members/policy")
        r = client.get(manifest_path("members/policy", "v1"))
        assert r.status_code == 200 and r.content == image.manifest


def test_a_broken_file_is_refused_and_the_member_keeps_serving(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]],
) -> None:
    procs, _ = cluster4
    member = procs[0]
    before = cluster_status(member)["fingerprint"]
    good = member.config_path.read_text()
    member.config_path.write_text('{"storage": {"rootDirectory": ')  # cut short
    wait_until(lambda: "configuration reload refused" in log_of(member), timeout=15)
    member.config_path.write_text(good.replace('"hashKey"', '"hashkey2"'))  # unknown key
    wait_until(lambda: log_of(member).count("configuration reload refused") >= 2, timeout=15)
    member.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_until(lambda: log_of(member).count("configuration reload refused") >= 3, timeout=15)
    with httpx.Client(base_url=member.url, timeout=30) as client:
        image = push_image(client, "members/still", "v1")
        assert client.get(manifest_path("members/still", "v1")).content == image.manifest
    wait_until(lambda: cluster_status(member)["fingerprint"] == before, timeout=15)


def test_a_file_broken_while_the_workers_are_replaced_is_refused_and_the_member_lives(
    tmp_path: Path,
) -> None:
    """Granian's reload hook reads the file again when it replaces the workers, and a hook
    that raises ends Granian's main process: a file saved in another encoding while two
    workers are being replaced (4 s each) must be refused there too."""
    config = base_config(tmp_path / "root", workers=2)
    member = RegistryProcess(tmp_path, config, name="member").start()
    try:
        with httpx.Client(base_url=member.url, timeout=30) as client:
            image = push_image(client, "members/latin", "v1")
        started = workers_started(member)
        for i, policy in enumerate((["read"], ["read", "create"]), start=1):
            config = copy.deepcopy(config)
            config["http"]["accessControl"] = {"repositories": {"**": {"anonymousPolicy": policy}}}
            save(member.config_path, json.dumps(config).encode())
            wait_until(lambda i=i: log_of(member).count("configuration needs new workers") == i)
            # The first replacement has begun (two workers, 4 s each): the second change
            # waits for it to end.
            wait_until(lambda: "workers restart one by one" in log_of(member))
        # Then comes a file in Latin-1 (an accented letter), read by the watch, and by the
        # reload hook when the second replacement begins.
        save(member.config_path, json.dumps(config).encode()[:-1] + b', "x": "caf\xe9"}')
        wait_until(lambda: log_of(member).count("configuration reload refused") == 2, timeout=60)
        assert "not UTF-8" in log_of(member)
        wait_until(lambda: workers_started(member) == started + 4, timeout=60)
        assert member.proc is not None and member.proc.poll() is None
        # The workers run the last good file, the first change: anonymous clients may pull,
        # not push.
        headers = {"Accept": OCI_MANIFEST, "Connection": "close"}
        with httpx.Client(base_url=member.url, timeout=30, headers=headers) as client:
            r = wait_until(lambda: client.get(manifest_path("members/latin", "v1")))
            assert r.status_code == 200 and r.content == image.manifest
            wait_uploads_refused(client, "members/latin")
    finally:
        member.stop()


def test_sighups_while_starting_do_not_end_the_member_and_a_file_saved_meanwhile_applies(
    tmp_path: Path,
) -> None:
    """Before Granian and server/reload.py take SIGHUP over (the backends checked, the
    member names resolved, Granian started), a SIGHUP is ignored rather than ending the
    process; a file saved meanwhile is applied at the watch's first look."""
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["compat"] = ["docker2s2"]  # a warning logged as soon as logging is set up
    member = RegistryProcess(tmp_path, config, name="member").start(wait=False)
    try:
        wait_until(lambda: "not implemented by ocireg yet" in member.logs(), interval=0.005)
        changed = copy.deepcopy(config)
        changed["http"]["accessControl"] = {"repositories": {"**": {"anonymousPolicy": ["read"]}}}
        member.config_path.write_text(json.dumps(changed))
        assert member.proc is not None
        # SIGHUPs until the server says it starts Granian (not after: those would reload).
        while '"message": "starting"' not in member.logs():
            assert member.proc.poll() is None, member.logs()
            member.proc.send_signal(signal.SIGHUP)
            time.sleep(0.01)  # the storm's pace (about 100 a second), not a wait for anything
        member.wait_ready()
        wait_until(lambda: "workers restart one by one" in log_of(member), timeout=30)
        headers = {"Connection": "close"}
        with httpx.Client(base_url=member.url, timeout=30, headers=headers) as client:
            wait_uploads_refused(client, "members/started")
    finally:
        member.stop()


@pytest.mark.parametrize("cluster4", ["filesystem"], indirect=True)
def test_a_members_file_that_cannot_be_written_fails_the_reload_not_the_member(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]],
) -> None:
    """The members file's directory replaced by a file (as a full or broken /tmp would
    fail the write): a new list is not applied, on the watch's way (in place) and on
    Granian's reload hook's (a change beyond the list), and the member keeps serving with
    the configuration it had, whose workers it restarts."""
    procs, configs = cluster4
    member = procs[0]
    directory = members_file(member).parent
    shutil.rmtree(directory)
    directory.write_text("not a directory")
    before = cluster_status(member)["fingerprint"]
    three = configs[0]["cluster"]["members"]
    started = workers_started(member)
    rewrite(member, [three[1], three[0], three[2]])  # in place
    wait_until(lambda: "configuration reload failed" in log_of(member), timeout=30)
    config = copy.deepcopy(member.config)
    config["http"]["accessControl"] = {"repositories": {"**": {"anonymousPolicy": ["read"]}}}
    save(member.config_path, json.dumps(config).encode())  # workers replaced
    wait_until(lambda: log_of(member).count("configuration reload failed") == 2, timeout=30)
    wait_until(lambda: workers_started(member) == started + 1, timeout=60)
    wait_until(lambda: "Stopped old worker-1" in log_of(member), timeout=60)
    assert member.proc is not None and member.proc.poll() is None
    # The new worker runs what the old one ran: the first list, no access control.
    assert cluster_status(member)["fingerprint"] == before
    with httpx.Client(base_url=member.url, timeout=30, headers={"Connection": "close"}) as client:
        image = push_image(client, "members/unwritten", "v1")
        assert client.get(manifest_path("members/unwritten", "v1")).content == image.manifest


def test_status_command_and_endpoint_flag_a_down_member_and_a_different_list(
    cluster4: tuple[list[RegistryProcess], list[dict[str, Any]]],
) -> None:
    procs, configs = cluster4
    three = configs[0]["cluster"]["members"]
    procs[2].stop()
    # Member 1 now lists the three members in another order: it routes differently.
    rewrite(procs[1], [three[1], three[0], three[2]])
    wait_until(
        lambda: cluster_status(procs[1])["fingerprint"] != cluster_status(procs[0])["fingerprint"],
        timeout=30,
    )

    def view() -> dict[int, dict[str, Any]]:
        return {m["index"]: m for m in cluster_status(procs[0])["members"]}

    wait_until(lambda: not view()[2]["up"] and view()[1]["agrees"] is False, timeout=15)
    assert view()[0]["local"] and view()[1]["up"]
    assert "cluster member routes differently" in log_of(procs[0])

    result = run_cli("cluster", "status", str(procs[0].config_path))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:4]}
    assert " yes " in lines[three[0]] and lines[three[0]].split()[3] == "yes"
    assert lines[three[1]].split()[3] == "NO"
    assert "no:" in lines[three[2]]
    assert "PROBLEMS" in result.stdout


class NoTemporaryDirectory(RegistryProcess):
    """A member that finds no writable temporary directory, as in a container with a
    read-only root file system: in a mount namespace of its own, /tmp and /var/tmp are
    read-only binds (so is its working directory, /tmp) and TMPDIR names a path under a
    file, which leaves Python's `tempfile` no candidate. Its config, log and storage root
    (all under `workdir`) stay writable."""

    def command(self) -> list[str]:
        script = (
            "for d in /tmp /var/tmp /usr/tmp; do"
            ' [ -d "$d" ] && { mount --bind -o ro "$d" "$d" || exit 90; }; done;'
            # A bind of a directory of a read-only bind is read-only until remounted.
            ' mount --bind "$0" "$0" && mount -o remount,bind,rw "$0" || exit 91;'
            ' cd /tmp && export TMPDIR="$1/sub" && shift && exec "$@"'
        )
        return [
            "unshare",
            "--mount",
            "sh",
            "-c",
            script,
            str(self.workdir),
            str(self.config_path),
            *super().command(),
        ]


def mount_namespaces() -> bool:
    """True when this test may make a mount namespace (as root, with `unshare`)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--mount", "true"], check=False).returncode == 0


@pytest.mark.skipif(not mount_namespaces(), reason="needs unshare --mount (root)")
def test_with_no_temporary_directory_a_new_member_list_replaces_the_workers(
    tmp_path: Path,
) -> None:
    configs = cluster_configs(tmp_path, count=3)
    three = list(configs[0]["cluster"]["members"])
    for cfg in configs[:2]:
        cfg["cluster"]["members"] = three[:2]
    procs = [
        NoTemporaryDirectory(tmp_path, configs[0], name="member0"),
        RegistryProcess(tmp_path, configs[1], name="member1"),
        RegistryProcess(tmp_path, configs[2], name="member2"),
    ]
    member = procs[0]
    try:
        for proc in procs:  # the third already lists all three; the others, two
            proc.start(wait=False)
        for proc in procs:
            proc.wait_ready()
        assert "no temporary directory for the member list" in log_of(member)
        wait_all_shared(procs[:2])
        started = workers_started(member)
        for proc in procs[:2]:
            rewrite(proc, three)
        wait_until(lambda: "workers restart one by one" in log_of(member), timeout=30)
        # Granian starts the new worker, then stops the old one (server/runner.py).
        wait_until(lambda: "Stopped old worker-1" in log_of(member), timeout=60)
        # (the old one is stopped after 4 s, whether the new one is ready or not)
        wait_until(lambda: workers_started(member) == started + 1, timeout=30)
        wait_until(lambda: len(fingerprints(procs)) == 1, timeout=30)
        assert cluster_status(member)["members"][2]["member"] == three[2]
        assert "workers apply the member list in place" not in log_of(member)
        assert "workers apply the member list in place" in log_of(procs[1])
        # A manifest PUT through member 0 goes to the new owner, member 2.
        repo = next(f"members/ro{i}" for i in range(100) if owner_of(f"members/ro{i}") == 2)
        with httpx.Client(base_url=member.url, timeout=30) as client:
            image = push_image(client, repo, "v1")
            r = client.get(manifest_path(repo, "v1"), headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200 and r.content == image.manifest
        # Its access log (written once the answer is sent: it may follow the client's 201).
        put = f'"method": "PUT", "path": "/v2/{repo}/manifests/v1", "status": 201'
        wait_until(lambda: put in log_of(procs[2]), timeout=10)
    finally:
        for proc in procs:
            proc.stop()


def test_a_list_that_names_this_member_twice_is_reported(tmp_path: Path) -> None:
    """Two entries with this member's address (a typo; two members given one port): the
    routing keeps both places, as zot does, and the status report answers (it was a 500)."""
    [config] = cluster_configs(tmp_path, count=1)
    me = config["cluster"]["members"][0]
    config["cluster"]["members"] = [me, me, f"127.0.0.1:{free_port()}"]
    proc = RegistryProcess(tmp_path, config).start()
    try:
        status = cluster_status(proc)
        assert [m["local"] for m in status["members"]] == [True, True, False]
    finally:
        proc.stop()
