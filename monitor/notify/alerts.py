"""Delivering one alert message to its target, and the pure helpers around it.

Owns the send: an http(s) target gets a signed JSON POST (HMAC-SHA256 over
``"<timestamp>.<body>"``, an idempotency key) through the fetcher's address
guard, without following redirects; any other scheme is an apprise URL, sent
in a worker thread with the text made inert for targets that read markup.
Every failure is an ``AlertDeliveryError`` saying whether to retry, naming the
target by a redacted URL (a token lives in the path of a Slack hook and in the
host of a ``tgram://`` URL, so neither is ever shown). Also owns
``verify_signature`` (for receivers and tests) and ``plan_delivery``, the
hourly cap applied to a queue (the arithmetic is monitor.decide's).
An apprise target is connected to by apprise itself (requests, smtplib),
outside the address guard: it is the operator's own URL, not a feed's.
Must not read the outbox or the config: monitor.app does, and calls this.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor.clean import clean_short, clean_url
from monitor.decide import alert_split
from monitor.errors import AlertDeliveryError, FetchError
from monitor.fetch.guard import AddressRefused, guarded_transport
from monitor.notify.alert_model import (
    AlertKind,
    AlertMessage,
    AlertStory,
    AlertTarget,
    AlertTopic,
)
from monitor.notify.mail import header_text
from monitor.notify.render_alert import MAX_SNIPPET, MAX_TITLE, render_for_markup, render_text
from monitor.types import Settings

__all__ = [
    "AlertDeliveryError", "AlertKind", "AlertMessage", "AlertStory", "AlertTarget",
    "AlertTopic", "payload", "plan_delivery", "redact", "render_for_markup", "render_text",
    "send_alert", "sign", "verify_signature",
]

SIGNATURE_PREFIX = "sha256="
REPLAY_TOLERANCE = 300  # seconds a receiver accepts a timestamp either side of its clock
# Asked again later: the receiver is busy or throttling us, not refusing the message.
RETRYABLE_4XX = frozenset({408, 425, 429})
_EMAIL_SCHEMES = ("mailto", "mailtos")
_SUMMARY_KEY_HASH = 16


# --- webhooks ------------------------------------------------------------------------------

def payload(message: AlertMessage) -> bytes:
    """The JSON body of a webhook: the message and its stories, every
    feed-supplied string cleaned (the snippets keep their [[ ]] markers)."""
    doc = {
        "alert": message.alert_id,
        "kind": message.kind,
        "key": message.key,
        "stories": [_story_json(s) for s in message.stories],
        "also": [clean_short(note, MAX_TITLE) for note in message.also],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _story_json(story: AlertStory) -> dict[str, Any]:
    return {
        "story_id": story.story_id,
        "title": clean_short(story.title, MAX_TITLE),
        "url": clean_url(story.url),
        "topics": [{"id": t.id, "name": clean_short(t.name, MAX_TITLE),
                    "terms": [clean_short(term, MAX_TITLE) for term in t.terms],
                    "snippet": clean_short(t.snippet, MAX_SNIPPET * 2)}
                   for t in story.topics],
        "feeds": [clean_short(f, MAX_TITLE) for f in story.feeds],
        "language": story.language,
        "published_at": story.published_at,
    }


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Monitor-Signature value: ``sha256=<hex HMAC of "<timestamp>.<body>">``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str, *,
                     now: float, tolerance: float = REPLAY_TOLERANCE) -> bool:
    """Whether ``header`` (X-Monitor-Signature) signs ``body`` at ``timestamp``
    (X-Monitor-Timestamp, Unix seconds) with ``secret``, and the timestamp is
    within ``tolerance`` seconds of ``now``: an old request replayed later, or
    one whose timestamp was changed, is rejected. Constant-time comparison."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"),
                               header.strip().encode("utf-8", "replace"))


def _headers(target: AlertTarget, message: AlertMessage, body: bytes,
             settings: Settings) -> dict[str, str]:
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": settings.user_agent,
               "X-Monitor-Timestamp": stamp, "X-Monitor-Key": message.key}
    if target.secret is not None:
        headers["X-Monitor-Signature"] = sign(target.secret, stamp, body)
    return headers


async def _send_webhook(target: AlertTarget, message: AlertMessage,
                        settings: Settings) -> None:
    body = payload(message)
    headers = _headers(target, message, body, settings)
    fail = _Fail(target, message)
    # The target's own allow_private, not the feeds': a webhook is vetted on its own terms.
    transport = guarded_transport(replace(settings, allow_private=target.allow_private))
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    try:
        # One deadline over the whole exchange: httpx's is per read, and a
        # receiver dripping a byte at a time would never reach it.
        async with asyncio.timeout(settings.timeout), httpx.AsyncClient(
                transport=transport, timeout=timeout, follow_redirects=False,
                trust_env=False) as client, client.stream(
                    "POST", target.to, content=body, headers=headers) as response:
            status = response.status_code
            phrase = response.reason_phrase
    except (TimeoutError, httpx.TimeoutException):
        raise fail(f"no answer within {settings.timeout:g} s", retryable=True) from None
    except AddressRefused as exc:
        raise fail(f"address refused: {exc.message}", retryable=False) from None
    except FetchError as exc:  # a failed lookup: DNS may answer next time
        raise fail(exc.message, retryable=True) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise fail(f"not a usable URL: {exc}", retryable=False) from None
    except httpx.TransportError as exc:
        raise fail(f"network error: {type(exc).__name__} {exc}", retryable=True) from None
    _check_status(status, phrase, fail)


def _check_status(status: int, phrase: str, fail: _Fail) -> None:
    if 200 <= status < 300:
        return
    answer = f"the receiver answered {status} {clean_short(phrase, 100)}".rstrip()
    if 300 <= status < 400:
        raise fail(f"{answer} (redirects are not followed)", retryable=False)
    raise fail(answer, retryable=status >= 500 or status in RETRYABLE_4XX)


# --- apprise -------------------------------------------------------------------------------

def _apprise_notify(to: str, title: str, body: str) -> bool | None:
    """Blocking: send through apprise; None when apprise knows no such URL."""
    import apprise  # imported here: loading its plugins costs every other command

    sender = apprise.Apprise()
    if not sender.add(to):
        return None
    return bool(sender.notify(title=title, body=body,
                              body_format=apprise.NotifyFormat.TEXT))


async def _send_apprise(target: AlertTarget, message: AlertMessage,
                        settings: Settings) -> None:
    title, body = render_for_markup(message)
    if _scheme(target.to) in _EMAIL_SCHEMES:
        # The subject is a header: one line, and no encoded word to decode into a break.
        title = header_text(title)
    fail = _Fail(target, message)
    try:
        # A thread cannot be stopped: on timeout it is left to apprise's own
        # socket timeouts, and the outbox tries again later.
        sent = await asyncio.wait_for(
            asyncio.to_thread(_apprise_notify, target.to, title, body), settings.timeout)
    except TimeoutError:
        raise fail(f"no answer within {settings.timeout:g} s", retryable=True) from None
    except Exception as exc:  # a plugin's own bug must not take the daemon down
        raise fail(f"apprise failed: {type(exc).__name__}", retryable=True) from None
    if sent is None:
        raise fail("not a URL apprise can send to", retryable=False)
    if not sent:
        raise fail("apprise could not deliver the message", retryable=True)


# --- both ----------------------------------------------------------------------------------

async def send_alert(target: AlertTarget, message: AlertMessage, *, settings: Settings) -> None:
    """Deliver ``message`` to ``target`` or raise AlertDeliveryError."""
    if _scheme(target.to) in ("http", "https"):
        await _send_webhook(target, message, settings)
    else:
        await _send_apprise(target, message, settings)


class _Fail:
    """Builds the AlertDeliveryError of one send (alert id, redacted target)."""

    def __init__(self, target: AlertTarget, message: AlertMessage) -> None:
        self.alert_id = message.alert_id
        self.where = redact(target.to)

    def __call__(self, reason: str, *, retryable: bool) -> AlertDeliveryError:
        return AlertDeliveryError(reason, alert_id=self.alert_id, retryable=retryable,
                                  target=self.where)


def _scheme(url: str) -> str:
    return url.partition("://")[0].strip().lower() if "://" in url else ""


def redact(url: str) -> str:
    """A target URL as it may be shown: an http(s) URL by its origin only (a
    hook's token is in its path or query), any other by its scheme alone
    (apprise URLs carry tokens in the host, the user or the path)."""
    scheme = _scheme(url)
    if scheme not in ("http", "https"):
        return f"{scheme or '?'}://…"
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{scheme}://…"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}{port}/…"


# --- the hourly cap ------------------------------------------------------------------------

def plan_delivery(queued: Sequence[AlertMessage], *, sent_last_hour: int,
                  max_per_hour: int | None) -> tuple[tuple[AlertMessage, ...],
                                                     AlertMessage | None]:
    """Of ``queued`` (one alert's messages, oldest first), those that go out
    now one by one, and the summary message the rest are folded into (None
    when nothing is folded). What is in neither waits for the cap to free up."""
    alone, folded = alert_split(len(queued), sent_last_hour, max_per_hour)
    now = tuple(queued[:alone])
    rest = queued[alone:alone + folded]
    return now, (summarize(rest) if rest else None)


def summarize(messages: Sequence[AlertMessage]) -> AlertMessage:
    """One "summary" message carrying the stories (each once) and notes of
    ``messages``; its key is stable for the same messages, so a summary sent
    twice after a crash is recognisable."""
    stories: dict[str, AlertStory] = {}
    for m in messages:
        for story in m.stories:
            stories.setdefault(story.story_id, story)
    also = tuple(dict.fromkeys(note for m in messages for note in m.also))
    digest = hashlib.sha256("\n".join(m.key for m in messages).encode("utf-8")).hexdigest()
    alert_id = messages[0].alert_id
    return AlertMessage(alert_id=alert_id, key=f"{alert_id}:summary:{digest[:_SUMMARY_KEY_HASH]}",
                        kind="summary", stories=tuple(stories.values()), also=also)
