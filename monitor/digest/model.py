"""The digest as data: frozen records (Digest, TopicSection, Story, the sources'
health), its limits, and how feed text enters it (one safe line, http(s)
links only, the matched words' markers split out). No I/O."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from monitor.clean import clean_short, without_userinfo

FORMATS = ("text", "markdown", "html", "json")
EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html", "json": "json"}
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_LIMIT = 50  # stories shown per topic; the counts always cover all of them
VOLUME_DAYS = 14
MAX_LINKS = 25  # feeds listed under one story; the source count covers all of them
MAX_TERMS = 10
MAX_TITLE = 300
MAX_SNIPPET = 600
MAX_NAME = 120
MAX_ERROR = 300
MAX_LISTED = 30  # feeds listed per health group; JSON lists them all

# "Silent" sources: a feed whose newest item is older than SILENT_FACTOR times
# the median gap between its last RHYTHM_ITEMS items (never less than
# SILENT_FLOOR, so a busy feed's quiet night is not news); with fewer than
# SILENT_MIN_ITEMS items there is no rhythm to go by and SILENT_DEFAULT applies.
SILENT_FACTOR = 3
SILENT_FLOOR = timedelta(days=1)
SILENT_DEFAULT = timedelta(days=7)
SILENT_MIN_ITEMS = 5
RHYTHM_ITEMS = 21

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SPARK = "▁▂▃▄▅▆▇█"

# --- the digest, as data -------------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    """One feed that carried a story, with its own article URL (http(s) or None)."""

    feed_id: str
    name: str
    url: str | None


@dataclass(frozen=True)
class Story:
    key: str
    title: str
    url: str | None  # http(s) only; None when the feed gave nothing linkable
    published_at: datetime
    links: tuple[Link, ...]  # first carrier first; capped at MAX_LINKS
    sources: int  # number of feeds that carried it (all of them)
    snippet: str  # with HIGHLIGHT_OPEN/HIGHLIGHT_CLOSE around the matched words
    terms: tuple[str, ...]
    other_topics: tuple[str, ...]  # the other topics of this digest it matched
    shown_in: str | None = None  # set when shown in full under that topic instead

    @property
    def feeds(self) -> tuple[str, ...]:
        return tuple(link.feed_id for link in self.links)

    @property
    def anchor(self) -> str:
        return "s-" + hashlib.sha256(self.key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TopicSection:
    id: str
    name: str
    description: str
    count: int  # stories in the period
    previous_count: int  # stories in the period of equal length just before
    volume: tuple[int, ...]  # stories per 24 h, oldest first, the last ending at `until`
    stories: tuple[Story, ...]  # ranked; at most the limit
    omitted: int = 0  # stories of the period beyond the limit

    @property
    def full(self) -> tuple[Story, ...]:
        return tuple(s for s in self.stories if s.shown_in is None)

    @property
    def references(self) -> tuple[Story, ...]:
        return tuple(s for s in self.stories if s.shown_in is not None)


@dataclass(frozen=True)
class FailingFeed:
    id: str
    name: str
    url: str
    error: str
    kind: str
    failing_since: datetime | None
    error_count: int


@dataclass(frozen=True)
class SilentFeed:
    id: str
    name: str
    url: str
    last_item_at: datetime | None  # None: never published anything
    usual_gap: float | None  # seconds (median gap); None when too few items to tell


@dataclass(frozen=True)
class DisabledFeed:
    id: str
    name: str
    url: str
    reason: str


@dataclass(frozen=True)
class FailingAlert:
    """An alert whose target keeps refusing its messages (they wait in the outbox)."""

    id: str
    error: str
    failing_since: datetime | None
    failures: int
    pending: int


@dataclass(frozen=True)
class SourcesHealth:
    ok: int  # active feeds that are neither failing nor disabled (silent ones included)
    failing: tuple[FailingFeed, ...] = ()
    silent: tuple[SilentFeed, ...] = ()
    disabled: tuple[DisabledFeed, ...] = ()
    failing_alerts: tuple[FailingAlert, ...] = ()


@dataclass(frozen=True)
class Digest:
    name: str
    generated_at: datetime
    since: datetime
    until: datetime
    topics: tuple[TopicSection, ...]
    sources: SourcesHealth
    story_count: int = 0  # distinct stories of the period, across topics

    @property
    def empty(self) -> bool:
        return all(t.count == 0 for t in self.topics)

    def topic_name(self, topic_id: str) -> str:
        return next((t.name for t in self.topics if t.id == topic_id), topic_id)

    @property
    def top_story(self) -> Story | None:
        ranked = [s for t in self.topics for s in t.full]
        return max(ranked, key=lambda s: s.sources) if ranked else None


# --- feed text: cleaning and safe links ----------------------------------------------------

# Besides what monitor.clean removes: the zero-width space, which hides where
# a word of a title ends from the reader of a report.
_ZERO_WIDTH_SPACE = "\u200b"
_URL_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e"
                            "\u2060-\u206f\ufeff]")
_URL_ENCODE = str.maketrans({c: f"%{ord(c):02X}" for c in " \"'<>`()\\{}|^[]"})


def clean(text: str | None, limit: int) -> str:
    """Feed text as one safe line (monitor.clean), without zero-width spaces,
    at most ``limit`` characters."""
    return clean_short((text or "").replace(_ZERO_WIDTH_SPACE, ""), limit)


# A digest or desk page asks for the same URLs many times (each story's rows
# when choosing the one shown, then its links).
@functools.lru_cache(maxsize=8192)
def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None.

    The scheme is judged after removing what browsers ignore or users cannot
    see (leading/trailing spaces, tabs and newlines anywhere, controls,
    zero-width and bidi characters), so ``" javascript:"``, ``"java\\tscript:"``
    and ``"JaVaScRiPt:"`` are never linked. A user and password are dropped
    (``http://user:pw@host/``: a secret, or a host the link does not lead to).
    Characters that could end a Markdown link or an attribute are percent-encoded."""
    if not url:
        return None
    candidate = without_userinfo(_URL_INVISIBLE.sub("", url.strip(" \t\r\n\f\v\u00a0\u3000")))
    if not candidate or len(candidate) > 4096:
        return None
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return candidate.translate(_URL_ENCODE)


