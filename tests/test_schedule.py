"""monitor.decide.next_due and monitor.durations: properties of next_due, and parse_duration.

next_due must never schedule a feed earlier than its interval or a server
hint (unless that exceeds the 24 h cap), never later than the cap, back off
monotonically with consecutive failures, and honour Retry-After.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.decide import FAILURE_JITTER, SUCCESS_JITTER, next_due
from monitor.durations import parse_duration

DAY = 86400.0
NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

nows = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
intervals = st.floats(min_value=1, max_value=7 * DAY)
hints = st.none() | st.floats(min_value=0, max_value=30 * DAY)
backoffs = st.floats(min_value=60, max_value=7 * DAY)
errors = st.integers(min_value=0, max_value=200)
seeds = st.integers(min_value=0, max_value=2**32)


def seconds_after(due: datetime, now: datetime) -> float:
    return (due - now).total_seconds()


@given(now=nows, interval=intervals, max_age=hints, ttl=hints, cap=backoffs, seed=seeds)
def test_success_waits_at_least_the_interval_and_every_hint(
    now: datetime, interval: float, max_age: float | None, ttl: float | None, cap: float,
    seed: int,
) -> None:
    due = next_due(now=now, interval=interval, max_age=max_age, ttl=ttl, max_backoff=cap,
                   rng=random.Random(seed))
    floor = min(max(interval, max_age or 0, ttl or 0), cap)
    assert due >= now + timedelta(seconds=floor)
    assert due <= now + timedelta(seconds=cap)


@given(now=nows, interval=intervals, n=errors, max_age=hints, ttl=hints, cap=backoffs,
       retry=st.none() | st.floats(min_value=-DAY, max_value=100 * DAY), seed=seeds)
def test_never_beyond_the_cap(
    now: datetime, interval: float, n: int, max_age: float | None, ttl: float | None,
    cap: float, retry: float | None, seed: int,
) -> None:
    retry_after = None if retry is None else now + timedelta(seconds=retry)
    due = next_due(now=now, interval=interval, error_count=n, retry_after=retry_after,
                   max_age=max_age, ttl=ttl, max_backoff=cap, rng=random.Random(seed))
    assert now < due <= now + timedelta(seconds=cap)


@given(now=nows, interval=intervals, n=st.integers(min_value=0, max_value=60), cap=backoffs,
       max_age=hints, seed=seeds)
def test_monotone_in_error_count(
    now: datetime, interval: float, n: int, cap: float, max_age: float | None, seed: int
) -> None:
    def due(count: int) -> datetime:
        return next_due(now=now, interval=interval, error_count=count, max_age=max_age,
                        max_backoff=cap, rng=random.Random(seed))

    assert due(n) <= due(n + 1)


@given(now=nows, interval=intervals, n=errors, cap=backoffs,
       retry=st.floats(min_value=0, max_value=30 * DAY), seed=seeds)
def test_retry_after_is_honoured_up_to_the_cap(
    now: datetime, interval: float, n: int, cap: float, retry: float, seed: int
) -> None:
    retry_after = now + timedelta(seconds=retry)
    due = next_due(now=now, interval=interval, error_count=n, retry_after=retry_after,
                   max_backoff=cap, rng=random.Random(seed))
    assert due >= min(retry_after, now + timedelta(seconds=cap))


@given(now=nows, interval=intervals, n=st.integers(min_value=0, max_value=12), seed=seeds)
def test_jitter_is_positive_and_bounded(now: datetime, interval: float, n: int, seed: int) -> None:
    cap = 2e9  # out of the way: 7 d x 2**11 x 1.25 is below it
    delay = seconds_after(next_due(now=now, interval=interval, error_count=n, max_backoff=cap,
                                   rng=random.Random(seed)), now)
    base = interval * 2 ** max(n - 1, 0)
    fraction = FAILURE_JITTER if n else SUCCESS_JITTER
    assert base - 1e-6 <= delay <= base * (1 + fraction) + 1e-6


def test_jitter_is_deterministic_with_an_rng_and_spreads_feeds() -> None:
    first = next_due(now=NOW, interval=900, rng=random.Random(7))
    assert first == next_due(now=NOW, interval=900, rng=random.Random(7))
    spread = {next_due(now=NOW, interval=900, rng=random.Random(seed)) for seed in range(20)}
    assert len(spread) > 10


def test_backoff_doubles_from_the_interval_to_a_day() -> None:
    class Zero(random.Random):
        def random(self) -> float:
            return 0.0

    delays = [seconds_after(next_due(now=NOW, interval=900, error_count=n, rng=Zero()), NOW)
              for n in range(10)]
    assert delays[:5] == [900, 900, 1800, 3600, 7200]
    assert delays[-1] == DAY


def test_huge_error_count_does_not_overflow() -> None:
    assert next_due(now=NOW, interval=900, error_count=10**6) == NOW + timedelta(days=1)


def test_retry_after_later_than_a_day_is_capped() -> None:
    due = next_due(now=NOW, interval=60, error_count=1, retry_after=NOW + timedelta(days=9))
    assert due == NOW + timedelta(days=1)


@pytest.mark.parametrize("interval", [0, -1, -900.0])
def test_non_positive_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        next_due(now=NOW, interval=interval)


# ------------------------------------------------------------------ parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 7 * DAY), ("1w", 7 * DAY),
     ("1h30m", 5400), ("1h 30m", 5400), ("1d2h3m4s", DAY + 7384), ("900", 900),
     ("900.0", 900), ("1.5h", 5400), (" 2H ", 7200), ("0.5s", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text, message",
    [("", "not a duration"), ("abc", "not a duration"), ("5x", "not a duration"),
     ("1h abc", "not a duration"), ("h", "not a duration"), ("1e3", "not a duration"),
     ("inf", "not a duration"), ("nan", "not a duration"), ("1h-30m", "not a duration"),
     ("0", "must be positive"), ("0s", "must be positive"), ("0h0m", "must be positive"),
     ("-5", "must be positive"), ("-5m", "must be positive"),
     ("999999999999d", "too long")],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@given(h=st.integers(0, 1000), m=st.integers(0, 59), s=st.integers(0, 59))
def test_parse_duration_sums_its_parts(h: int, m: int, s: int) -> None:
    total = h * 3600 + m * 60 + s
    text = f"{h}h{m}m{s}s"
    if total == 0:
        with pytest.raises(ValueError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total
        assert parse_duration(str(total)) == total


@given(st.text(max_size=20))
def test_parse_duration_only_returns_positive_or_raises_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 0 < seconds < float("inf")
