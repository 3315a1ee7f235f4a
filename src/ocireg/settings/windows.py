"""zot's `storage.gcTimeWindow`: a daily time-of-day window, in UTC, in which a periodic
garbage collection run may start ("01:00-08:00"; a start after the end wraps past midnight,
"22:00-04:00"). A run that started inside it goes on past its end."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocireg.errors import ConfigError

_TIME = re.compile(r"(\d{1,2}):(\d{2})")
DAY = 24 * 60  # minutes


@dataclass(frozen=True)
class TimeWindow:
    start: int  # minutes after midnight, UTC
    end: int

    def wait(self, now: float) -> float:
        """Seconds from `now` (a Unix time) until the window is open; 0 inside it."""
        minute = (now % 86400) / 60
        inside = (
            self.start <= minute < self.end
            if self.start < self.end
            else minute >= self.start or minute < self.end
        )
        return 0.0 if inside else ((self.start - minute) % DAY) * 60

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def parse_window(value: str, where: str) -> TimeWindow | None:
    """ "HH:MM-HH:MM" (24 h, UTC); "" is no window."""
    if not value.strip():
        return None
    start, sep, end = value.partition("-")
    if not sep:
        raise ConfigError(where, f'expected "HH:MM-HH:MM", got {value!r}')
    window = TimeWindow(_minutes(start, where, value), _minutes(end, where, value))
    if window.start == window.end:
        raise ConfigError(where, f"the window's start and end cannot be equal: {value!r}")
    return window


def _minutes(text: str, where: str, value: str) -> int:
    m = _TIME.fullmatch(text.strip())
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError(where, f'expected 24 h times "HH:MM-HH:MM", got {value!r}')
    return int(m.group(1)) * 60 + int(m.group(2))
