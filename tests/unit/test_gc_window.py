"""zot's `storage.gcTimeWindow`: parsed as zot parses it, and how long a due run waits."""

from __future__ import annotations

import pytest

from ocireg.config import build_config
from ocireg.errors import ConfigError
from ocireg.settings.windows import TimeWindow, parse_window

MIDNIGHT = 1_700_006_400.0  # a Unix time at 00:00 UTC


def at(hh: int, mm: int = 0) -> float:
    return MIDNIGHT + hh * 3600 + mm * 60


def test_the_key_reads_as_zot_writes_it() -> None:
    config = build_config({"storage": {"rootDirectory": "/r", "gcTimeWindow": "01:00-08:30"}})
    assert config.storage.gc_time_window == TimeWindow(60, 510)
    assert "storage.gcTimeWindow" not in config.warnings
    assert str(config.storage.gc_time_window) == "01:00-08:30"
    assert parse_window("", "w") is None
    assert parse_window(" 22:00 - 04:00 ", "w") == TimeWindow(1320, 240)


@pytest.mark.parametrize(
    "value", ["01:00", "1:00-", "25:00-01:00", "01:60-02:00", "3-4", "01:00-01:00"]
)
def test_a_wrong_window_is_an_error_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"storage": {"rootDirectory": "/r", "gcTimeWindow": value}})
    assert caught.value.path == "storage.gcTimeWindow"


def test_inside_the_window_a_run_starts_at_once_outside_it_waits_for_the_start() -> None:
    night = TimeWindow(60, 480)  # 01:00-08:00
    assert night.wait(at(1)) == 0 and night.wait(at(7, 59)) == 0
    assert night.wait(at(0, 30)) == 30 * 60
    assert night.wait(at(8)) == 17 * 3600  # the end is outside: until tomorrow's start
    wrapping = TimeWindow(1320, 240)  # 22:00-04:00
    assert wrapping.wait(at(23)) == 0 and wrapping.wait(at(3, 59)) == 0
    assert wrapping.wait(at(4)) == 18 * 3600
    assert wrapping.wait(at(21, 45)) == 15 * 60
