"""What a duration in feeds.yaml or on the command line means: '15m' -> 900.0,
and what an alert's quiet hours mean: '22:00-07:00' -> (22:00, 07:00).

Owns the duration and quiet-hours syntax only, at the bottom layer so config and cli can read
durations without importing the polling policy (monitor.decide). Pure: no I/O.
"""

from __future__ import annotations

import re
from datetime import time

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])\s*", re.ASCII)
_PARTS = re.compile(rf"(?:{_PART.pattern})+", re.ASCII)
_MAX_DURATION = 100 * 365 * 86400.0


def parse_duration(text: str) -> float:
    """'30s', '15m', '2h', '7d', '1w', '1h30m' or a plain number of seconds -> seconds.

    Raises ValueError naming the text on anything else, on zero and on
    negative values.
    """
    cleaned = str(text).strip().lower()
    if cleaned.startswith("-"):
        raise ValueError(f"duration must be positive, got {text!r}")
    if _NUMBER.fullmatch(cleaned):
        seconds = float(cleaned)
    elif _PARTS.fullmatch(cleaned):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    else:
        raise ValueError(
            f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d, 1h30m or seconds)"
        )
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration too long: {text!r} (at most 100 years)")
    return seconds


_QUIET = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*")


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """``"22:00-07:00"`` as (start, end), local wall-clock times; a window may
    cross midnight. Raises ValueError naming the expected form."""
    m = _QUIET.fullmatch(text)
    if m is None:
        raise ValueError(f"quiet hours must read HH:MM-HH:MM (e.g. 22:00-07:00), got {text!r}")
    start = time(int(m.group(1)), int(m.group(2)))
    end = time(int(m.group(3)), int(m.group(4)))
    if start == end:
        raise ValueError(f"quiet hours start and end at the same time: {text!r}")
    return start, end
