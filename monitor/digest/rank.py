"""Ranking a topic's stories and building each one's entry: most sources
first, then the most recent; the item shown is the first linkable one; the
matched words of every carrier, each once. No I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.digest.model import (
    MAX_LINKS,
    MAX_SNIPPET,
    MAX_TERMS,
    MAX_TITLE,
    Link,
    Story,
    clean,
    safe_url,
)
from monitor.store import DigestHit, from_iso, to_iso


@dataclass
class Candidate:
    """One (topic, story) of the period while it is being ranked."""

    key: str
    rows: list[DigestHit]
    shown: DigestHit  # representative(rows), chosen once
    sources: int = 0
    recency: str = ""


def rank(stories: dict[str, list[DigestHit]], carriers: dict[str, list[Link]],
          until: datetime) -> list[Candidate]:
    """Most sources first, then the most recent; future dates count as `until`."""
    cap = to_iso(until)
    out = [Candidate(key=key, rows=rows, sources=len(carriers[key]),
                      recency=max(min(r.published_at, cap) for r in rows),
                      shown=representative(rows))
           for key, rows in stories.items()]
    out.sort(key=lambda c: (c.shown.title or "", c.key))
    out.sort(key=lambda c: c.recency, reverse=True)
    out.sort(key=lambda c: c.sources, reverse=True)
    return out


def representative(rows: list[DigestHit]) -> DigestHit:
    """The item shown for a story: linkable first, then the first published."""
    return min(rows, key=lambda r: (safe_url(r.url) is None, r.published_at, r.item_id))


def entry(c: Candidate, topic_id: str, links: list[Link], topics_of: list[str],
           first_shown: str) -> Story:
    rep = c.shown
    terms: dict[str, str] = {}
    for r in [rep, *c.rows]:
        for term in terms_of(r.terms):
            terms.setdefault(term.casefold(), term)
    published = from_iso(rep.published_at) or datetime.min.replace(tzinfo=UTC)
    return Story(
        key=c.key, title=clean(rep.title, MAX_TITLE) or "(no title)",
        url=safe_url(rep.url), published_at=published, links=tuple(links[:MAX_LINKS]),
        sources=len(links), snippet=clean(rep.snippet, MAX_SNIPPET),
        terms=tuple(clean(t, 80) for t in list(terms.values())[:MAX_TERMS]),
        other_topics=tuple(t for t in topics_of if t != topic_id),
        shown_in=None if first_shown == topic_id else first_shown)


def terms_of(raw: str | None) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(v) for v in value if str(v).strip()] if isinstance(value, list) else []
