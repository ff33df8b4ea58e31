"""Rendering a digest: JSON (the DESIGN.md shape), and text, Markdown and HTML
through the Jinja2 templates of monitor/templates/, with the filters that
keep feed text inert in each; the mail subject line. No I/O but reading
the templates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
from markupsafe import Markup

from monitor.digest.model import (
    FORMATS,
    MAX_LISTED,
    SPARK,
    TEMPLATES,
    VOLUME_DAYS,
    Digest,
)
from monitor.errors import MonitorError
from monitor.notify import mail
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, segments
from monitor.store import to_iso

# --- JSON ----------------------------------------------------------------------------------

def _iso(dt: datetime | None) -> str | None:
    return to_iso(dt) if dt is not None else None


def to_json(d: Digest) -> dict[str, Any]:
    """The DESIGN.md shape (`generated_at`, `since`, `until`, `topics`, `sources`),
    with a few additive fields (volume, links, silent and disabled feeds...)."""
    out = _to_json(d)
    if d.sources.failing_alerts:  # only then: a digest without alerts reads as before
        out["sources"]["failing_alerts"] = [
            {"id": a.id, "error": a.error, "failing_since": _iso(a.failing_since),
             "failures": a.failures, "pending": a.pending} for a in d.sources.failing_alerts]
    return out


def _to_json(d: Digest) -> dict[str, Any]:
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
