"""The reference programs of `make interop` (zot, the OCI conformance suite, crane, regctl).

They live outside the repository, in `../shared/tools` on the machines that have them; `make
interop` passes that folder in OCIREG_INTEROP_TOOLS. Nothing here is used by `make test`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from tests.support.server import RegistryProcess

TOOLS_ENV = "OCIREG_INTEROP_TOOLS"


def tools_dir() -> Path | None:
    """The folder of reference binaries, or None when this run was not given one."""
    value = os.environ.get(TOOLS_ENV)
    return Path(value) if value else None


def tool(name: str) -> Path:
    """The path of one reference binary; a clear error when the folder lacks it."""
    folder = tools_dir()
    if folder is None:
        raise RuntimeError(f"{TOOLS_ENV} is not set: run these tests with `make interop`")
    path = folder / name
    if not path.is_file():
        raise RuntimeError(f"{path} does not exist")
    return path


def zot_config(ocireg_config: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """zot's config for the same storage, address and cluster as an ocireg config.

    The file format is the same (that is the promise); only ocireg's own additions go
    (`http.workers`: zot refuses keys it does not know). zot keeps cache.db and meta.db
    under `rootDirectory`, so it gets a local root of its own (`root`) when given one.
    dedupe stays zot's default: on S3 it writes the zero-byte stubs ocireg must resolve.
    """
    cfg = copy.deepcopy(ocireg_config)
    cfg["http"].pop("workers", None)
    cfg["storage"]["gc"] = False  # no background GC changing the root under the test's feet
    if root is not None:
        cfg["storage"]["rootDirectory"] = str(root)
    return cfg


class ZotProcess(RegistryProcess):
    """One `zot serve` process on a loopback port (same lifecycle as an ocireg one)."""

    def command(self) -> list[str]:
        return [str(tool("zot")), "serve", str(self.config_path)]


def zot_or_ocireg(kind: str, workdir: Path, config: dict[str, Any]) -> RegistryProcess:
    """A zot (`kind` "zot", given `zot_config(config)`) or an ocireg process for the same
    config, not started: for tests that give both the same section and compare."""
    if kind == "zot":
        return ZotProcess(workdir, zot_config(config), name="zot")
    return RegistryProcess(workdir, config)
