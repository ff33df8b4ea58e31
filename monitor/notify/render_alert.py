"""The text of an alert: a title and a body a person reads on a phone lock
screen, built from feed-supplied strings made inert.

Owns the wording and the inertness. Every string that came from a feed (the
story title, feed names, topic names, matched words, the snippet, the notes
of a summary) goes through monitor.clean first: no control characters, bidi
overrides or line breaks survive, so a title cannot add a line, reorder the
text or reach a header. ``render_text`` is plain text. ``render_for_markup``
is the same text for targets that may read it as Markdown, Slack mrkdwn or
HTML (apprise decides by target and version): the characters that open markup
(``<``, ``>``, a ``](`` link) are replaced by look-alikes and mass mentions
are broken, so a hostile title shows as what it is and links nowhere.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from monitor.clean import clean_short, clean_url
from monitor.notify.alert_model import AlertMessage, AlertStory, AlertTopic
from monitor.query import segments

MAX_TITLE = 200
MAX_SNIPPET = 240
MAX_NAME = 80
FEEDS_SHOWN = 3  # then "+N more": a phone shows two lines of body
TERMS_SHOWN = 5
SUMMARY_SHOWN = 20  # stories listed in a summary, then "+N more stories"
NO_TITLE = "(no title)"

Inert = Callable[[str], str]

# A Slack <!channel>/<url|text>, a Telegram or HTML tag, a Markdown autolink:
# all open with "<". "](" is the middle of every Markdown inline link.
_MARKUP = str.maketrans({"<": "‹", ">": "›"})
_MENTION = re.compile(r"@(?=(?:everyone|here|channel)\b)", re.IGNORECASE)
# Characters that end or reshape a URL in the markup of some target.
_URL_MARKUP = re.compile(r"[<>()\[\]\"'`]")


def render_text(message: AlertMessage) -> tuple[str, str]:
    """(title, body) in plain text; the body's lines are separated by LF."""
    return _render(message, _plain, _plain)


def render_for_markup(message: AlertMessage) -> tuple[str, str]:
    """``render_text`` for a target that may read markup (apprise targets)."""
    return _render(message, _defang, _defang_url)


def _plain(text: str) -> str:
    return text


def _defang(text: str) -> str:
    return _MENTION.sub("@\u200b", text.translate(_MARKUP).replace("](", "] ("))


def _defang_url(url: str) -> str:
    return _URL_MARKUP.sub(lambda m: f"%{ord(m.group(0)):02X}", url)


def _render(message: AlertMessage, inert: Inert, inert_url: Inert) -> tuple[str, str]:
    if message.kind == "summary":
        return _summary(message, inert, inert_url)
    story = message.stories[0]
    title = _text(story.title, MAX_TITLE, inert) or NO_TITLE
    lines = _story_lines(story, inert, inert_url)
    if message.kind == "test":
        title = f"Test: {title}"
        lines.insert(0, f"Test message for alert {_text(message.alert_id, MAX_NAME, inert)}")
    return title, "\n".join(lines)


def _story_lines(story: AlertStory, inert: Inert, inert_url: Inert) -> list[str]:
    lines = []
    if story.feeds:
        lines.append(f"Sources: {_sources(story.feeds, inert)}")
    if story.topics:
        lines.append("Topics: " + " · ".join(_topic(t, inert) for t in story.topics))
    snippet = _snippet(story.topics, inert)
    if snippet:
        lines.append(f"“{snippet}”")
    when = _when(story.published_at)
    if when:
        lines.append(f"Published {when}")
    link = _link(story.url, inert_url)
    if link:
        lines.append(link)
    return lines


def _summary(message: AlertMessage, inert: Inert, inert_url: Inert) -> tuple[str, str]:
    count = len(message.stories)
    alert = _text(message.alert_id, MAX_NAME, inert)
    title = f"{count} new {'story' if count == 1 else 'stories'} for {alert}"
    lines = []
    for story in message.stories[:SUMMARY_SHOWN]:
        head = _text(story.title, MAX_TITLE, inert) or NO_TITLE
        sources = _sources(story.feeds, inert)
        lines.append(f"• {head} ({sources})" if sources else f"• {head}")
        link = _link(story.url, inert_url)
        if link:
            lines.append(f"  {link}")
    if count > SUMMARY_SHOWN:
        lines.append(f"+{count - SUMMARY_SHOWN} more stories")
    notes = [_text(note, MAX_TITLE, inert) for note in message.also]
    notes = [note for note in notes if note]
    if notes:
        lines.append("Also:")
        lines.extend(f"• {note}" for note in notes)
    return title, "\n".join(lines)


def _text(text: str | None, limit: int, inert: Inert) -> str:
    return inert(clean_short(text, limit))


def _sources(feeds: tuple[str, ...], inert: Inert) -> str:
    names = [name for name in (_text(f, MAX_NAME, inert) for f in feeds) if name]
    shown = ", ".join(names[:FEEDS_SHOWN])
    more = len(names) - FEEDS_SHOWN
    return f"{shown} +{more} more" if more > 0 else shown


def _topic(topic: AlertTopic, inert: Inert) -> str:
    name = _text(topic.name, MAX_NAME, inert) or _text(topic.id, MAX_NAME, inert)
    terms = [t for t in (_text(term, MAX_NAME, inert) for term in topic.terms) if t]
    if len(terms) > TERMS_SHOWN:
        terms = [*terms[:TERMS_SHOWN], f"+{len(terms) - TERMS_SHOWN}"]
    return f"{name} ({', '.join(terms)})" if terms else name


def _snippet(topics: tuple[AlertTopic, ...], inert: Inert) -> str:
    """The first topic's snippet, its highlight markers dropped: a phone
    shows no highlighting, and the Topics line names the words."""
    for topic in topics:
        text = "".join(run for run, _ in segments(topic.snippet))
        flat = _text(text, MAX_SNIPPET, inert)
        if flat:
            return flat
    return ""


def _when(published_at: str) -> str:
    try:
        stamp = datetime.fromisoformat(published_at)
    except (TypeError, ValueError):
        return ""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _link(url: str, inert_url: Inert) -> str:
    """Only an http(s) link is shown: a ``javascript:`` or ``data:`` URL from a
    feed must not become something to tap."""
    shown = clean_url(url) or ""
    if not shown.lower().startswith(("http://", "https://")):
        return ""
    return inert_url(shown)
