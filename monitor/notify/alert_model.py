"""What an alert says, as handed from the outbox to delivery: the stories of
one message, their topics with the words that matched, and where it goes.

Owns the shapes only (frozen dataclasses, no behaviour): monitor.notify.alerts
re-exports them, and that is the name callers use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AlertKind = Literal["story", "summary", "test"]


@dataclass(frozen=True)
class AlertTopic:
    id: str
    name: str
    terms: tuple[str, ...]
    # Carries the project's [[ ]] highlight markers (monitor.query.segments()).
    snippet: str


@dataclass(frozen=True)
class AlertStory:
    story_id: str
    title: str
    url: str
    topics: tuple[AlertTopic, ...]
    feeds: tuple[str, ...]  # feed display names
    language: str | None
    published_at: str  # ISO 8601 UTC


@dataclass(frozen=True)
class AlertMessage:
    alert_id: str
    key: str  # idempotency key: stable per (alert, story), or per summary
    kind: AlertKind
    stories: tuple[AlertStory, ...]  # 1 for "story"/"test", n for "summary"
    also: tuple[str, ...] = ()  # notes for a summary: "X: now also in 2 more feeds"


@dataclass(frozen=True)
class AlertTarget:
    to: str = field(repr=False)  # an apprise URL carries its token in it
    # repr=False: a target may be logged or shown in a traceback; its key must not be.
    secret: bytes | None = field(repr=False)
    allow_private: bool
