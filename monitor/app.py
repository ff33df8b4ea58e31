"""`Monitor`: the use cases of `monitor`, one method each, built by `open_monitor`.

Owns what a command or a daemon job does from start to end: check the config
and the topics' examples, sync feeds and topics into the store, poll, hits,
search, the feeds report and feed health, feeds add/remove/enable, topics
test/check/apply, digests (by hand and scheduled, with their retries),
housekeeping, reloads and status. The command-line values that stand for
dates and addresses are read here too (``parse_since``, the e-mail checks).

It must not present anything: methods return records and dicts, report what
happens meanwhile through the callbacks they are given (``on_warning``,
progress), and raise MonitorError (``UsageError`` for a bad command-line
value). Printing is cli.py's, scheduling, signals and the lock daemon.py's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from monitor import configcache, examplecache, health
from monitor.configcache import Config, config_path
from monitor.decide import WAL_LIMIT, HeldFeeds, digest_retry, should_optimize
from monitor.durations import parse_duration
from monitor.errors import ConfigError, MonitorError, StorageError, UsageError
from monitor.store import Store, db_path, from_iso, to_iso
from monitor.store.maintenance import INCREMENTAL
from monitor.types import DigestConfig, Entry, FeedConfig, PollSummary, Topic

if TYPE_CHECKING:
    from monitor import match
    from monitor.digest import Digest
    from monitor.discover import FoundFeed
    from monitor.feedsfile import FeedSpec
    from monitor.notify.outbox import Delivery
    from monitor.opml import OpmlFeed
    from monitor.poll import Progress, StopFlag
    from monitor.reapply import ApplyResult
    from monitor.suggest import Review

# Imported where used, not here: the digest's templates (jinja2), the cron
# triggers (APScheduler), discovery (lxml) and mail would slow every command's start;
# the poll's fetcher, parsers and matcher (monitor.poll, monitor.match: httpx,
# feedparser, lxml, PyStemmer) a `monitor poll` that finds nothing due.

log = logging.getLogger("monitor.app")



# --- records -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ExampleFailure:
    topic_id: str
    text: str
    expected: bool  # True: should have matched


@dataclass(frozen=True)
class CheckReport:
    """`monitor check` of a valid file: its examples' failures."""

    config: Config
    failures: list[ExampleFailure]
    examples: int


@dataclass(frozen=True)
class ExampleResult:
    topic_id: str
    expect: Literal["match", "no match"]
    text: str
    ok: bool
    story: str | None = None  # a desk verdict's story key; None: a feeds.yaml example


@dataclass(frozen=True)
class StaleTopic:
    """A topic whose stored hits follow an older query (a warning of sync)."""

    topic_id: str


@dataclass(frozen=True)
class ConfigIgnored:
    """feeds.yaml has errors: a report goes on with the database's feeds alone."""

    error: ConfigError


Notice = StaleTopic | ConfigIgnored


@dataclass(frozen=True)
class DigestOutcome:
    """What ``run_digest`` did: the digest, the file written, who it was mailed to."""

    digest: Digest
    path: Path | None = None
    sent_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestRun:
    """One scheduled digest run of the daemon: ``sent`` (``outcome`` says
    where), ``dropped`` (no longer configured), ``skipped`` (a retry that
    was sent meanwhile) or ``failed`` (``error``, ``attempts``, ``delay``
    before the next attempt)."""

    status: Literal["sent", "dropped", "skipped", "failed"]
    outcome: DigestOutcome | None = None
    error: Exception | None = None
    reason: str = ""
    attempts: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class CatchUp:
    """A digest found pending at start: ``retry`` (not sent last time) or
    ``missed`` (its run at ``missed_at`` came while no daemon ran)."""

    digest_id: str
    kind: Literal["retry", "missed"]
    last_error: str | None = None
    missed_at: datetime | None = None


@dataclass(frozen=True)
class Maintenance:
    pruned: int
    merged: Literal["merged", "merge left for next time", "not needed"]
    wal_bytes: int
    checkpointed: bool
    retention: float
    freed_pages: int = 0  # given back to the file system (incremental auto-vacuum)
    converted: bool = False  # the file was converted to incremental auto-vacuum


@dataclass(frozen=True)
class Checkpoint:
    wal_bytes: int
    done: tuple[int, int, int] | None


# --- command-line values -----------------------------------------------------------------

def parse_since(text: str | None, default: timedelta | None = None) -> datetime | None:
    """'24h', '7d' (ago) or an ISO date/datetime (UTC if no zone)."""
    if text is None:
        return datetime.now(UTC) - default if default else None
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is neither a duration (24h, 7d) nor a date "
                         "(2026-01-31)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def since_arg(text: str | None) -> datetime | timedelta | None:
    """--since of a digest: a duration counts back from --until, else a date."""
    if text is None:
        return None
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError:
        return parse_since(text)


def check_emails(emails: Sequence[str]) -> None:
    from monitor.notify.mail import ADDRESS

    for addr in emails:
        if not ADDRESS.fullmatch(addr) or "=?" in addr:
            raise UsageError(f"not an e-mail address: {addr!r}", param_hint="--email")


def _check_new_id(feed_id: str | None, taken: set[str], path: str) -> None:
    if feed_id is None:
        return
    from monitor.config import ID_PATTERN

    if not (re.fullmatch(ID_PATTERN, feed_id) and len(feed_id) <= 64):
        raise UsageError("use a-z, 0-9 and -, starting with a letter or digit "
                         "(at most 64)", param_hint="--id")
    if feed_id in taken:
        raise ConfigError("a feed with this id is already in the config", file=path,
                          feed=feed_id)


# --- OPML import ------------------------------------------------------------------------

@dataclass(frozen=True)
class OpmlImport:
    """What an OPML import added (or would add), and what it left out, why."""

    added: tuple[FeedSpec, ...]
    present: tuple[tuple[str, str], ...]  # (url, id of the feed already configured)
    duplicates: tuple[str, ...]  # URLs listed again further down the file
    invalid: tuple[tuple[str, str], ...]  # (url, reason)
    path: str = ""
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.path, "dry_run": self.dry_run,
            "imported": [{"id": s.id, "url": s.url, "name": s.name, "tags": list(s.tags)}
                         for s in self.added],
            "present": [{"url": u, "feed": f} for u, f in self.present],
            "duplicates": list(self.duplicates),
            "invalid": [{"url": u, "reason": r} for u, r in self.invalid],
        }


def plan_opml_import(config: Config, entries: Sequence[OpmlFeed],
                     tags: Sequence[str]) -> OpmlImport:
    """Sort the outlines of an OPML list into feeds to add (ids derived from
    their titles, unique), feeds already configured (same URL identity as
    config's duplicate check), repeats within the list and unusable URLs."""
    from monitor.config import _check_url, _url_identity
    from monitor.discover import derive_id
    from monitor.feedsfile import FeedSpec

    known = {_url_identity(f.url): f.id for f in config.feeds}
    taken = {f.id for f in config.feeds}
    seen: set[str] = set()
    added: list[FeedSpec] = []
    present: list[tuple[str, str]] = []
    duplicates: list[str] = []
    invalid: list[tuple[str, str]] = []
    for entry in entries:
        problem = _check_url(entry.url) or (
            "URL has whitespace or control characters inside" if _SPACE_OR_CONTROL.search(entry.url)
            else None)
        if problem:
            invalid.append((entry.url, problem))
            continue
        ident = _url_identity(entry.url)
        if ident in known:
            present.append((entry.url, known[ident]))
        elif ident in seen:
            duplicates.append(entry.url)
        else:
            seen.add(ident)
            new_id = derive_id(entry.title, entry.url, taken)
            taken.add(new_id)
            added.append(FeedSpec(id=new_id, url=entry.url, name=entry.title,
                                  tags=tuple(dict.fromkeys([*tags, *entry.tags]))))
    return OpmlImport(added=tuple(added), present=tuple(present),
                      duplicates=tuple(duplicates), invalid=tuple(invalid))


# A line break inside a URL could only come from a broken or hostile list.
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _extra_tags(tags: Sequence[str]) -> tuple[str, ...]:
    from monitor.opml import slug_tag

    out = []
    for tag in tags:
        slug = slug_tag(tag)
        if not slug:
            raise UsageError(f"not a usable tag: {tag!r}", param_hint="--tag")
        out.append(slug)
    return tuple(dict.fromkeys(out))


# --- examples ----------------------------------------------------------------------------

def check_examples(config: Config) -> list[ExampleFailure]:
    """Run every topic's examples; the failures (empty when all behave)."""
    from monitor import match

    cases = [(n, expected, text) for n, topic in enumerate(config.topics)
             for expected, texts in ((True, topic.examples.match),
                                     (False, topic.examples.no_match))
             for text in texts]
    if not cases:
        return []
    matched = match.shared_matcher(tuple(config.topics)).matching([text for _, _, text in cases])
    return [ExampleFailure(config.topics[n].id, text, expected)
            for i, (n, expected, text) in enumerate(cases) if (i in matched[n]) != expected]


def _verdict_entry(row: dict[str, Any]) -> Entry:
    # The item id stands in as the key: hits come back keyed by it.
    published = from_iso(str(row["published_at"])) or datetime.now(UTC)
    return Entry(key=str(row["id"]), title=str(row["title"] or ""),
                 summary=str(row["summary"] or ""), url=str(row["url"]) if row["url"] else None,
                 published_at=published)


def load_config(path: str) -> Config:
    """config.load_config, imported when a file is read: PyYAML and pydantic
    are not needed where a copy of the config is used (configcache)."""
    from monitor.config import load_config as read_and_validate

    return read_and_validate(path)


def load_checked(path: str, *, hint: bool = False, verdicts: Path | None = None,
                 load: Callable[[str], Config] = load_config) -> Config:
    """feeds.yaml (read by ``load``), refused (ConfigError) when a topic's
    example fails; ``hint`` points the message at `monitor topics check`.
    ``verdicts``: the file of the last pass (examplecache), which spares the
    run when nothing it depends on changed."""
    config = load(path)
    key = examplecache.verdict_key(config) if verdicts else ""
    if verdicts and examplecache.passed_before(verdicts, key):
        log.info("topics' examples not run: they passed before, and no topic, term list, "
                 "entity or matching code changed since")
        return config
    t0 = time.monotonic()
    failures = check_examples(config)
    log.info("topics' examples run: %d failed (%.2fs)", len(failures), time.monotonic() - t0)
    if not failures:
        examplecache.record_pass(verdicts, key)
    if failures:
        f = failures[0]
        see = " (see `monitor topics check`)" if hint else ""
        raise ConfigError(f"example {'does not match' if f.expected else 'matches'}: "
                          f"{f.text!r}{see}", file=config.path if hint else path,
                          topic=f.topic_id, field="examples")
    return config


# --- the facade --------------------------------------------------------------------------

class Monitor:
    """The use cases over one feeds.yaml and one database. The config is read
    when first needed (``sync`` and ``reload`` read it again); ``store`` is the connection
    of polls and syncs, opened when first needed and closed by ``close``;
    other use cases open a short-lived connection of their own (the daemon
    runs them in other threads). ``on_warning`` hears what does not stop a
    use case (a stale topic, a config ignored by a report)."""

    def __init__(self, config_path: str, db_path: str, *,
                 on_warning: Callable[[Notice], None] | None = None,
                 load: Callable[[str], Config] | None = None) -> None:
        self.config_path = config_path
        self.db_path = db_path
        # How feeds.yaml is read (the desk's: config.CachedConfig); by default
        # through the copy of its last valid read kept next to the database.
        self._load = load or self._load_with_copy
        self.on_warning = on_warning or (lambda w: None)
        self._config: Config | None = None
        self._store: Store | None = None
        # Feeds whose poll could not be committed, held until their due time
        # across the daemon's ticks (decide.HeldFeeds; in memory, per database).
        self.held = HeldFeeds()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- config and store ----------------------------------------------------------------

    def _load_with_copy(self, path: str) -> Config:
        return configcache.load_with_copy(path, configcache.copy_path(self.db_path), load_config)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self._load(self.config_path)
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config

    @property
    def store(self) -> Store:
        """The long-lived connection. No integrity check on open: it reads the
        whole file (~1 s at 1M items) and `monitor poll` opens it every run;
        the daemon's start, its daily maintenance and `monitor check` run it
        (``check_database``). A page a poll reads that is malformed still
        fails that poll as "corrupted"."""
        self._store = self._store or Store(self.db_path, check=False)
        return self._store

    def check_database(self) -> float | None:
        """The integrity check (``PRAGMA quick_check``) of the database on the
        long-lived connection; StorageError if corrupted. The seconds it took,
        or None when there is no database file yet (none is created)."""
        if self.db_path != ":memory:" and not Path(self.db_path).exists():
            return None
        return self.store.quick_check()

    @contextmanager
    def open_store(self, *, check: bool = False) -> Iterator[Store]:
        """A connection of its own; the full integrity check is for use cases
        that write (reads of a corrupted file fail on their own, and the check
        costs seconds on a large archive)."""
        with Store(self.db_path, check=check) as store:
            yield store

    def terms(self) -> dict[str, tuple[str, ...]]:
        """The config's term lists and entities, or none when there is no config to read."""
        try:
            return self.config.lexicon
        except ConfigError:
            if Path(self.config_path).exists():
                raise
            return {}

    def configured_feeds(self) -> tuple[FeedConfig, ...] | None:
        """feeds.yaml's feeds, or None (the database's list alone) when there is
        no file, or when it has errors: a report of feed health must not depend
        on the file being valid (a running daemon keeps its last good one)."""
        if not Path(self.config_path).exists():
            return None
        try:
            return self.config.feeds
        except ConfigError as exc:
            self.on_warning(ConfigIgnored(exc))
            return None

    # --- check and topics ----------------------------------------------------------------

    def check(self) -> CheckReport:
        """The config (ConfigError, ConfigErrors listing all) and its examples."""
        config = self.config
        failures = check_examples(config)
        examples = sum(len(t.examples.match) + len(t.examples.no_match) for t in config.topics)
        return CheckReport(config, failures, examples)

    def topics_check(self) -> tuple[list[ExampleResult], int]:
        """Every example with its result, and the number failing."""
        config = self.config
        failures = {(f.topic_id, f.text) for f in check_examples(config)}
        rows = []
        for t in config.topics:
            rows += [ExampleResult(t.id, "match", text, (t.id, text) not in failures)
                     for text in t.examples.match]
            rows += [ExampleResult(t.id, "no match", text, (t.id, text) not in failures)
                     for text in t.examples.no_match]
        verdicts = self.verdict_examples(config)
        return rows + verdicts, len(failures) + sum(not r.ok for r in verdicts)

    def verdict_examples(self, config: Config) -> list[ExampleResult]:
        """The desk's verdicts run as examples: a story marked relevant for a
        topic must still match it (any of its items), not relevant must not.
        Verdicts of topics no longer in the config are left out."""
        if not Path(self.db_path).exists():
            return []
        with self.open_store() as store:
            rows = store.reviewed_items()
        stories: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            stories.setdefault((r["topic_id"], r["story_key"]), []).append(r)
        from monitor import match

        out = []
        for topic in config.topics:
            mine = {key: items for (t, key), items in stories.items() if t == topic.id}
            if not mine:
                continue
            entries = [_verdict_entry(i) for items in mine.values() for i in items]
            matched = {h.entry_key for h in match.Matcher([topic]).match(entries)}
            for key, items in mine.items():
                relevant = items[0]["verdict"] == "relevant"
                hit = any(str(i["id"]) in matched for i in items)
                title = next((str(i["title"]) for i in items if i["title"]), key)
                out.append(ExampleResult(topic.id, "match" if relevant else "no match",
                                         title, hit == relevant, story=key))
        return out

    def topics_test(self, text: str, title: str | None = None) -> list[match.TopicExplanation]:
        from monitor import match

        return match.Matcher(self.config.topics).explain(text, title=title)

    def topics_apply(self, topic_ids: Sequence[str], since: str | None, *,
                     progress: Callable[[str, int, int], None] | None = None,
                     ) -> tuple[datetime | None, list[ApplyResult]]:
        """Re-run topics over stored items; the start used and each topic's result."""
        from monitor.reapply import reapply

        config = self.config
        chosen = [config.topic(t) for t in topic_ids] if topic_ids else list(config.topics)
        since_dt = parse_since(since)
        with self.open_store(check=True) as store:
            store.sync_topics(config.topics, datetime.now(UTC))
            return since_dt, reapply(store, chosen, since=since_dt, progress=progress)

    def topics_suggest(self, topic_id: str, since: str | None = "30d", *, limit: int = 20,
                       progress: Callable[[int, int], None] | None = None,
                       ) -> Review:
        """Stored items that satisfy every clause of the topic's query but one,
        grouped by the missing clause, with the words that might complete it;
        and those it matches only through stemmed or folded forms."""
        from monitor.suggest import review

        topic = self.config.topic(topic_id)
        with self.open_store() as store:
            return review(store, topic, since=parse_since(since), limit=limit,
                          progress=progress)

    # --- sync and poll -------------------------------------------------------------------

    def sync(self, *, hint: bool = True) -> list[str]:
        """Check the examples (refusing the config on a failure), then bring
        feeds and topics of feeds.yaml into the store; the topics whose stored
        hits follow an older query, each also told to ``on_warning``."""
        self.config = load_checked(self.config_path, hint=hint, load=self._load_with_copy,
                                   verdicts=examplecache.cache_path(self.db_path))
        return self._sync(self.store, self.config)

    def _sync(self, store: Store, config: Config) -> list[str]:
        now = datetime.now(UTC)
        store.sync_feeds(config.feeds, now)
        stale = store.sync_topics(config.topics, now)
        for topic_id in stale:
            self.on_warning(StaleTopic(topic_id))
        return stale

    def poll(self, feed_ids: Sequence[str] = (), *, force: bool = False,
             progress: Progress | None = None,
             on_start: Callable[[int], None] | None = None) -> PollSummary:
        """One polling cycle of the due feeds (or ``feed_ids``), after ``sync``."""
        for feed_id in feed_ids:
            self.config.feed(feed_id)
        if not feed_ids and not force:
            now = datetime.now(UTC)
            if not self.store.due_feeds(now) and not self.store.due_articles(now, 1):
                # The usual cron run: no matcher, event loop, parse pool or HTTP
                # client to build for nothing (~0.2 s of a 0.5 s start-up).
                if on_start:
                    on_start(0)
                return PollSummary((), now, 0.0, 0)
        from monitor.poll import run_poll

        return run_poll(self.config, self.store, feed_ids=list(feed_ids) or None, force=force,
                        progress=progress, on_start=on_start)

    def heartbeat(self) -> bool:
        """The daemon's tick: record it; whether any feed (or queued article) is due."""
        now = datetime.now(UTC)
        self.store.daemon_update(last_tick_at=to_iso(now))
        return bool(self.store.due_feeds(now) or self.store.due_articles(now, 1))

    def poll_cycle(self, stop: StopFlag) -> PollSummary:
        """The daemon's poll: a cycle of the due feeds until ``stop`` is set."""
        import asyncio

        from monitor.poll import poll_async

        return asyncio.run(poll_async(self.config, self.store, stop=stop, held=self.held))

    def checkpoint(self) -> Checkpoint:
        """A WAL checkpoint once the file passes WAL_LIMIT."""
        size = self.store.wal_bytes()
        return Checkpoint(size, self.store.checkpoint(min_wal_bytes=WAL_LIMIT))

    # --- reports -------------------------------------------------------------------------

    def hits(self, topic_ids: Sequence[str], since: str | None,
             limit: int) -> list[dict[str, Any]]:
        """Recent hits, one per story and topic."""
        since_dt = parse_since(since)
        with self.open_store() as store:
            self._require_topics(store, topic_ids)
            return [r.as_json() for r in store.hits(topics=topic_ids, since=since_dt, limit=limit)]

    def _require_topics(self, store: Store, topic_ids: Sequence[str]) -> None:
        """Each id names a topic of the archive (a removed topic keeps its hits)
        or of feeds.yaml; else the ConfigError of an unknown topic."""
        if not topic_ids:
            return
        stored = store.topic_ids()
        missing = [t for t in topic_ids if t not in stored]
        if not missing:
            return
        try:
            config = self.config
        except ConfigError:
            if Path(self.config_path).exists():
                raise
            raise ConfigError("no such topic in the database", topic=missing[0]) from None
        for topic_id in missing:
            config.topic(topic_id)

    def search_reading(self, query: str) -> match.SearchReading:
        """How a search query is read (as a query, or as plain words)."""
        from monitor import match

        return match.read_search(query, self.terms())

    def search(self, reading: match.SearchReading, *, limit: int) -> list[dict[str, Any]]:
        with self.open_store() as store:
            return [r.as_json() for r in store.search(reading.fts_query, limit=limit)]

    def feeds_report(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Every feed of feeds.yaml (a feed not polled yet as "new") and those
        the database still holds, each with its ``quota`` note, and the daemon
        row. Never creates the database."""
        configured = self.configured_feeds()
        daemon: dict[str, Any] | None = None
        articles: dict[str, dict[str, Any]] = {}
        if not Path(self.db_path).exists():
            rows = health.merged([], configured, defaults={"items": 0})
        else:
            with self.open_store() as store:
                stored = [r.as_json() for r in store.feeds_report()]
                daemon = store.daemon_row()
                articles = store.article_counts()
            rows = health.merged(stored, configured, defaults={"items": 0})
        for r in rows:
            r["quota"] = _quota_note(r)
            counts = articles.get(r["id"], {})
            r["articles"] = {"ok": counts.get("ok", 0), "failed": counts.get("failed", 0),
                             "queued": counts.get("queued", 0),
                             "failures": counts.get("failures", [])}
        return rows, daemon

    def status(self) -> dict[str, Any]:
        """The daemon's state as `monitor status` shows it; safe while it runs."""
        data = status(self.db_path, self.configured_feeds())
        data["alerts"] = self._alerts_status()
        return data

    def _alerts_status(self) -> list[dict[str, Any]]:
        """The alerts of a valid feeds.yaml (configured_feeds warned of a broken one)."""
        if not Path(self.config_path).exists():
            return []
        try:
            return self.alerts_report()
        except ConfigError:
            return []

    # --- feeds.yaml ----------------------------------------------------------------------

    def add_feed(self, url: str, *, feed_id: str | None = None, tags: Sequence[str] = (),
                 name: str | None = None, interval: str | None = None,
                 language: str | None = None) -> tuple[str, str, FoundFeed]:
        """Fetch ``url`` (a feed, or a page linking to one), check it is a feed
        and append it to feeds.yaml; the file, the new id and what was found."""
        from monitor.config import _url_identity
        from monitor.discover import derive_id, find_feed
        from monitor.feedsfile import FeedSpec, add_feeds

        config = self.config
        taken = {f.id for f in config.feeds}
        _check_new_id(feed_id, taken, config.path)
        if interval is not None:
            try:
                parse_duration(interval)
            except ValueError as exc:
                raise UsageError(str(exc), param_hint="--interval") from None
        known = {_url_identity(f.url): f.id for f in config.feeds}
        found = find_feed(url, config.settings, known)
        title = found.feed.title
        new_id = feed_id or derive_id(title, found.url, taken)
        spec = FeedSpec(id=new_id, url=found.url, name=name or title or new_id,
                        interval=interval, tags=tuple(tags), language=language)
        add_feeds(config.path, [spec])
        return config.path, new_id, found

    def remove_feed(self, feed_id: str) -> tuple[str, FeedConfig]:
        """Remove a feed from feeds.yaml; the file and the feed removed."""
        from monitor.feedsfile import remove_feeds

        config = self.config
        feed = config.feed(feed_id)
        remove_feeds(config.path, [feed_id])
        return config.path, feed

    def enable_feed(self, feed_id: str) -> str | None:
        """Re-enable a disabled feed; why it was disabled, None if it was not."""
        self.config.feed(feed_id)
        with self.open_store(check=True) as store:
            return store.enable_feed(feed_id, datetime.now(UTC))

    def import_opml(self, path: str, *, tags: Sequence[str] = (),
                    dry_run: bool = False) -> OpmlImport:
        """Append the feeds of the OPML list at ``path`` that feeds.yaml does
        not have yet, in one write (none with ``dry_run``); nothing is fetched."""
        from monitor.feedsfile import add_feeds
        from monitor.opml import read_opml

        config = self.config
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the OPML file: {exc.strerror or exc}",
                              file=path) from None
        report = plan_opml_import(config, read_opml(data, path), _extra_tags(tags))
        if report.added and not dry_run:
            add_feeds(config.path, report.added)
        return dataclasses.replace(report, path=config.path, dry_run=dry_run)

    def export_opml(self) -> bytes:
        """The configured feeds as an OPML 2.0 document."""
        from monitor.opml import write_opml

        config = self.config
        return write_opml(config.feeds, f"monitor feeds ({Path(config.path).name})")

    # --- digests -------------------------------------------------------------------------

    def digest(self, *, name: str, since: str | None, until: str | None,
               topic_ids: Sequence[str], fmt: str, output: str | None,
               emails: Sequence[str], limit: int, record: bool,
               echo: Callable[[str], None],
               on_mailed: Callable[[Sequence[str]], None]) -> Digest:
        """A digest run by hand: written to ``output``, else given to ``echo``
        unless mailed to ``emails``; recorded as the last of ``name`` when asked."""
        from monitor import digest as digests

        check_emails(emails)
        config = self.config
        for topic_id in topic_ids:
            config.topic(topic_id)
        topics = [t for t in config.topics if not topic_ids or t.id in topic_ids]
        now = datetime.now(UTC)
        until_dt = (parse_since(until) if until else None) or now
        with self.open_store() as store:
            period = digests.manual_period(store, name, since=since_arg(since), until=until_dt)
            if period.since > period.until:
                raise UsageError("--since is after --until", param_hint="--since")
            logging.getLogger("monitor.digest").info(
                "digest %s: %s to %s (%s)", name, digests.when(period.since),
                digests.when(period.until), period.basis)
            report = digests.build(store, topics=topics, since=period.since,
                                   until=period.until, now=now, name=name, limit=limit)
            _deliver(store, report, fmt=fmt, path=output, to=emails, record=record,
                     echo=echo, on_mailed=on_mailed)
        return report

    def scheduled_digest(self, digest_id: str, *, retry: bool = False,
                         retry_base: float = 60.0) -> DigestRun:
        """Build, write and/or mail one configured digest; a failure is recorded
        and retried with backoff (x4 from ``retry_base``, then hourly) until it
        is sent."""
        with self.open_store() as store:
            now = datetime.now(UTC)
            digest = next((d for d in self.config.digests if d.id == digest_id), None)
            if digest is None:
                store.digest_sent(digest_id)
                return DigestRun("dropped")
            if retry:
                row = store.digest_pending(digest_id)
                if row is None or (from_iso(row["next_attempt_at"]) or now) > now:
                    return DigestRun("skipped")  # sent meanwhile by its scheduled run
            store.digest_started(digest_id, now)
            try:
                outcome = run_digest(self.config, store, digest, now=now)
            except Exception as exc:
                return _digest_failed(store, digest_id, exc, now, retry_base)
            store.digest_sent(digest_id)
        return DigestRun("sent", outcome=outcome)

    def digest_retries_due(self) -> list[str]:
        with self.open_store() as store:
            return store.digest_retries_due(datetime.now(UTC))

    def catch_up_digests(self, timezone: tzinfo, now: datetime,
                         on_found: Callable[[CatchUp], None]) -> None:
        """Digests whose time came while no daemon ran, or that were never
        confirmed sent, are made due now: a stopped daemon loses no digest.
        ``on_found`` hears of each before it is queued."""
        from monitor import digest as digests
        from monitor.cron import cron_trigger

        with self._some_store() as store:
            for d in self.config.digests:
                pending = store.digest_pending(d.id)
                if pending is not None:
                    on_found(CatchUp(d.id, "retry", last_error=pending["last_error"]))
                    continue
                last = digests.last_until(store, d.id)
                if last is None:
                    continue
                # +1 s: `until` is stored to the second, and equals the run it recorded.
                missed = cron_trigger(d.schedule, timezone).get_next_fire_time(
                    None, last + timedelta(seconds=1))
                if missed is not None and missed <= now:
                    on_found(CatchUp(d.id, "missed", missed_at=missed))
                    store.digest_missed(d.id, missed, now, "missed while the daemon was stopped")

    @contextmanager
    def _some_store(self) -> Iterator[Store]:
        """The long-lived connection when open, else one of its own."""
        if self._store is not None:
            yield self._store
            return
        with self.open_store() as store:
            yield store

    # --- alerts ---------------------------------------------------------------------------

    def deliver_alerts(self, now: datetime | None = None,
                       local: tzinfo | None = None) -> list[Delivery]:
        """Send the alert outbox's due rows, on a connection of its own (the
        daemon runs this beside the poll, which never waits on a target)."""
        import asyncio

        from monitor.notify.outbox import deliver

        config = self.config
        with self.open_store() as store:
            store.alert_forget([a.id for a in config.alerts])
            if not config.alerts:
                return []
            return asyncio.run(deliver(store, config.alerts, config.settings,
                                       now or datetime.now(UTC), local))

    def alerts_report(self) -> list[dict[str, Any]]:
        """Per configured alert: its state, pending rows, last sent, failures, last error."""
        config = self.config
        states: dict[str, dict[str, Any]] = {}
        if self.db_path == ":memory:" or Path(self.db_path).exists():
            with self.open_store() as store:
                states = store.alert_states()
        return [alert_row(a.id, a.to, states.get(a.id, {})) for a in config.alerts]

    def alerts_test(self, alert_id: str) -> None:
        """Send a sample message to one alert's target; raises AlertDeliveryError."""
        import asyncio

        from monitor.notify.alerts import AlertDeliveryError
        from monitor.notify.outbox import sample_message, send_bounded

        config = self.config
        alert = next((a for a in config.alerts if a.id == alert_id), None)
        if alert is None:
            known = ", ".join(a.id for a in config.alerts) or "there are none"
            raise ConfigError(f"no such alert (known: {known})", file=config.path,
                              alert=alert_id)
        now = datetime.now(UTC)
        error: str | None = None
        try:
            asyncio.run(send_bounded(alert, sample_message(alert.id, now), config.settings))
        except AlertDeliveryError as exc:
            error = exc.reason
            raise
        finally:
            with self.open_store() as store:
                store.alert_tested(alert.id, error, now)

    # --- the daemon's life and housekeeping -----------------------------------------------

    def daemon_started(self, *, tick: float, now: datetime) -> None:
        """Sync, then the heartbeat row of a daemon that just took the lock."""
        self._sync(self.store, self.config)
        self.store.daemon_started(pid=os.getpid(), host=socket.gethostname(),
                                  config=os.path.abspath(self.config_path), tick=tick, now=now)

    def daemon_stopped(self, *, own_connection: bool = False) -> None:
        """Record a clean stop; ``own_connection`` when the long-lived one may
        be busy in a job that did not finish."""
        stopped = to_iso(datetime.now(UTC))
        if own_connection:
            with self.open_store() as store:
                store.daemon_update(stopped_at=stopped)
            return
        self.store.daemon_update(stopped_at=stopped)

    def reload(self) -> Config:
        """Read feeds.yaml again and sync it; on an error (raised) the running
        configuration stays. Either way the outcome is recorded for status."""
        now = to_iso(datetime.now(UTC))
        try:
            config = load_checked(self.config_path)
            self._sync(self.store, config)
        except MonitorError as exc:
            # Recorded before it is logged: `monitor status` must agree with the log.
            self.store.daemon_update(last_reload_at=now, last_reload_error=str(exc))
            raise
        self.config = config
        self.store.daemon_update(last_reload_at=now, last_reload_error=None)
        return config

    def maintain(self, should_stop: Callable[[], bool], *,
                 on_line: Callable[[str], None] | None = None) -> Maintenance:
        """The integrity check, retention, FTS merging, freed pages back to the
        file system (converting the file to incremental auto-vacuum once) and
        the WAL, until ``should_stop``; ``on_line`` hears about a conversion."""
        now = datetime.now(UTC)
        retention = self.config.settings.retention
        with self.open_store(check=True) as store:  # nothing pruned in a corrupted file
            pruned = store.prune(retention, now, should_stop=should_stop)
            row = store.daemon_row() or {}
            last = from_iso(row.get("last_optimize_at"))
            values: dict[str, Any] = {"last_maintenance_at": to_iso(now), "last_pruned": pruned}
            merged: Literal["merged", "merge left for next time", "not needed"] = "not needed"
            if should_optimize(pruned, last, now):
                done = not should_stop() and store.optimize_fts(should_stop=should_stop)
                merged = "merged" if done else "merge left for next time"
                if done:
                    values["last_optimize_at"] = to_iso(now)
            # After pruning: the one-off VACUUM then copies only what is kept.
            converted = not should_stop() and _convert(store, on_line)
            freed = 0 if should_stop() else store.return_free_pages(should_stop=should_stop)
            wal = store.wal_bytes()
            # Freed pages leave the file only once checkpointed.
            checkpoint = store.checkpoint(min_wal_bytes=0 if freed or converted else WAL_LIMIT)
            store.daemon_update(**values)
        return Maintenance(pruned, merged, wal, bool(checkpoint), retention, freed, converted)


    def reindex(self, should_stop: Callable[[], bool] | None = None, *,
                progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Fill the ``norm`` column of items stored before it existed (the
        backfill of migration m010), in short transactions; (items
        normalised, items left). Resumes where an interrupted run stopped."""
        if self.db_path != ":memory:" and not Path(self.db_path).exists():
            return 0, 0
        with self.open_store() as store:
            done = store.backfill_norm(should_stop=should_stop, progress=progress)
            return done, store.norm_backlog()

    # --- the desk ------------------------------------------------------------------------

    def desk_overview(self, now: datetime, days: int = 14) -> list[dict[str, Any]]:
        """Every topic: stories of the last day and week with the period before
        each, stories per publication day, and the verdicts' precision."""
        topics = self.config.topics
        ids = [t.id for t in topics]
        day, week = timedelta(days=1), timedelta(days=7)
        with self.open_store() as store:
            counts = {name: store.story_counts(ids, start, end) for name, (start, end) in {
                "today": (now - day, now), "yesterday": (now - 2 * day, now - day),
                "week": (now - week, now), "last_week": (now - 2 * week, now - week)}.items()}
            volume = {t: [0] * days for t in ids}
            for topic_id, ago, n in store.daily_published_counts(ids, now, days):
                if 0 <= ago < days:
                    volume[topic_id][days - 1 - ago] = n
            precision = store.precision(ids)
        return [{"id": t.id, "name": t.name, "description": t.description,
                 **{k: c.get(t.id, 0) for k, c in counts.items()},
                 "volume": volume[t.id], "precision": precision.get(t.id, (0, 0))}
                for t in topics]

    def desk_topic(self, topic_id: str, since: datetime, until: datetime) -> dict[str, Any]:
        """A topic's stories of ``[since, until)`` ranked as the digest ranks
        them (all of them), each story's languages and verdict."""
        from monitor import digest as digests

        topic = self.config.topic(topic_id)
        with self.open_store() as store:
            report = digests.build(store, topics=[topic], since=since, until=until, limit=0,
                                   with_sources=False)
            section = report.topics[0]
            keys = [s.key for s in section.stories]
            return {"topic": topic, "section": section,
                    "languages": store.story_languages(keys),
                    "verdicts": store.verdicts(topic_id, keys),
                    "precision": store.precision([topic_id]).get(topic_id, (0, 0))}

    def desk_story(self, story_key: str) -> dict[str, Any]:
        """Every item of a story, the evidence per topic and the verdicts."""
        with self.open_store() as store:
            return {"items": store.story_items(story_key),
                    "evidence": store.story_evidence(story_key),
                    "verdicts": store.story_verdicts(story_key)}

    def silent_feeds(self, now: datetime) -> set[str]:
        """The feeds the digest calls silent (quiet for longer than their rhythm)."""
        from monitor.digest.sources import sources_health

        if not Path(self.db_path).exists():
            return set()
        with self.open_store() as store:
            return {f.id for f in sources_health(store, store.digest_feeds(), now).silent}

    def set_verdict(self, story_key: str, topic_id: str, *, verdict: str | None = None,
                    starred: bool | None = None, note: str | None = None,
                    clear: bool = False) -> dict[str, Any]:
        """The desk's one write: a reviewer's verdict on a (story, topic)."""
        self.config.topic(topic_id)
        with self.open_store() as store:
            if not store.story_items(story_key):
                raise UsageError("no such story", param_hint="story")
            return store.set_verdict(story_key, topic_id, datetime.now(UTC), verdict=verdict,
                                     starred=starred, note=note, clear=clear)

    def propose_no_match(self, topic_id: str, text: str) -> tuple[str, str]:
        """feeds.yaml now and with ``text`` added to the topic's no_match examples."""
        from monitor.feedsfile import with_no_match

        return with_no_match(self.config_path, topic_id, text)

    def add_no_match(self, topic_id: str, text: str) -> Config:
        from monitor.feedsfile import add_no_match

        self.config = add_no_match(self.config_path, topic_id, text)
        return self.config


def _convert(store: Store, on_line: Callable[[str], None] | None) -> bool:
    """Convert the file to incremental auto-vacuum (once), saying so: it holds
    the write lock for its whole VACUUM."""
    if store.auto_vacuum() == INCREMENTAL:
        return False
    say = on_line or (lambda line: None)
    size = Path(store.path).stat().st_size if store.path != ":memory:" else 0
    say(f"converting the database ({size / 1e6:.0f} MB) to incremental auto-vacuum: one "
        "VACUUM, polls wait for it")
    t0 = time.monotonic()
    store.convert_to_incremental(progress=lambda s: say(f"still converting: {s:.0f}s"))
    size = Path(store.path).stat().st_size if store.path != ":memory:" else 0
    say(f"converted to incremental auto-vacuum in {time.monotonic() - t0:.1f}s "
        f"({size / 1e6:.0f} MB before the checkpoint)")
    return True


def open_monitor(config: str | None = None, db: str | None = None, *,
                 on_warning: Callable[[Notice], None] | None = None,
                 load: Callable[[str], Config] | None = None) -> Monitor:
    """The Monitor of feeds.yaml at ``config`` and the database at ``db``
    (their defaults and environment variables when None); close it, or use
    it as a context manager."""
    return Monitor(config_path(config), db_path(db), on_warning=on_warning, load=load)


# --- digests: one path for both kinds ------------------------------------------------------

def run_digest(config: Config, store: Store, digest: DigestConfig, *,
               now: datetime) -> DigestOutcome:
    """A scheduled digest: build it for the period since the last one of this
    id (or ``digest.since`` ago, whichever is earlier, so a daemon that was down
    loses nothing and a rolling 7-day digest stays 7 days), write it to
    ``output_dir`` as ``<id>-<YYYYmmdd-HHMM>.<ext>``, mail it to ``to``, then
    record it. Raises MonitorError (MailError, StorageError...) on failure,
    having recorded nothing, so the caller may retry."""
    from monitor import digest as digests

    wanted = set(digest.topics)
    topics: list[Topic] = [t for t in config.topics if not wanted or t.id in wanted]
    window = timedelta(seconds=digest.since) if digest.since else digests.DEFAULT_WINDOW
    last = digests.last_until(store, digest.id)
    since = now - window if last is None else min(last, now - window)
    d = digests.build(store, topics=topics, since=since, until=now, now=now, name=digest.id)
    path = (Path(digest.output_dir) / digests.output_name(digest.id, now, digest.format)
            if digest.output_dir else None)
    written = _deliver(store, d, fmt=digest.format, path=path, to=digest.to, record=True)
    return DigestOutcome(digest=d, path=written, sent_to=tuple(digest.to))


def _deliver(store: Store, d: Digest, *, fmt: str, path: str | Path | None,
             to: Sequence[str], record: bool, echo: Callable[[str], None] | None = None,
             on_mailed: Callable[[Sequence[str]], None] | None = None) -> Path | None:
    """Write the digest to ``path`` (else ``echo`` it unless it is mailed),
    mail it to ``to``, then record it when asked; the file written."""
    from monitor import digest as digests

    written = None
    if path:
        written = digests.write_atomic(path, digests.render(d, fmt))
    elif not to and echo is not None:
        echo(digests.render(d, fmt))
    if to:
        digests.send(d, to)
        if on_mailed is not None:
            on_mailed(to)
    if record:
        digests.record(store, d, fmt=fmt, output=path, sent_to=to)
    return written


def _digest_failed(store: Store, digest_id: str, exc: Exception, now: datetime,
                   retry_base: float) -> DigestRun:
    row = store.digest_pending(digest_id)
    retry = digest_retry((row["attempts"] if row else 0) + 1, now, first=retry_base)
    reason = str(exc) if isinstance(exc, MonitorError) else f"{type(exc).__name__}: {exc}"
    store.digest_failed(digest_id, attempts=retry.attempts, error=reason,
                        next_attempt_at=retry.next_attempt_at)
    return DigestRun("failed", error=exc, reason=reason, attempts=retry.attempts,
                     delay=retry.delay)


# --- feed health -----------------------------------------------------------------------------

def _quota_note(r: dict[str, Any]) -> str | None:
    """The daily quota's flag, while the last full poll within a day skipped items."""
    skipped, when = r.get("quota_skipped"), from_iso(r.get("quota_at"))
    if not skipped or when is None or datetime.now(UTC) - when > timedelta(days=1):
        return None
    return (f"quota: skipped {skipped:,} new items at the last poll "
            f"(limit {r.get('quota_limit') or 0:,}/day)")


def status(db_path: str, configured: Sequence[FeedConfig] | None = None) -> dict[str, Any]:
    """The daemon's state as `monitor status` shows it; safe while it runs.
    With ``configured`` (feeds.yaml's feeds), every one of them is counted and
    listed, those never polled as "new", even before the database exists
    (which this never creates)."""
    if db_path != ":memory:" and not Path(db_path).exists():
        if configured is None:
            raise StorageError("no database here yet: start `monitor run` or `monitor poll` "
                               "first", db=db_path)
        data: dict[str, Any] = {"daemon": None, "pending_digests": []}
        rows = health.merged([], configured)
    else:
        with Store(db_path, check=False) as store:
            data = store.status()
            rows = health.merged(store.feed_rows(), configured)
    _feed_health(data, rows)
    d = data["daemon"]
    if d is None or d["started_at"] is None:
        data["state"] = "never started"
    elif d["stopped_at"]:
        data["state"] = "stopped"
    elif d["host"] != socket.gethostname() or _alive(int(d["pid"])):
        data["state"] = "running"
    else:
        data["state"] = "dead"  # no clean stop: killed or crashed
    data["running"] = data["state"] == "running"
    return data


def alert_row(alert_id: str, to: str, state: dict[str, Any]) -> dict[str, Any]:
    """One alert's line of `monitor alerts` and `status`; the target is shown
    without credentials (an apprise URL often carries its token)."""
    from monitor.clean import without_userinfo

    failures = int(state.get("failures") or 0)
    pending = int(state.get("pending") or 0)
    if failures:
        label = "failing"
    elif state.get("last_sent_at"):
        label = "ok"
    else:
        label = "waiting" if pending else "never sent"
    return {"id": alert_id, "to": _redacted(without_userinfo(to)), "state": label,
            "pending": pending, "sent": int(state.get("sent") or 0),
            "last_sent_at": state.get("last_sent_at"), "failures": failures,
            "failing_since": state.get("failing_since"), "last_error": state.get("last_error")}


def _redacted(url: str) -> str:
    """scheme://host/… : apprise URLs carry tokens in their path."""
    m = re.match(r"^(https?://[^/?#]*)", url, re.IGNORECASE)
    if m:
        return m.group(1) + ("/…" if len(url) > len(m.group(1)) else "")
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    return f"{scheme.group(1)}://…" if scheme else "…"


def _feed_health(data: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Feed counts, the next due feed and each feed's state, from the merged rows."""
    per_state = health.counts(rows)
    data.update(
        feeds=len(rows) - per_state["removed"], failing=per_state["failing"],
        disabled=per_state["disabled"], states=per_state, next_due=health.next_due(rows),
        feed_states=[{"id": r["id"], "name": r["name"], "state": r["state"],
                      "error_kind": r["last_error_kind"], "error": r["last_error"],
                      "failing_since": r["failing_since"],
                      "disabled_reason": r["disabled_reason"],
                      "disabled_at": r.get("disabled_at")}
                     for r in rows if r["state"] != "removed"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
