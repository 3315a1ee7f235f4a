"""`ocireg serve` sets SIGHUP aside before it imports the rest of the package (a fifth of a
second during which a reload sent to a starting member would otherwise end it): through
`python -m ocireg` and through the installed `ocireg` command's entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ocireg_env

# Runs `start` as the command would, with `signal.signal` watched: the package's modules
# imported when SIGHUP first gets a handler are printed, then the command goes on (and
# fails: its configuration file does not exist).
PROBE = """
import json, signal, sys
real = signal.signal
def watched(signum, handler):
    if signum == signal.SIGHUP and not hasattr(watched, "seen"):
        watched.seen = sorted(m for m in sys.modules if m.split(".")[0] == "ocireg")
        print(json.dumps(watched.seen), flush=True)
    return real(signum, handler)
signal.signal = watched
sys.argv = ["ocireg", "serve", sys.argv[2]]
if {start!r} == "module":
    import runpy
    runpy.run_module("ocireg", run_name="__main__")
else:
    from importlib.metadata import entry_points
    sys.exit(entry_points(group="console_scripts")["ocireg"].load()())
"""


@pytest.mark.parametrize("start", ["module", "command"])
def test_sighup_is_set_aside_before_the_package_loads(start: str, tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(start=start), "-", str(missing)],
        env=ocireg_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # the missing file, reported
    first = result.stdout.splitlines()[0]
    assert "ocireg.cli" not in json.loads(first), first
    assert "ocireg.launch" in json.loads(first), first
