"""When a feed is next due, and what a duration in feeds.yaml means.

Pure functions, no I/O and no clock: the caller passes ``now``. The rules
(DESIGN.md "Fetching rules"): poll at the feed's interval, never more often
than the server asks (Cache-Control max-age, RSS ``<ttl>``, Retry-After),
back off exponentially after consecutive failures, never wait longer than
``max_backoff`` (24 h), and add a little positive jitter so feeds that share a
host and an interval drift apart instead of arriving together.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

# Jitter is a fraction of the delay, always added (never subtracted), so a
# feed is never polled earlier than its interval or a server hint allows.
SUCCESS_JITTER = 0.10
FAILURE_JITTER = 0.25

# 2**40 intervals is already centuries: a larger exponent only risks overflow.
_MAX_EXPONENT = 40

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])\s*", re.ASCII)
_PARTS = re.compile(rf"(?:{_PART.pattern})+", re.ASCII)
_MAX_DURATION = 100 * 365 * 86400.0


def next_due(
    *,
    now: datetime,
    interval: float,
    error_count: int = 0,
    retry_after: datetime | None = None,
    max_age: float | None = None,
    ttl: float | None = None,
    max_backoff: float = 86400,
    rng: random.Random | None = None,
) -> datetime:
    """The time a feed should next be polled.

    The base delay is the largest of ``interval``, ``max_age`` and ``ttl``;
    after ``error_count`` consecutive failures it doubles per failure
    (base, 2 x base, 4 x base, ...). Jitter of 0-10 % (success) or 0-25 %
    (failure) of the delay is added, then everything is capped at
    ``max_backoff``. A later ``retry_after`` wins, capped the same way.
    ``rng`` makes the jitter deterministic; without it the ``random`` module
    is used.
    """
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    delay = min(_base_delay(interval, error_count, max_age, ttl), max_backoff)
    fraction = FAILURE_JITTER if error_count > 0 else SUCCESS_JITTER
    draw = (rng or random).random()
    delay = min(delay * (1 + fraction * draw), max_backoff)
    due = now + timedelta(seconds=delay)
    if retry_after is not None and retry_after > due:
        due = min(retry_after, now + timedelta(seconds=max_backoff))
    return due


def _base_delay(
    interval: float, error_count: int, max_age: float | None, ttl: float | None
) -> float:
    base = max(interval, max_age or 0.0, ttl or 0.0)
    if error_count <= 0:
        return base
    return base * 2.0 ** min(error_count - 1, _MAX_EXPONENT)


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
