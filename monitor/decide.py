"""Pure policy: a feed's next state after a poll, and the daemon's retry and
housekeeping thresholds.

Owns the rules (DESIGN.md "Fetching rules"): when a feed is next due (its
interval, never more often than the server asks: Cache-Control max-age, RSS
``<ttl>``, Retry-After), exponential backoff after consecutive failures,
capped at ``max_backoff`` (24 h), with a little positive jitter so feeds that
share a host and an interval drift apart; disabling a feed the server says is
gone (410); when a permanent move (301/308) is adopted; which feeds are held
back after a poll that could not be committed; the daily item quota and its
effect on the validators; when a failed digest is tried again; which feeds get
article text and when a failed article is tried again; when the FTS
index is merged and the WAL file checkpointed.

Must not do I/O or read the clock: ``now`` is always an argument, and the
jitter's randomness is passed in (or seeded from the arguments). poll.py and
daemon.py apply the decisions; they keep the orchestration and the I/O.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from monitor.errors import ParseError
from monitor.types import FeedState, FetchFailure, FetchResult, ParsedFeed, PollStatus

# Jitter is a fraction of the delay, always added (never subtracted), so a
# feed is never polled earlier than its interval or a server hint allows.
SUCCESS_JITTER = 0.10
FAILURE_JITTER = 0.25

# 2**40 intervals is already centuries: a larger exponent only risks overflow.
_MAX_EXPONENT = 40

MOVE_CONFIRMATIONS = 3  # polls a 301/308 must be seen before the stored URL changes

QUOTA_WINDOW = timedelta(days=1)  # max_items_per_day counts the items stored in this window

DIGEST_RETRY = 60.0  # seconds before a failed digest is tried again; x4 per failure
DIGEST_RETRY_FACTOR = 4
DIGEST_RETRY_MAX = 3600.0  # then hourly, until it is sent
DIGEST_ERROR_AFTER = 3  # failed attempts before it is logged as an error

OPTIMIZE_EVERY = timedelta(days=7)
OPTIMIZE_AFTER_PRUNED = 10_000  # items pruned that make an FTS merge worth it at once
WAL_LIMIT = 64 * 1024 * 1024  # bytes of WAL file before a TRUNCATE checkpoint


# --- when a feed is next due ---------------------------------------------------------------

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
    ``rng`` draws the jitter; without it, it is seeded from the arguments
    (the same answer for the same question: pass an rng to spread feeds).
    """
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    delay = min(_base_delay(interval, error_count, max_age, ttl), max_backoff)
    fraction = FAILURE_JITTER if error_count > 0 else SUCCESS_JITTER
    draw = (rng or _seeded(now, interval, error_count)).random()
    delay = min(delay * (1 + fraction * draw), max_backoff)
    due = now + timedelta(seconds=delay)
    if retry_after is not None and retry_after > due:
        due = min(retry_after, now + timedelta(seconds=max_backoff))
    return due


def _seeded(now: datetime, interval: float, error_count: int) -> random.Random:
    return random.Random(f"{now.isoformat()}|{interval!r}|{error_count}")


def _base_delay(
    interval: float, error_count: int, max_age: float | None, ttl: float | None
) -> float:
    base = max(interval, max_age or 0.0, ttl or 0.0)
    if error_count <= 0:
        return base
    return base * 2.0 ** min(error_count - 1, _MAX_EXPONENT)


# --- a feed's next state after one poll ----------------------------------------------------

@dataclass(frozen=True)
class Move:
    """What a permanent redirect does to a feed's URL."""

    url: str | None = None  # the new stored URL, adopted with this poll
    moved_to: str | None = None  # a target seen but not yet trusted
    moved_count: int = 0  # polls in a row it was seen


NO_MOVE = Move()  # shared: most polls see no permanent redirect


@dataclass(frozen=True)
class Failing:
    """What a failed poll does to its feed."""

    failure: FetchFailure
    error_count: int  # consecutive failures, this one included
    failing_since: datetime
    retry_after: datetime | None = None  # the server's, recorded as it came
    disabled_reason: str | None = None  # set: the feed is not polled again


@dataclass(frozen=True)
class Decision:
    """A feed's next state after one poll: poll.py writes it with the poll's
    items (as a FeedUpdate) and reports ``outcome``. Few fields, the failure's
    apart: one is made per feed and poll."""

    outcome: PollStatus
    next_due_at: datetime
    move: Move = NO_MOVE
    # False: store no validators (ETag, Last-Modified, body hash), so the
    # next poll reads and parses the body whole.
    keep_validators: bool = True
    failing: Failing | None = None  # None: a success, which resets the error count

    @property
    def error_count(self) -> int:
        return self.failing.error_count if self.failing else 0


def decide(state: FeedState, fetched: FetchResult, parsed: ParsedFeed | ParseError | None,
           now: datetime, *, interval: float, max_backoff: float, rng: random.Random | None,
           new_items: bool = False, quota_skipped: int = 0) -> Decision:
    """A feed's next state from its stored ``state``, the ``fetched`` result,
    what its body ``parsed`` to (None: not parsed: a 304, an unchanged body or
    a failed fetch) and ``now``. ``new_items``: the poll stores new items;
    ``quota_skipped``: new items the daily quota left out."""
    failure = fetched.failure
    if failure is None and isinstance(parsed, ParseError):
        failure = FetchFailure(parsed.kind, parsed.message)
    if failure is not None:
        return _failed(state, fetched, failure, now, interval=interval,
                       max_backoff=max_backoff, rng=rng)
    ttl = parsed.ttl if isinstance(parsed, ParsedFeed) else None
    due = next_due(now=now, interval=interval, error_count=0, max_age=fetched.max_age, ttl=ttl,
                   max_backoff=max_backoff, rng=rng)
    outcome: PollStatus = ("not-modified" if fetched.not_modified
                           else "new" if new_items else "unchanged")
    # Skipped items are not stored, so nothing marks them seen; but an
    # unchanged body (same ETag, same hash) would never be parsed again.
    # Without validators the next poll reads it whole, and stores what the
    # quota then has room for.
    return Decision(outcome, due, move=moves(state, fetched), keep_validators=not quota_skipped)


def _failed(state: FeedState, fetched: FetchResult, failure: FetchFailure, now: datetime, *,
            interval: float, max_backoff: float, rng: random.Random | None) -> Decision:
    count = state.error_count + 1
    due = next_due(now=now, interval=interval, error_count=count,
                   retry_after=fetched.retry_after, max_backoff=max_backoff, rng=rng)
    move = (NO_MOVE if state.moved_to is None and not state.moved_count
            else Move(None, state.moved_to, state.moved_count))
    return Decision("failed", due, move, failing=Failing(
        failure, count, state.failing_since or now, fetched.retry_after,
        disabled_reason(failure)))


def disabled_reason(failure: FetchFailure) -> str | None:
    """Why a failure disables its feed for good, or None: only a 410 does."""
    if failure.kind == "gone":
        return f"{failure.reason}: the server says this feed is gone for good"
    return None


def moves(state: FeedState, fetched: FetchResult) -> Move:
    """What a fetch's permanent redirect does to the feed's stored URL.

    A permanent move is trusted at once for http->https on the same host, else
    only once seen on MOVE_CONFIRMATIONS polls in a row: a misconfigured server
    must not lose a feed for good."""
    target = fetched.permanent_redirect
    if not target:
        return NO_MOVE
    old, new = urlsplit(state.url), urlsplit(target)
    if old.scheme == "http" and new.scheme == "https" and old.hostname == new.hostname:
        return Move(url=target)
    count = state.moved_count + 1 if state.moved_to == target else 1
    if count >= MOVE_CONFIRMATIONS:
        return Move(url=target)
    return Move(moved_to=target, moved_count=count)


# --- the daily quota -----------------------------------------------------------------------

T = TypeVar("T")


def within_quota(new: list[T], limit: int, stored: int) -> tuple[list[T], int]:
    """(the new items a quota of ``limit`` a day has room for, how many it
    leaves out), with ``stored`` items already stored in the QUOTA_WINDOW:
    the first items in document order are kept."""
    room = max(0, limit - stored)
    if len(new) <= room:
        return new, 0
    return new[:room], len(new) - room


# --- feeds held after a poll that could not be committed -----------------------------------

@dataclass
class HeldFeeds:
    """Feeds of one database whose poll could not be committed (disk full,
    I/O error), with when each is next due: the database still says "due",
    so without this a daemon would fetch them again at every tick until
    space returns. Owned by whoever runs the cycles (the daemon): in memory
    only, so a restart, or `poll --force`, retries at once."""

    until: dict[str, datetime] = field(default_factory=dict)

    def hold(self, feed_id: str, due: datetime) -> None:
        self.until[feed_id] = due

    def release(self, feed_id: str) -> None:
        self.until.pop(feed_id, None)

    def ready(self, feed_id: str, now: datetime) -> bool:
        """Whether a due feed may be polled at ``now``."""
        return self.until.get(feed_id, now) <= now


# --- digests and housekeeping --------------------------------------------------------------

@dataclass(frozen=True)
class DigestRetry:
    """When a digest that failed its ``attempts``-th time is tried again."""

    attempts: int
    delay: float  # seconds
    next_attempt_at: datetime
    is_error: bool  # logged as an error (else a warning): it keeps failing


def digest_retry(attempts: int, now: datetime, *, first: float = DIGEST_RETRY) -> DigestRetry:
    """After ``attempts`` failures (1, 2, ...): ``first`` seconds, then four
    times longer each time, then hourly."""
    delay = first  # times 4 step by step: the same figures, and no overflow after years
    for _ in range(attempts - 1):
        if delay >= DIGEST_RETRY_MAX:
            break
        delay *= DIGEST_RETRY_FACTOR
    delay = min(delay, DIGEST_RETRY_MAX)
    return DigestRetry(attempts, delay, now + timedelta(seconds=delay),
                       attempts >= DIGEST_ERROR_AFTER)


def should_optimize(pruned: int, last_optimize: datetime | None, now: datetime) -> bool:
    """Whether housekeeping merges the FTS index: after a large prune, when
    never done, or a week after the last merge."""
    return (pruned >= OPTIMIZE_AFTER_PRUNED or last_optimize is None
            or now - last_optimize >= OPTIMIZE_EVERY)


ALERT_RETRY = 15.0  # seconds before a failed alert is tried again; x4 per failure
ALERT_RETRY_MAX = 3600.0  # then hourly, until it is sent
RATE_WINDOW = timedelta(hours=1)  # max_per_hour counts the messages sent in this window


def alert_retry(attempts: int, now: datetime) -> datetime:
    """When an alert that failed its ``attempts``-th time (1, 2, ...) is tried again."""
    return now + timedelta(seconds=_alert_delay(max(1, attempts)))


def _alert_delay(attempts: int) -> float:
    delay = ALERT_RETRY
    for _ in range(attempts - 1):
        if delay >= ALERT_RETRY_MAX:
            break
        delay *= DIGEST_RETRY_FACTOR
    return min(delay, ALERT_RETRY_MAX)


# --- alerts: the hourly cap and quiet hours ------------------------------------------------

def alert_split(queued: int, sent_last_hour: int, max_per_hour: int | None) -> tuple[int, int]:
    """How many of ``queued`` alert messages (oldest first) go out one by one
    now, and how many of the rest are folded into one summary, under a cap of
    ``max_per_hour`` messages (None: no cap). The summary is a message too and
    takes the last free slot; with no slot free, nothing goes out yet (the
    queue waits for the hour to roll on). A summary always folds two or more:
    one left over simply goes out on its own."""
    if max_per_hour is None or queued <= max_per_hour - sent_last_hour:
        return queued, 0
    room = max_per_hour - sent_last_hour
    if room <= 0:
        return 0, 0
    return room - 1, queued - (room - 1)


def in_quiet_hours(now: time, window: tuple[time, time]) -> bool:
    """Whether the local wall-clock ``now`` lies in ``window`` [start, end)."""
    start, end = window
    if start < end:
        return start <= now < end
    return now >= start or now < end  # crosses midnight


def quiet_hours_end(now: datetime, window: tuple[time, time]) -> datetime | None:
    """When the quiet hours ``now`` (an aware local datetime) lies in end, or
    None outside them: the time held alerts may go out."""
    if not in_quiet_hours(now.time(), window):
        return None
    end = now.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
    return end if end > now else end + timedelta(days=1)


# --- article text ----------------------------------------------------------------------

TEASER_CHARS = 500  # title + summary under this: an item is a teaser
ARTICLE_RETRY = 600.0  # seconds before a retryable article failure is tried again; x4 each
ARTICLE_RETRY_FACTOR = 4
ARTICLE_ATTEMPTS = 4  # then the failure is final


def wants_article_text(mode: str, lengths: Sequence[int]) -> bool:
    """Whether a feed's new items get their article text: ``always``,
    ``never``, or (``auto``) when most of its recent items (``lengths``: the
    characters of title + summary of each) are teasers."""
    if mode == "always":
        return True
    if mode == "never" or not lengths:
        return False
    return sum(1 for n in lengths if n < TEASER_CHARS) * 2 > len(lengths)


def article_retry(attempts: int, now: datetime) -> datetime | None:
    """When a retryable article failure (timeout, 5xx, network), after
    ``attempts`` tries in all, is tried again; None: never, it is final."""
    if attempts >= ARTICLE_ATTEMPTS:
        return None
    delay = ARTICLE_RETRY * ARTICLE_RETRY_FACTOR ** max(0, attempts - 1)
    return now + timedelta(seconds=delay)
