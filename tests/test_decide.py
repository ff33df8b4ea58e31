"""monitor.decide: properties of a feed's next state after a poll (backoff,
Retry-After, 410, success, permanent moves), the digest retry delays, and the
held feeds applied by a real poll cycle over a real server and database."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedserver import serve
from helpers import DATA, write_config
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.decide import (
    DIGEST_RETRY,
    DIGEST_RETRY_MAX,
    MOVE_CONFIRMATIONS,
    HeldFeeds,
    decide,
    digest_retry,
    moves,
)
from monitor.errors import ParseError
from monitor.poll import run_poll
from monitor.store import Store
from monitor.types import (
    FAILURE_KINDS,
    FailureKind,
    FeedState,
    FetchFailure,
    FetchResult,
    ParsedFeed,
)

DAY = 86400.0
NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

nows = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC))
seeds = st.integers(min_value=0, max_value=2**32)
error_counts = st.integers(min_value=0, max_value=200)
hints = st.none() | st.floats(min_value=0, max_value=30 * DAY)
kinds = st.sampled_from(FAILURE_KINDS)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[float, float, float]:
    """(min_interval, interval, max_backoff) as a valid feeds.yaml has them:
    min_interval >= 1 s, interval >= min_interval, and a cap above the interval."""
    min_interval = draw(st.floats(min_value=1, max_value=3600))
    interval = draw(st.floats(min_value=min_interval, max_value=7 * DAY))
    max_backoff = draw(st.floats(min_value=interval, max_value=30 * DAY))
    return min_interval, interval, max_backoff


def state(error_count: int = 0, url: str = "http://example.org/feed",
          moved_to: str | None = None, moved_count: int = 0) -> FeedState:
    return FeedState("f", url, error_count=error_count,
                     failing_since=NOW - timedelta(days=1) if error_count else None,
                     moved_to=moved_to, moved_count=moved_count)


def fetched(now: datetime, *, failure: FetchFailure | None = None,
            retry_after: datetime | None = None, max_age: float | None = None,
            not_modified: bool = False, redirect: str | None = None) -> FetchResult:
    return FetchResult("f", "http://example.org/feed", "http://example.org/feed", now, 0.1,
                       status=304 if not_modified else 200, failure=failure,
                       retry_after=retry_after, max_age=max_age, not_modified=not_modified,
                       body=None if not_modified or failure else b"<rss/>",
                       permanent_redirect=redirect)


def delay(due: datetime, now: datetime) -> float:
    return (due - now).total_seconds()


# --- backoff ---------------------------------------------------------------------------------

@given(now=nows, schedule=schedules(), n=error_counts, kind=kinds, seed=seeds)
def test_failure_backoff_stays_between_min_interval_and_max_backoff(
    now: datetime, schedule: tuple[float, float, float], n: int, kind: FailureKind, seed: int,
) -> None:
    min_interval, interval, cap = schedule
    failure = FetchFailure(kind, "it failed")
    d = decide(state(n), fetched(now, failure=failure), None, now, interval=interval,
               max_backoff=cap, rng=random.Random(seed))
    assert d.outcome == "failed" and d.error_count == n + 1
    # A float's rounding to microseconds may cost a microsecond either side.
    assert min_interval - 1e-6 <= delay(d.next_due_at, now) <= cap + 1e-6


@given(now=nows, schedule=schedules(), n=error_counts, max_age=hints, ttl=hints, seed=seeds,
       not_modified=st.booleans())
def test_success_waits_between_min_interval_and_max_backoff(
    now: datetime, schedule: tuple[float, float, float], n: int, max_age: float | None,
    ttl: float | None, seed: int, not_modified: bool,
) -> None:
    min_interval, interval, cap = schedule
    parsed = None if not_modified else ParsedFeed((), ttl=ttl)
    d = decide(state(n), fetched(now, max_age=max_age, not_modified=not_modified), parsed, now,
               interval=interval, max_backoff=cap, rng=random.Random(seed))
    assert min_interval - 1e-6 <= delay(d.next_due_at, now) <= cap + 1e-6


@given(now=nows, n=error_counts, seed=seeds)
def test_backoff_grows_with_each_failure(now: datetime, n: int, seed: int) -> None:
    failure = FetchFailure("timeout", "timed out")

    def due(count: int) -> datetime:
        return decide(state(count), fetched(now, failure=failure), None, now, interval=900,
                      max_backoff=DAY, rng=random.Random(seed)).next_due_at

    assert due(n) <= due(n + 1)


# --- server hints ----------------------------------------------------------------------------

@given(now=nows, n=error_counts, wait=st.floats(min_value=0, max_value=30 * DAY), seed=seeds,
       cap=st.floats(min_value=3600, max_value=DAY))
def test_retry_after_is_honoured_but_capped_at_a_day(
    now: datetime, n: int, wait: float, seed: int, cap: float,
) -> None:
    retry_after = now + timedelta(seconds=wait)
    d = decide(state(n), fetched(now, failure=FetchFailure("rate-limited", "HTTP 429"),
                                 retry_after=retry_after), None, now,
               interval=60, max_backoff=cap, rng=random.Random(seed))
    assert d.next_due_at >= min(retry_after, now + timedelta(seconds=cap))
    assert d.next_due_at <= now + timedelta(days=1)
    assert d.failing is not None
    assert d.failing.retry_after == retry_after  # recorded for `monitor feeds`


def test_a_retry_after_of_nine_days_waits_one() -> None:
    d = decide(state(), fetched(NOW, failure=FetchFailure("rate-limited", "HTTP 429"),
                                retry_after=NOW + timedelta(days=9)), None, NOW,
               interval=60, max_backoff=DAY, rng=random.Random(1))
    assert d.next_due_at == NOW + timedelta(days=1)


# --- 410 and other failures ------------------------------------------------------------------

@given(n=error_counts, kind=kinds, reason=st.text(max_size=40), seed=seeds)
def test_only_a_gone_feed_is_disabled_and_always(n: int, kind: FailureKind, reason: str,
                                                  seed: int) -> None:
    failure = FetchFailure(kind, reason)
    d = decide(state(n), fetched(NOW, failure=failure), None, NOW, interval=900,
               max_backoff=DAY, rng=random.Random(seed))
    assert d.failing is not None
    if kind == "gone":
        assert d.failing.disabled_reason is not None
        assert d.failing.disabled_reason.endswith("the server says this feed is gone for good")
    else:
        assert d.failing.disabled_reason is None
    assert d.failing.failure == failure
    # The first failure starts the failing period; later ones keep its start.
    assert d.failing.failing_since == (NOW - timedelta(days=1) if n else NOW)


def test_a_parse_error_is_a_failure_of_its_kind() -> None:
    d = decide(state(2), fetched(NOW), ParseError("no feed here", kind="not-a-feed"), NOW,
               interval=900, max_backoff=DAY, rng=random.Random(1))
    assert d.outcome == "failed" and d.error_count == 3
    assert d.failing is not None
    assert d.failing.failure == FetchFailure("not-a-feed", "no feed here")


# --- success ---------------------------------------------------------------------------------

@given(n=error_counts, outcome=st.sampled_from(["not-modified", "new", "unchanged"]),
       seed=seeds)
def test_success_resets_the_error_count(n: int, outcome: str, seed: int) -> None:
    not_modified = outcome == "not-modified"
    d = decide(state(n), fetched(NOW, not_modified=not_modified),
               None if not_modified else ParsedFeed(()), NOW, interval=900, max_backoff=DAY,
               rng=random.Random(seed), new_items=outcome == "new")
    assert d.outcome == outcome
    assert d.failing is None and d.error_count == 0


def test_a_quota_cut_drops_the_validators() -> None:
    def keeps(skipped: int) -> bool:
        return decide(state(), fetched(NOW), ParsedFeed(()), NOW, interval=900,
                      max_backoff=DAY, rng=random.Random(1), new_items=True,
                      quota_skipped=skipped).keep_validators

    assert keeps(0) and not keeps(1)


# --- permanent moves -------------------------------------------------------------------------

hosts = st.sampled_from(["example.org", "example.com", "news.example.org"])
schemes = st.sampled_from(["http", "https"])
paths = st.sampled_from(["/feed", "/rss.xml", "/new/feed"])


@given(old_scheme=schemes, old_host=hosts, new_scheme=schemes, new_host=hosts, path=paths,
       pending=st.none() | st.sampled_from(["https://example.com/feed", "http://example.org/x"]),
       seen=st.integers(min_value=0, max_value=5))
def test_a_move_is_adopted_only_for_https_on_the_same_host_or_after_three_polls(
    old_scheme: str, old_host: str, new_scheme: str, new_host: str, path: str,
    pending: str | None, seen: int,
) -> None:
    target = f"{new_scheme}://{new_host}{path}"
    s = state(url=f"{old_scheme}://{old_host}/feed", moved_to=pending,
              moved_count=seen if pending else 0)
    move = moves(s, fetched(NOW, redirect=target))
    upgrade = old_scheme == "http" and new_scheme == "https" and old_host == new_host
    count = s.moved_count + 1 if pending == target else 1
    if upgrade or count >= MOVE_CONFIRMATIONS:
        assert (move.url, move.moved_to, move.moved_count) == (target, None, 0)
    else:
        assert (move.url, move.moved_to, move.moved_count) == (None, target, count)


def test_a_move_seen_three_polls_in_a_row_is_adopted_at_the_third() -> None:
    s = state(url="https://example.org/feed")
    adopted = []
    for _ in range(MOVE_CONFIRMATIONS):
        d = decide(s, fetched(NOW, redirect="https://example.com/feed"), ParsedFeed(()), NOW,
                   interval=900, max_backoff=DAY, rng=random.Random(1))
        adopted.append(d.move.url)
        s = state(url=s.url, moved_to=d.move.moved_to, moved_count=d.move.moved_count)
    assert adopted == [None, None, "https://example.com/feed"]


def test_moves_to_changing_targets_are_never_adopted() -> None:
    s = state(url="https://example.org/feed")
    for i in range(2 * MOVE_CONFIRMATIONS):
        move = moves(s, fetched(NOW, redirect=f"https://example.com/feed{i % 2}"))
        assert move.url is None and move.moved_count == 1
        s = state(url=s.url, moved_to=move.moved_to, moved_count=move.moved_count)


def test_a_failed_poll_keeps_the_pending_move() -> None:
    s = state(moved_to="https://example.com/feed", moved_count=2)
    d = decide(s, fetched(NOW, failure=FetchFailure("timeout", "timed out")), None, NOW,
               interval=900, max_backoff=DAY, rng=random.Random(1))
    assert (d.move.url, d.move.moved_to, d.move.moved_count) == (
        None, "https://example.com/feed", 2)


# --- digest retries --------------------------------------------------------------------------

def test_digest_retries_wait_a_minute_then_four_times_longer_then_hourly() -> None:
    delays = [digest_retry(n, NOW).delay for n in range(1, 8)]
    assert delays == [60, 240, 960, 3600, 3600, 3600, 3600]
    assert DIGEST_RETRY == 60 and DIGEST_RETRY_MAX == 3600


@given(first=st.floats(min_value=0.001, max_value=7200), n=st.integers(min_value=1, max_value=10**6),
       now=nows)
def test_digest_retry_delays_grow_fourfold_and_cap_at_an_hour(first: float, n: int,
                                                                now: datetime) -> None:
    this, following = digest_retry(n, now, first=first), digest_retry(n + 1, now, first=first)
    assert this.delay <= following.delay <= DIGEST_RETRY_MAX
    assert following.delay == min(4 * this.delay, DIGEST_RETRY_MAX)
    assert digest_retry(1, now, first=first).delay == min(first, DIGEST_RETRY_MAX)
    assert this.next_attempt_at == now + timedelta(seconds=this.delay)
    assert this.is_error == (n >= 3)


# --- held feeds, applied by a real cycle -----------------------------------------------------

def test_held_feeds_wait_for_their_due_time() -> None:
    held = HeldFeeds()
    assert held.ready("f", NOW)
    held.hold("f", NOW + timedelta(minutes=15))
    assert not held.ready("f", NOW) and held.ready("g", NOW)
    assert held.ready("f", NOW + timedelta(minutes=15))
    held.release("f")
    assert held.ready("f", NOW)


def test_a_feed_whose_poll_was_not_committed_waits_for_its_next_due_time(
    tmp_path: Path,
) -> None:
    body = (DATA / "feeds" / "dw-en.rdf").read_bytes()
    with serve() as server:
        server.put("/feed", body)
        config = load_config(write_config(
            tmp_path / "feeds.yaml", [{"id": "f", "url": server.url("/feed")}], topics=False,
            settings={"parse_workers": 0}))
        db = tmp_path / "m.db"
        with Store(db) as store:
            store.sync_feeds(config.feeds, datetime.now(UTC))
        # A database that refuses the poll's write, as a full disk would.
        with sqlite3.connect(db) as raw:
            raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON fetches "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        held = HeldFeeds()
        with Store(db) as store:
            first = run_poll(config, store, held=held)
            assert [r.status for r in first.results] == ["failed"]
            assert first.results[0].error is not None
            assert first.results[0].error.kind == "storage"
            assert server.count("/feed") == 1
            # Still due in the database, but held: not fetched again.
            again = run_poll(config, store, held=held)
            assert again.due == 0 and server.count("/feed") == 1
            # A caller without the held feeds (a new process) polls it at once.
            assert run_poll(config, store).due == 1 and server.count("/feed") == 2
            # And --force polls it whatever holds it.
            assert run_poll(config, store, held=held, force=True).due == 1
            assert server.count("/feed") == 3
