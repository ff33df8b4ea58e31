"""Sending one alert message to its target (minimal stand-in: h-alerts-send owns
this file; the integrator takes that version). Webhooks only: a signed JSON POST."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from monitor.errors import MonitorError
from monitor.fetch.guard import guarded_transport
from monitor.types import Settings


@dataclass(frozen=True)
class AlertTopic:
    id: str
    name: str
    terms: tuple[str, ...]
    snippet: str


@dataclass(frozen=True)
class AlertStory:
    story_id: str
    title: str
    url: str
    topics: tuple[AlertTopic, ...]
    feeds: tuple[str, ...]
    language: str | None
    published_at: str


@dataclass(frozen=True)
class AlertMessage:
    alert_id: str
    key: str
    kind: Literal["story", "summary", "test"]
    stories: tuple[AlertStory, ...]
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertTarget:
    to: str
    secret: bytes | None
    allow_private: bool


class AlertDeliveryError(MonitorError):
    def __init__(self, reason: str, *, alert_id: str, retryable: bool,
                 target: str | None = None) -> None:
        super().__init__(reason, alert=alert_id, target=target)
        self.alert_id = alert_id
        self.reason = self.message
        self.retryable = retryable


def render_text(message: AlertMessage) -> tuple[str, str]:
    lines: list[str] = []
    for s in message.stories:
        lines += [s.title, s.url, "Sources: " + ", ".join(s.feeds)]
        lines += [f"{t.name}: {', '.join(t.terms)}" for t in s.topics]
    lines += list(message.also)
    first = message.stories[0].title if message.stories else "alert"
    title = first if message.kind != "summary" else f"{len(message.stories)} stories"
    return title, "\n".join(lines)


async def send_alert(target: AlertTarget, message: AlertMessage, *, settings: Settings) -> None:
    scheme = urlsplit(target.to).scheme.lower()
    if scheme not in ("http", "https"):
        raise AlertDeliveryError("apprise not available", alert_id=message.alert_id,
                                 retryable=False)
    body = json.dumps({"alert": message.alert_id, "key": message.key, "kind": message.kind,
                       "stories": [dataclasses.asdict(s) for s in message.stories],
                       "also": list(message.also)}, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": settings.user_agent,
               "X-Monitor-Timestamp": stamp, "X-Monitor-Key": message.key}
    if target.secret is not None:
        mac = hmac.new(target.secret, stamp.encode() + b"." + body, hashlib.sha256)
        headers["X-Monitor-Signature"] = "sha256=" + mac.hexdigest()
    guarded = dataclasses.replace(settings, allow_private=target.allow_private)
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    try:
        async with httpx.AsyncClient(transport=guarded_transport(guarded), trust_env=False,
                                     timeout=timeout) as client:
            resp = await client.post(target.to, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise AlertDeliveryError(f"{type(exc).__name__}: {exc}", alert_id=message.alert_id,
                                 retryable=True) from None
    except MonitorError as exc:
        raise AlertDeliveryError(str(exc), alert_id=message.alert_id, retryable=False) from None
    if resp.status_code >= 300:
        raise AlertDeliveryError(f"HTTP {resp.status_code}", alert_id=message.alert_id,
                                 retryable=resp.status_code >= 500 or resp.status_code == 429)
