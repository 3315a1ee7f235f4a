"""The `ocireg` command's entry point, which imports nothing of the package before it has
to: `ocireg serve` must not end on a SIGHUP (a reload sent while a member starts), and
importing the command line takes a fifth of a second, during which the default action of
SIGHUP still applies. Here it is set aside as soon as the command's own code runs: what is
left is the interpreter's start-up, some 20 ms."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        # Until Granian's handler and `server/reload.py` take it over, a SIGHUP does
        # nothing; nothing is lost: the configuration's watch starts from the file as it
        # was before it was read, and applies a change saved meanwhile.
        signal.signal(signal.SIGHUP, _ignored)
    from ocireg.cli import main as run

    return run(argv)


def _ignored(signum: int, frame: FrameType | None) -> None:
    return None
