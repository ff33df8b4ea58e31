"""Frozen records passed between the stages of a poll and the reports.

config -> FeedConfig/Topic/Settings; store -> FeedState; fetch -> FetchResult;
parse -> ParsedFeed/Entry; match -> Hit; poll -> PollResult. Nothing here does
I/O, so every module may import it. Times are timezone-aware UTC datetimes;
durations are seconds as floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal, get_args

from monitor.clean import clean_text

# Outcomes are Literal string types, not Enums: the values are the very
# strings written to the database, the logs and the JSON output, so typing
# them changes no byte of any output.

# A feed's poll: new items stored; nothing new; 304; failed; left out.
PollStatus = Literal["new", "unchanged", "not-modified", "failed", "skipped"]

# Why a poll failed: the FAILURE_KINDS a fetch or parse reports, plus our
# own side failing ("storage": the database; "internal": a bug).
RecordedKind = Literal[
    "timeout",
    "refused",
    "dns",
    "tls",
    "http-status",
    "too-large",
    "not-a-feed",
    "parse",
    "parse-timeout",
    "rate-limited",
    "gone",
    "redirect",
    "protocol",
    "empty",
]
FailureKind = Literal[RecordedKind, "storage", "internal"]

# A feed's health as `monitor status` and `monitor feeds` show it.
FeedStatus = Literal["new", "ok", "failing", "disabled", "removed"]

# The failure kinds recorded on a feed and in the fetches log.
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(RecordedKind)


@dataclass(frozen=True)
class Settings:
    """Global settings of feeds.yaml (``settings:``), with DESIGN.md defaults."""

    interval: float = 15 * 60
    min_interval: float = 60.0  # no feed is polled more often than this
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 1000 * 1000
    max_redirects: int = 5
    concurrency: int = 20
    per_host: int = 2
    user_agent: str = "monitor/0.1 (+https://github.com/monitor-feeds/monitor)"
    retention: float = 365 * 86400
    max_backoff: float = 86400.0
    # Feeds on loopback/private addresses are refused unless allowed (SSRF);
    # tests and local mirrors turn this on.
    allow_private: bool = False
    max_items_per_feed: int = 1000
    # Worker processes parsing bodies in a large cycle: None decides by the
    # cores and the cycle (monitor.parsepool.worth_a_pool); 0 never (one
    # process, least memory).
    parse_workers: int | None = None
    # Wall-clock budget of parsing one body (monitor.parsepool).
    parse_timeout: float = 10.0
    # Items stored per feed in 24 hours; beyond, new items are skipped.
    max_items_per_day: int = 2000
    # Article text (the linked page's main text, see monitor/articles.py):
    # "auto" turns it on for feeds whose items are mostly short teasers.
    article_text: str = "auto"
    article_budget: int = 50  # articles fetched per cycle
    article_per_host: int = 2  # concurrent article fetches per host
    article_window: float = 3 * 86400  # only items published this recently


@dataclass(frozen=True)
class FeedConfig:
    id: str
    url: str
    name: str | None = None  # None: the feed's own title once fetched, else its id
    interval: float | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    max_items_per_day: int | None = None  # None: settings.max_items_per_day
    article_text: str | None = None  # auto | always | never; None: settings.article_text


EntityKind = Literal["person", "place", "org", "party", "body"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("person", "place", "org", "party", "body")


@dataclass(frozen=True)
class Entity:
    """A person, place or body with every name it goes by (scripts, spellings,
    renamings); a topic writes ``@name`` and gets all of them."""

    names: tuple[str, ...]
    kind: EntityKind
    note: str | None = None


@dataclass(frozen=True)
class Examples:
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topic:
    """A topic; ``fts_query`` is ``query`` with ``@name`` lists expanded and
    ``exclude`` folded in as ``(...) NOT (...)``: the text SQLite sees."""

    id: str
    name: str
    query: str
    fts_query: str
    description: str = ""
    exclude: str | None = None
    examples: Examples = field(default_factory=Examples)
    languages: tuple[str, ...] = ()  # empty: items of any language (or none)


@dataclass(frozen=True)
class DigestConfig:
    id: str
    schedule: str
    since: float | None = None
    format: str = "html"
    to: tuple[str, ...] = ()
    output_dir: str | None = None
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertConfig:
    """One entry of ``alerts:``: where a story is sent the moment it matches."""

    id: str
    to: str
    secret_env: str | None = None
    topics: tuple[str, ...] = ()  # empty: every topic
    min_sources: int = 1
    window: float = 86400.0
    max_per_hour: int = 20
    languages: tuple[str, ...] = ()  # empty: every language
    quiet_hours: tuple[time, time] | None = None  # local (start, end); may cross midnight
    allow_private: bool = False

    def covers(self, topic_id: str) -> bool:
        return not self.topics or topic_id in self.topics

    def accepts_language(self, language: str | None) -> bool:
        if not self.languages:
            return True
        lang = (language or "").lower()
        return any(lang == w or lang.startswith(w + "-") for w in self.languages)


@dataclass(frozen=True)
class FeedState:
    """What the fetcher needs to know about a feed from the database."""

    id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    # Scheduling state the poll needs to decide what comes next: the
    # failures so far, and a permanent redirect seen but not yet adopted.
    error_count: int = 0
    moved_count: int = 0
    moved_to: str | None = None
    failing_since: datetime | None = None


@dataclass(frozen=True)
class FetchFailure:
    """Why a feed's poll failed. The reason is cleaned here, where every
    failure is made (fetch, parse, store), because it often quotes a server:
    a reason phrase, an exception text."""

    kind: FailureKind
    reason: str  # short, human: "HTTP 404 Not Found", "timed out after 30 s"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", clean_text(self.reason))


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP exchange for one feed.

    Exactly one of: ``failure`` set; ``not_modified`` (304); ``unchanged`` (200
    whose body hash equals the stored one, body not kept); or ``body`` set.
    Validators are the server's, verbatim, to be saved only after the items
    are committed.
    """

    feed_id: str
    url: str  # the URL requested
    final_url: str  # after redirects
    fetched_at: datetime
    duration: float
    status: int | None = None
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    not_modified: bool = False
    unchanged: bool = False
    failure: FetchFailure | None = None
    permanent_redirect: str | None = None  # target of a 301/308 chain
    retry_after: datetime | None = None  # from 429/503 Retry-After
    max_age: float | None = None  # Cache-Control max-age / Expires hint
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None


@dataclass(frozen=True)
class Entry:
    """One item of a feed, normalised. ``key`` is stable across polls."""

    key: str
    title: str
    summary: str
    url: str | None
    published_at: datetime
    author: str | None = None
    updated_at: datetime | None = None
    language: str | None = None
    content_hash: str = ""
    # The linked page's main text, once fetched (article text); "" until then.
    article: str = ""
    # The normal forms of title and summary (normalize.norm_document(title,
    # summary)), made where the entry is parsed, in the parser worker, so the
    # matcher and the archive share them; "" when not made (then they are
    # made where needed, by normalize.norm_with).
    norm: str = ""


@dataclass(frozen=True)
class ParsedFeed:
    entries: tuple[Entry, ...]
    title: str | None = None
    link: str | None = None
    bozo_reason: str | None = None  # set when feedparser flagged the feed malformed
    ttl: float | None = None  # RSS <ttl>, seconds
    # bozo_reason without the notes that change nothing for a reader
    # (NonXMLContentType, CharacterEncodingOverride): what is shown without -v.
    bozo_notable: str | None = None


@dataclass(frozen=True)
class Hit:
    """A topic matched an entry: the answer to "why did this match?"."""

    topic_id: str
    entry_key: str
    terms: tuple[str, ...]
    snippet: str
    # The columns the words were found in (title, summary, article), in that
    # order; the snippet is cut from one of them.
    found_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class PollResult:
    feed_id: str
    status: PollStatus
    http_status: int | None = None
    new_items: int = 0
    updated_items: int = 0
    hits: int = 0
    duration: float = 0.0
    error: FetchFailure | None = None
    bozo_reason: str | None = None
    bozo_notable: str | None = None  # see ParsedFeed
    quota_skipped: int = 0  # new items left out by max_items_per_day


@dataclass(frozen=True)
class FeedUpdate:
    """A feed's state after one poll, as decided by decide.py and built by poll.py;
    written by the store in the same transaction as the poll's items."""

    feed_id: str
    fetched_at: datetime
    outcome: PollStatus
    next_due_at: datetime
    http_status: int | None = None
    url: str | None = None  # new stored URL after a consistent permanent move
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    replace_validators: bool = False  # a 200 replaces them; a 304 only adds new ones
    error_count: int = 0
    failure: FetchFailure | None = None
    failing_since: datetime | None = None
    retry_after: datetime | None = None
    disabled_reason: str | None = None
    moved_to: str | None = None
    moved_count: int = 0
    title: str | None = None
    bozo_reason: str | None = None
    bytes_read: int = 0
    duration: float = 0.0
    request_url: str = ""
    # New items left out by the daily quota (None: not parsed, left as it was).
    quota_skipped: int | None = None
    quota_limit: int | None = None


@dataclass(frozen=True)
class ArticleSummary:
    """The article-text phase of one poll cycle (articles.py fills it)."""

    fetched: int = 0  # attempts made this cycle
    ok: int = 0
    failed: int = 0  # final failures
    retrying: int = 0  # queued again after a retryable failure
    hits: int = 0  # new hits the texts added
    seconds: float = 0.0  # wall clock of the phase


# Here rather than in poll.py: `monitor poll` with nothing due returns one
# without importing the fetcher, parsers and matcher (~0.2 s of its start).
@dataclass(frozen=True)
class PollSummary:
    """One poll cycle (poll.py): each polled feed's result and the totals."""

    results: tuple[PollResult, ...]
    started_at: datetime
    duration: float
    due: int
    # Every feed polled failed name resolution, on two hosts or more: the
    # machine, not the feeds, has lost its network or its DNS.
    offline: bool = False
    articles: ArticleSummary = field(default_factory=ArticleSummary)

    @property
    def new_items(self) -> int:
        return sum(r.new_items for r in self.results)

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.results)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status == "failed")
