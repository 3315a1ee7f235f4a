"""A missing client binary or package skips a test, except in CI where it fails the run."""

from __future__ import annotations

import pytest

from tests.support.tools import require, require_module

NOWHERE = "ocireg-no-such-binary"


def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=NOWHERE):
        require(NOWHERE)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=NOWHERE):
        require(NOWHERE)


def test_missing_module_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="ocireg_no_such_module"):
        require_module("ocireg_no_such_module")


def test_found_binary_is_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require("sh").endswith("/sh")
