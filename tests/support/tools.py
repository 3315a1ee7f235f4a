"""External programs and optional packages the tests use: found, or the test is skipped,
except in CI (`CI=true`), where something missing fails the run: a skip there would
report a green run in which the clients were never tested."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

CI_ENV = "CI"


def in_ci() -> bool:
    return os.environ.get(CI_ENV, "").strip().lower() in ("true", "1", "yes")


def missing(what: str) -> NoReturn:
    """Skip the test for want of `what`, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{what} (required when {CI_ENV}=true)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def require(binary: str) -> str:
    """The binary's path; a missing one skips the test (fails it in CI)."""
    path = shutil.which(binary)
    if path is None:
        missing(f"{binary} is not installed (`make test` installs it)")
    return path


def require_module(name: str) -> ModuleType:
    """`pytest.importorskip`, except that in CI a missing package fails the run."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name} is not installed (the `test` extra)")
