"""`http.accessControl` reloaded without a restart: the file edited, the new policy in force
once the workers have been replaced, a broken policy refused with the old one kept."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.auth.conftest import PASSWORDS, client_for, start_registry, write_htpasswd
from tests.support.oci import assert_error, push_image
from tests.support.server import wait_until


def test_access_control_changes_apply_without_a_restart(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", PASSWORDS)
    policy = {"repositories": {"**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}}}
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": policy}
    with start_registry(tmp_path, http) as registry:
        pid = registry.proc.pid if registry.proc else None
        with client_for(registry, "alice") as alice:
            assert_error(alice.post("/v2/reload/app/blobs/uploads/"), 403, "DENIED")
            config = json.loads(registry.config_path.read_text())
            config["http"]["accessControl"]["repositories"]["**"]["policies"][0]["actions"] = [
                "read",
                "create",
            ]
            registry.config_path.write_text(json.dumps(config))

            # Every old worker replaced (Granian says so in the log); until then a connection
            # may still reach a worker with the old rules, which is the point of the overlap.
            log = registry.log_path
            wait_until(lambda: "Stopped old worker" in log.read_text(), timeout=60)
            with client_for(registry, "alice") as fresh:
                push_image(fresh, "reload/app", "v1")
            # A broken policy (an unknown action) is refused; the last good one stays.
            config["http"]["accessControl"]["repositories"]["**"]["policies"][0]["actions"] = [
                "fly"
            ]
            registry.config_path.write_text(json.dumps(config))
            wait_until(lambda: "configuration reload refused" in log.read_text(), timeout=30)
            with httpx.Client(
                base_url=registry.url, auth=httpx.BasicAuth("alice", PASSWORDS["alice"])
            ) as c:
                assert c.post("/v2/reload/app/blobs/uploads/").status_code == 202
        assert registry.proc is not None and registry.proc.pid == pid  # never restarted
