"""The digest: the report a desk reads every morning.

Owns what a digest contains and how it is shown. ``build`` selects the hits of
a period ``[since, until)``, groups them by topic (config order) and by story
(``items.story_key``: one entry per story, listing every feed that carried it),
ranks stories by number of sources then recency, shows a story that matched
several topics in full once (its first topic) and as a reference elsewhere,
and adds per-topic counts (this period, the previous period of equal length,
a 14-day series) and the health of the sources. The result is a frozen
``Digest``; ``render`` turns it into text, Markdown, HTML (Jinja2 templates in
``monitor/templates/``) or JSON (the DESIGN.md shape).

Safety: feed text is never trusted. It is stripped of control and bidi-override
characters when the digest is built; HTML is autoescaped; the Markdown
environment escapes every interpolated value unless a filter of ours built it;
only http(s) URLs become links. ``run_digest`` is the daemon's entry point:
build, write to ``output_dir`` and/or mail, then remember the period in the
``digests`` table so the next digest of the same name starts where it ended.
A digest run by hand (``manual_period``) starts there too but remembers
nothing unless asked (``record``), so running it again shows the same period.
It never fetches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from monitor import mail
from monitor.clean import clean_short, without_userinfo
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.health import feed_name
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, segments
from monitor.store import Store, from_iso, to_iso
from monitor.types import DigestConfig, Topic

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

TEMPLATES = Path(__file__).resolve().parent / "templates"
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
class SourcesHealth:
    ok: int  # active feeds that are neither failing nor disabled (silent ones included)
    failing: tuple[FailingFeed, ...] = ()
    silent: tuple[SilentFeed, ...] = ()
    disabled: tuple[DisabledFeed, ...] = ()


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


@dataclass(frozen=True)
class DigestOutcome:
    """What ``run_digest`` did: the digest, the file written, who it was mailed to."""

    digest: Digest
    path: Path | None = None
    sent_to: tuple[str, ...] = ()


# --- feed text: cleaning and safe links ----------------------------------------------------

# Besides what monitor.clean removes: the zero-width space, which hides where
# a word of a title ends from the reader of a report.
_ZERO_WIDTH_SPACE = "\u200b"
_URL_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e"
                            "\u2060-\u206f\ufeff]")
_URL_ENCODE = {c: f"%{ord(c):02X}" for c in " \"'<>`()\\{}|^[]"}


def clean(text: str | None, limit: int) -> str:
    """Feed text as one safe line (monitor.clean), without zero-width spaces,
    at most ``limit`` characters."""
    return clean_short((text or "").replace(_ZERO_WIDTH_SPACE, ""), limit)


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
    return "".join(_URL_ENCODE.get(c, c) for c in candidate)


# --- building ------------------------------------------------------------------------------

@dataclass
class _Candidate:
    """One (topic, story) of the period while it is being ranked."""

    key: str
    rows: list[dict[str, Any]]
    sources: int = 0
    recency: str = ""


def build(store: Store, *, topics: Sequence[Topic], since: datetime, until: datetime,
          now: datetime | None = None, name: str = "default",
          limit: int = DEFAULT_LIMIT) -> Digest:
    """The digest of the hits matched in ``[since, until)`` for ``topics``
    (in their order). ``limit`` caps the stories shown per topic (0: all)."""
    now = now or datetime.now(UTC)
    since = min(since, until)
    ids = [t.id for t in topics]
    feeds = _feed_rows(store)
    by_topic = _hits_by_topic_and_story(store, ids, since, until)
    keys = {key for stories in by_topic.values() for key in stories}
    carriers = _carriers(store, keys, until, by_topic, feeds)

    shown: dict[str, list[_Candidate]] = {}
    for t in topics:
        ranked = _rank(by_topic.get(t.id, {}), carriers, until)
        shown[t.id] = ranked[:limit] if limit else ranked
    first_shown: dict[str, str] = {}
    for t in topics:
        for c in shown[t.id]:
            first_shown.setdefault(c.key, t.id)
    topics_of: dict[str, list[str]] = {}
    for t in topics:
        for key in by_topic.get(t.id, {}):
            topics_of.setdefault(key, []).append(t.id)

    span = until - since
    previous = _story_counts(store, ids, since - span, since) if span else {}
    volume = _volume(store, ids, until)
    sections = []
    for t in topics:
        stories = tuple(
            _story(c, t.id, carriers[c.key], topics_of[c.key], first_shown[c.key])
            for c in shown[t.id])
        count = len(by_topic.get(t.id, {}))
        sections.append(TopicSection(
            id=t.id, name=clean(t.name, MAX_NAME), description=clean(t.description, 500),
            count=count, previous_count=previous.get(t.id, 0),
            volume=tuple(volume.get(t.id, [0] * VOLUME_DAYS)), stories=stories,
            omitted=count - len(stories)))
    return Digest(name=clean(name, MAX_NAME) or "default", generated_at=now, since=since,
                  until=until, topics=tuple(sections), sources=_sources(store, feeds, now),
                  story_count=len(keys))


def topics_from_store(store: Store) -> tuple[Topic, ...]:
    """The active topics as last synced from the config, in config order."""
    rows = store.query("SELECT id, name, description, query, fts_query FROM topics "
                       "WHERE active = 1 ORDER BY position, id")
    return tuple(Topic(id=r["id"], name=r["name"] or r["id"], query=r["query"] or "",
                       fts_query=r["fts_query"] or "", description=r["description"] or "")
                 for r in rows)


def _feed_rows(store: Store) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in store.query("SELECT * FROM feeds ORDER BY id")}


def _in(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


def _hits_by_topic_and_story(store: Store, topic_ids: Sequence[str], since: datetime,
                             until: datetime) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if not topic_ids:
        return out
    rows = store.query(f"""
        SELECT h.topic_id, h.terms, h.snippet, i.id AS item_id, i.story_key, i.feed_id,
               i.title, i.url, i.published_at
        FROM hits h JOIN items i ON i.id = h.item_id
        WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({_in(topic_ids)})""",
        [to_iso(since), to_iso(until), *topic_ids])
    for r in rows:
        key = r["story_key"] or f"i:{r['item_id']}"
        out.setdefault(r["topic_id"], {}).setdefault(key, []).append(r)
    return out


def _carriers(store: Store, keys: Iterable[str], until: datetime,
              by_topic: dict[str, dict[str, list[dict[str, Any]]]],
              feeds: dict[str, dict[str, Any]]) -> dict[str, list[Link]]:
    """Every feed that carried each story before ``until``: first carrier first,
    each feed once with its earliest item's URL."""
    items: dict[str, dict[int, dict[str, Any]]] = {}
    wanted = sorted(k for k in keys if not k.startswith("i:"))
    for chunk in _chunks(wanted, 500):
        for r in store.query(
                f"SELECT id AS item_id, story_key, feed_id, url, published_at FROM items "
                f"WHERE story_key IN ({_in(chunk)}) AND fetched_at < ?", [*chunk, to_iso(until)]):
            items.setdefault(r["story_key"], {})[r["item_id"]] = r
    for stories in by_topic.values():  # the matched items themselves, whatever their fetch time
        for key, rows in stories.items():
            for r in rows:
                items.setdefault(key, {}).setdefault(r["item_id"], r)
    out: dict[str, list[Link]] = {}
    for key, found in items.items():
        links: dict[str, Link] = {}
        for r in sorted(found.values(), key=lambda r: (r["published_at"], r["item_id"])):
            if r["feed_id"] not in links:
                feed = feeds.get(r["feed_id"], {})
                links[r["feed_id"]] = Link(feed_id=r["feed_id"],
                                           name=clean(feed_name({"id": r["feed_id"], **feed}),
                                                      MAX_NAME),
                                           url=safe_url(r["url"]))
        out[key] = list(links.values())
    return out


def _rank(stories: dict[str, list[dict[str, Any]]], carriers: dict[str, list[Link]],
          until: datetime) -> list[_Candidate]:
    """Most sources first, then the most recent; future dates count as `until`."""
    cap = to_iso(until)
    out = [_Candidate(key=key, rows=rows, sources=len(carriers[key]),
                      recency=max(min(r["published_at"], cap) for r in rows))
           for key, rows in stories.items()]
    out.sort(key=lambda c: (_representative(c.rows)["title"] or "", c.key))
    out.sort(key=lambda c: c.recency, reverse=True)
    out.sort(key=lambda c: c.sources, reverse=True)
    return out


def _representative(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The item shown for a story: linkable first, then the first published."""
    return min(rows, key=lambda r: (safe_url(r["url"]) is None, r["published_at"], r["item_id"]))


def _story(c: _Candidate, topic_id: str, links: list[Link], topics_of: list[str],
           first_shown: str) -> Story:
    rep = _representative(c.rows)
    terms: dict[str, str] = {}
    for r in [rep, *c.rows]:
        for term in _terms(r["terms"]):
            terms.setdefault(term.casefold(), term)
    published = from_iso(rep["published_at"]) or datetime.min.replace(tzinfo=UTC)
    return Story(
        key=c.key, title=clean(rep["title"], MAX_TITLE) or "(no title)",
        url=safe_url(rep["url"]), published_at=published, links=tuple(links[:MAX_LINKS]),
        sources=len(links), snippet=clean(rep["snippet"], MAX_SNIPPET),
        terms=tuple(clean(t, 80) for t in list(terms.values())[:MAX_TERMS]),
        other_topics=tuple(t for t in topics_of if t != topic_id),
        shown_in=None if first_shown == topic_id else first_shown)


def _terms(raw: str | None) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(v) for v in value if str(v).strip()] if isinstance(value, list) else []


def _story_counts(store: Store, topic_ids: Sequence[str], start: datetime,
                  end: datetime) -> dict[str, int]:
    if not topic_ids:
        return {}
    rows = store.query(f"""
        SELECT h.topic_id, count(DISTINCT coalesce(i.story_key, 'i:' || i.id)) AS n
        FROM hits h JOIN items i ON i.id = h.item_id
        WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({_in(topic_ids)})
        GROUP BY h.topic_id""", [to_iso(start), to_iso(end), *topic_ids])
    return {r["topic_id"]: int(r["n"]) for r in rows}


def _volume(store: Store, topic_ids: Sequence[str], until: datetime) -> dict[str, list[int]]:
    """Distinct stories per 24 h window for the VOLUME_DAYS windows ending at `until`."""
    if not topic_ids:
        return {}
    end = int(until.timestamp())
    rows = store.query(f"""
        SELECT h.topic_id, (? - CAST(strftime('%s', h.matched_at) AS INTEGER) - 1) / 86400 AS ago,
               count(DISTINCT coalesce(i.story_key, 'i:' || i.id)) AS n
        FROM hits h JOIN items i ON i.id = h.item_id
        WHERE h.matched_at >= ? AND h.matched_at < ? AND h.topic_id IN ({_in(topic_ids)})
        GROUP BY h.topic_id, ago""",
        [end, to_iso(until - timedelta(days=VOLUME_DAYS)), to_iso(until), *topic_ids])
    out = {t: [0] * VOLUME_DAYS for t in topic_ids}
    for r in rows:
        ago = int(r["ago"])
        if 0 <= ago < VOLUME_DAYS:
            out[r["topic_id"]][VOLUME_DAYS - 1 - ago] = int(r["n"])
    return out


def _sources(store: Store, feeds: dict[str, dict[str, Any]], now: datetime) -> SourcesHealth:
    failing: list[FailingFeed] = []
    silent: list[SilentFeed] = []
    disabled: list[DisabledFeed] = []
    ok = 0
    for f in feeds.values():
        if not f["active"]:
            continue
        name = clean(feed_name(f), MAX_NAME)
        # A digest travels by mail: a feed URL's own credentials stay home.
        url = clean(without_userinfo(f["url"] or ""), 500)
        if f["disabled_reason"]:
            disabled.append(DisabledFeed(f["id"], name, url, clean(f["disabled_reason"],
                                                                   MAX_ERROR)))
        elif f["last_error_kind"] or f["last_error"]:
            failing.append(FailingFeed(
                f["id"], name, url, clean(f["last_error"] or f["last_error_kind"], MAX_ERROR),
                f["last_error_kind"] or "", from_iso(f["failing_since"]),
                int(f["error_count"] or 0)))
        else:
            ok += 1
            quiet = _silence(store, f, now)
            if quiet is not None:
                silent.append(SilentFeed(f["id"], name, url, *quiet))
    far = datetime.max.replace(tzinfo=UTC)
    failing.sort(key=lambda x: (x.failing_since or far, x.id))
    silent.sort(key=lambda x: (x.last_item_at or datetime.min.replace(tzinfo=UTC), x.id))
    return SourcesHealth(ok=ok, failing=tuple(failing), silent=tuple(silent),
                         disabled=tuple(disabled))


def _silence(store: Store, feed: dict[str, Any],
             now: datetime) -> tuple[datetime | None, float | None] | None:
    """(newest item, usual gap) when the feed has been quiet for longer than
    usual (see SILENT_*), else None."""
    if not feed["last_success_at"]:
        return None  # never fetched yet: nothing to judge
    rows = store.query("SELECT published_at FROM items WHERE feed_id = ? AND published_at <= ? "
                       "ORDER BY published_at DESC LIMIT ?",
                       [feed["id"], to_iso(now), RHYTHM_ITEMS])
    dates = [d for d in (from_iso(r["published_at"]) for r in rows) if d is not None]
    if not dates:
        created = from_iso(feed["created_at"])
        if created is not None and now - created > SILENT_DEFAULT:
            return None, None
        return None
    gap: float | None = None
    threshold = SILENT_DEFAULT
    if len(dates) >= SILENT_MIN_ITEMS:
        gap = statistics.median((a - b).total_seconds() for a, b in itertools.pairwise(dates))
        threshold = max(timedelta(seconds=SILENT_FACTOR * gap), SILENT_FLOOR)
    return (dates[0], gap) if now - dates[0] > threshold else None


def _chunks(seq: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# --- JSON ----------------------------------------------------------------------------------

def _iso(dt: datetime | None) -> str | None:
    return to_iso(dt) if dt is not None else None


def to_json(d: Digest) -> dict[str, Any]:
    """The DESIGN.md shape (`generated_at`, `since`, `until`, `topics`, `sources`),
    with a few additive fields (volume, links, silent and disabled feeds...)."""
    return {
        "name": d.name,
        "generated_at": _iso(d.generated_at), "since": _iso(d.since), "until": _iso(d.until),
        "stories": d.story_count,
        "highlight": [HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE],
        "topics": [{
            "id": t.id, "name": t.name, "description": t.description, "count": t.count,
            "previous_count": t.previous_count, "volume": list(t.volume), "omitted": t.omitted,
            "stories": [{
                "key": s.key, "title": s.title, "url": s.url,
                "published_at": _iso(s.published_at), "feeds": list(s.feeds),
                "sources": s.sources,
                "links": [{"feed": x.feed_id, "name": x.name, "url": x.url} for x in s.links],
                "snippet": s.snippet, "terms": list(s.terms),
                "other_topics": list(s.other_topics), "shown_in": s.shown_in,
            } for s in t.stories],
        } for t in d.topics],
        "sources": {
            "ok": d.sources.ok,
            "failing": [{"id": f.id, "name": f.name, "url": f.url, "error": f.error,
                         "kind": f.kind, "failing_since": _iso(f.failing_since),
                         "error_count": f.error_count} for f in d.sources.failing],
            "silent": [{"id": f.id, "name": f.name, "url": f.url,
                        "last_item_at": _iso(f.last_item_at),
                        "usual_gap_hours": round(f.usual_gap / 3600, 1)
                        if f.usual_gap is not None else None} for f in d.sources.silent],
            "disabled": [{"id": f.id, "name": f.name, "url": f.url, "reason": f.reason}
                         for f in d.sources.disabled],
        },
    }


# --- rendering -----------------------------------------------------------------------------

def when(dt: datetime | None) -> str:
    """'2026-01-15 06:10 UTC'; also for years 1 and 9999, which strftime mangles."""
    if dt is None:
        return "never"
    dt = dt.astimezone(UTC)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d} UTC"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return f"{_MONTHS[dt.month - 1]} {dt.day}"


def gap(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def sparkline(values: Sequence[int]) -> str:
    """One block per value; zero is the lowest block, any story at least the second."""
    top = max(values, default=0)
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[0] if v == 0 else SPARK[1 + round((v / top) * (len(SPARK) - 2))]
                   for v in values)


def trend(count: int, previous: int) -> str:
    if count > previous:
        return f"▲ {count - previous}"
    if count < previous:
        return f"▼ {previous - count}"
    return "="


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    height: int
    count: int
    label: str
    last: bool


CHART_BAR, CHART_GAP, CHART_HEIGHT = 12, 4, 40


def bars(volume: Sequence[int], until: datetime) -> list[Bar]:
    """The SVG bars of a 14-day chart (numbers only: nothing from a feed)."""
    top = max(volume, default=0) or 1
    n = len(volume)
    out = []
    for i, v in enumerate(volume):
        h = max(2, round(v / top * CHART_HEIGHT)) if v else 1
        end = until - timedelta(days=n - 1 - i)
        out.append(Bar(x=i * (CHART_BAR + CHART_GAP), y=CHART_HEIGHT - h, height=h, count=v,
                       label=f"{plural(v, 'story', 'stories')} in the 24 h to {when(end)}",
                       last=i == n - 1))
    return out


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|<>~&])")
# Only meaningful at the start of a line (lists, setext headings), where a
# value may land, e.g. after "> ": escaped there only, so dates stay readable.
_MD_LINE_START = re.compile(r"^(\d{1,9})([.)])|^([-+=])")


def md_escape(text: str) -> str:
    """Feed text as inert Markdown: every punctuation mark with a meaning is
    backslash-escaped (CommonMark allows it for any ASCII punctuation)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1)
                              else f"\\{m.group(3)}", escaped)


def _md_finalize(value: Any) -> Any:
    """Every ``{{ }}`` of a Markdown template is escaped unless a filter of
    ours built it (Markup): safe by default, like HTML autoescape."""
    if isinstance(value, Markup):
        return str(value)
    return md_escape(str(value))


def md_link(text: str, url: str | None) -> Markup:
    label = md_escape(text)
    return Markup(f"[{label}](<{url}>)" if url else label)  # label escaped, url checked


def md_snippet(snippet: str) -> Markup:
    parts = []
    for text, matched in segments(snippet):
        if matched and text.strip():
            lead, core, tail = _split_space(text)
            parts.append(f"{lead}**{md_escape(core)}**{tail}")
        else:
            parts.append(md_escape(text))
    return Markup("".join(parts))  # every part escaped


def text_snippet(snippet: str) -> str:
    return "".join(f"*{t}*" if m and t.strip() else t for t, m in segments(snippet))


def _split_space(text: str) -> tuple[str, str, str]:
    core = text.strip()
    start = text.index(core)
    return text[:start], core, text[start + len(core):]


def _environment(autoescape: bool, finalize: Callable[[Any], Any] | None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=autoescape,
        finalize=finalize, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(when=when, day=day, gap=gap, sparkline=sparkline, trend=trend,
                       segments=segments, md_link=md_link, md_snippet=md_snippet,
                       text_snippet=text_snippet, bars=bars)
    env.globals.update(plural=plural, one_day=timedelta(days=1), max_listed=MAX_LISTED,
                       chart_width=VOLUME_DAYS * (CHART_BAR + CHART_GAP),
                       chart_height=CHART_HEIGHT, chart_bar=CHART_BAR)
    return env


_ENVIRONMENTS: dict[str, jinja2.Environment] = {}


def _env(fmt: str) -> jinja2.Environment:
    if fmt not in _ENVIRONMENTS:
        if fmt == "html":
            _ENVIRONMENTS[fmt] = _environment(True, None)
        elif fmt == "markdown":
            _ENVIRONMENTS[fmt] = _environment(False, _md_finalize)
        else:
            _ENVIRONMENTS[fmt] = _environment(False, None)
    return _ENVIRONMENTS[fmt]


_TEMPLATE_NAMES = {"text": "digest.txt.j2", "markdown": "digest.md.j2",
                   "html": "digest.html.j2"}


def render(d: Digest, fmt: str = "text") -> str:
    """The digest in one of FORMATS."""
    if fmt == "json":
        return json.dumps(to_json(d), ensure_ascii=False, indent=2) + "\n"
    if fmt not in _TEMPLATE_NAMES:
        raise MonitorError(f"unknown digest format {fmt!r} (use {', '.join(FORMATS)})")
    template = _env(fmt).get_template(_TEMPLATE_NAMES[fmt])
    return template.render(d=d, title=title(d), heading=heading(d))


def title(d: Digest) -> str:
    return f"{heading(d)}: {when(d.since)} to {when(d.until)}"


def heading(d: Digest) -> str:
    return "Monitor digest" + ("" if d.name == "default" else f" — {d.name}")


def subject(d: Digest) -> str:
    """One line, whatever the feed titles contain (mail.one_line flattens it)."""
    name = "" if d.name == "default" else f" {d.name}"
    head = f"Monitor{name}: "
    if d.empty:
        return mail.one_line(f"{head}no new stories since {when(d.since)}")
    n_topics = sum(1 for t in d.topics if t.count)
    top = d.top_story
    lead = f" — {top.title}" if top else ""
    return mail.one_line(f"{head}{plural(d.story_count, 'story', 'stories')} in "
                         f"{plural(n_topics, 'topic')}{lead}")


# --- delivery and memory -------------------------------------------------------------------

def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and
    ``os.replace``: readers see the old file or the complete new one, never a part."""
    target = Path(path)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise MonitorError(f"cannot write the digest: {exc.strerror or exc}",
                           file=str(target)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from a web server
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise MonitorError(f"cannot write the digest: {exc.strerror or exc}",
                               file=str(target)) from None
        raise
    return target


def send(d: Digest, to: Sequence[str], settings: mail.SmtpSettings | None = None) -> None:
    """Mail the digest (text + HTML alternatives) to ``to``; raises MailError."""
    settings = settings or mail.SmtpSettings.from_env()
    message = mail.build_message(sender=settings.sender, to=list(to), subject=subject(d),
                                 text=render(d, "text"), html=render(d, "html"),
                                 now=d.generated_at)
    mail.send(settings, message)


def last_until(store: Store, name: str) -> datetime | None:
    rows = store.query("SELECT max(until) AS until FROM digests WHERE name = ?", [name])
    return from_iso(rows[0]["until"]) if rows else None


def default_since(store: Store, name: str, until: datetime,
                  window: timedelta = DEFAULT_WINDOW) -> datetime:
    """Where the last digest of ``name`` ended, else ``window`` before ``until``."""
    last = last_until(store, name)
    return last if last is not None and last < until else until - window


@dataclass(frozen=True)
class Period:
    """The ``[since, until)`` a manual digest shows, and why it starts there."""

    since: datetime
    until: datetime
    basis: str  # "asked", "last digest" or "default window"


def manual_period(store: Store, name: str, *, since: datetime | timedelta | None,
                  until: datetime, window: timedelta = DEFAULT_WINDOW) -> Period:
    """The period of a digest run by hand: ``since`` (a date, or a duration
    before ``until``) when given, else from the end of the last recorded digest
    of ``name`` (the scheduled ones, and manual runs with --record), else
    ``window``. Choosing it records nothing: a manual digest run twice shows
    the same hits twice."""
    if isinstance(since, timedelta):
        return Period(until - since, until, "asked")
    if since is not None:
        return Period(since, until, "asked")
    last = last_until(store, name)
    if last is not None and last < until:
        return Period(last, until, "last digest")
    return Period(until - window, until, "default window")


def record(store: Store, d: Digest, *, fmt: str, output: str | os.PathLike[str] | None = None,
           sent_to: Sequence[str] = ()) -> None:
    """Remember this digest: the next one of the same name starts at its `until`."""
    with store.write() as db:
        db.table("digests").insert({
            "name": d.name, "since": to_iso(d.since), "until": to_iso(d.until),
            "generated_at": to_iso(d.generated_at), "format": fmt, "stories": d.story_count,
            "output": str(output) if output is not None else None,
            "sent_to": json.dumps(list(sent_to)) if sent_to else None,
            "sent_at": to_iso(d.generated_at) if sent_to else None,
        })


def slug(text: str) -> str:
    """A file-name-safe form of an id: [a-z0-9-], never empty, never a path."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "digest"


def output_name(digest_id: str, until: datetime, fmt: str) -> str:
    stamp = until.astimezone(UTC).strftime("%Y%m%d-%H%M")
    return f"{slug(digest_id)}-{stamp}.{EXTENSIONS[fmt]}"


def run_digest(config: Config, store: Store, digest: DigestConfig, *,
               now: datetime) -> DigestOutcome:
    """A scheduled digest: build it for the period since the last one of this
    id (or ``digest.since`` ago, whichever is earlier, so a daemon that was down
    loses nothing and a rolling 7-day digest stays 7 days), write it to
    ``output_dir`` as ``<id>-<YYYYmmdd-HHMM>.<ext>``, mail it to ``to``, then
    record it. Raises MonitorError (MailError, StorageError...) on failure,
    having recorded nothing, so the caller may retry."""
    wanted = set(digest.topics)
    topics = [t for t in config.topics if not wanted or t.id in wanted]
    window = timedelta(seconds=digest.since) if digest.since else DEFAULT_WINDOW
    last = last_until(store, digest.id)
    since = now - window if last is None else min(last, now - window)
    d = build(store, topics=topics, since=since, until=now, now=now, name=digest.id)
    path = None
    if digest.output_dir:
        path = write_atomic(Path(digest.output_dir) / output_name(digest.id, now, digest.format),
                            render(d, digest.format))
    if digest.to:
        send(d, digest.to)
    record(store, d, fmt=digest.format, output=path, sent_to=digest.to)
    return DigestOutcome(digest=d, path=path, sent_to=tuple(digest.to))
