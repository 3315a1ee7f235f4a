"""`downloadDir` is accepted (zot needs it with S3) and not used: a periodic copy is staged in
the store's own upload sessions, so a mirror killed in the middle of one leaves nothing
visible, copies the image cleanly on the next pass, and garbage collection removes the
abandoned session."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.ops.conftest import run_gc
from tests.support.oci import push_image, sha256_digest, unique_repo
from tests.support.recording_proxy import recording_proxy
from tests.support.server import RegistryProcess, running_registry, wait_until
from tests.sync.conftest import Upstream, sync_config


def session_bytes(proc: RegistryProcess, repo: str) -> int:
    """Bytes in `repo`'s upload sessions and the files beside them: the marker a copying
    worker writes there (`.sync-<alg>-<hex>`, naming its session) stays when the copy is
    killed after its blob was stored, until GC removes it."""
    uploads = proc.root / repo / ".uploads"
    return sum(f.stat().st_size for f in uploads.rglob("*") if f.is_file())


def test_a_copy_killed_midway_leaves_nothing_visible_and_download_dir_unused(
    upstream: Upstream, tmp_path: Path
) -> None:
    name = f"{unique_repo('crash')}/app"
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, name, "1.0.0", layer_size=4 << 20)
    layer = sha256_digest(image.layers[0])
    staging = tmp_path / "staging"
    with recording_proxy(upstream.url) as proxy:
        proxy.stall_next(layer)  # the first copy's layer stops halfway
        entry = {
            "urls": [f"http://{proxy.host}"],
            "pollInterval": "1h",  # a pass at start, none after
            "content": [{"prefix": name}],
        }
        config = sync_config(tmp_path, [entry], storage={"gcDelay": "1s"}, downloadDir=str(staging))
        with running_registry(tmp_path, config, name="mirror") as proc:
            wait_until(lambda: session_bytes(proc, name) > 0, timeout=30)
            assert "downloadDir is not used" in proc.logs()
            proc.kill()  # SIGKILL, every process: no clean-up runs
            index = proc.root / name / "index.json"
            assert not index.exists() or image.digest not in index.read_text()
            assert not (proc.root / name / "blobs" / "sha256" / layer[7:]).exists()

            proxy.released.set()
            proc.start()  # the pass at start copies the image again, whole this time
            with httpx.Client(base_url=proc.url, timeout=30) as c:

                def tagged() -> bool:
                    r = c.get(f"/v2/{name}/tags/list")
                    return r.status_code == 200 and r.json()["tags"] == ["1.0.0"]

                wait_until(tagged, timeout=30)
                r = c.get(f"/v2/{name}/manifests/1.0.0", headers={"Accept": image.media_type})
                assert r.status_code == 200 and r.content == image.manifest
                assert c.get(f"/v2/{name}/blobs/{layer}").content == image.layers[0]
            # What the killed copy left is an upload session per blob it had in flight (one
            # or two: the config may still be on its way with the stalled layer), and the
            # marker of a blob it had stored, which GC removes once each is older than
            # gcDelay: they may cross that age in different runs.
            left: list[str] = []

            def collected() -> bool:
                left.extend(run_gc(proc.config_path).get(name, {}).get("uploads") or [])
                return bool(left) and session_bytes(proc, name) == 0

            wait_until(collected, timeout=30)
            sessions = [u for u in left if not u.startswith(".")]
            assert 1 <= len(sessions) <= len(image.layers) + 1
    assert not staging.exists()
