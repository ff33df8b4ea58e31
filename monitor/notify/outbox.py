"""Delivering the alert outbox: which rows are due (min_sources reached, not in
quiet hours, within the hour's cap, the rest folded into one summary), the
messages built from them, sending through ``send_alert`` and settling each row
(sent, or retried later with backoff). Secrets come from the environment at
send time and are never stored or logged. Rows are sent one at a time per
alert, so a kill between a send and its bookkeeping repeats at most one."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from monitor.decide import (
    ALERT_RETRY_MAX,
    RATE_WINDOW,
    alert_retry,
    alert_split,
    in_quiet_hours,
)
from monitor.errors import MonitorError
from monitor.notify.alerts import (
    AlertDeliveryError,
    AlertMessage,
    AlertStory,
    AlertTarget,
    AlertTopic,
    send_alert,
)
from monitor.store import OutboxRow, Store, to_iso
from monitor.types import AlertConfig, Settings

log = logging.getLogger("monitor.alerts")


@dataclass(frozen=True)
class Delivery:
    """What one delivery run did for one alert."""

    alert_id: str
    sent: int = 0  # messages
    failed: int = 0
    held: str | None = None  # "quiet hours" / "rate cap" / None
    error: str | None = None


def target_of(alert: AlertConfig) -> AlertTarget:
    """The alert's target with its secret read from the environment now."""
    secret: bytes | None = None
    if alert.secret_env:
        value = os.environ.get(alert.secret_env)
        if not value:
            raise AlertDeliveryError(f"environment variable {alert.secret_env} is not set",
                                     alert_id=alert.id, retryable=True)
        secret = value.encode()
    return AlertTarget(to=alert.to, secret=secret, allow_private=alert.allow_private)


def story_of(row: OutboxRow, feeds: Sequence[str]) -> AlertStory:
    p = row.payload
    topics = tuple(AlertTopic(str(t["id"]), str(t["name"]), tuple(t["terms"]),
                              str(t["snippet"])) for t in p.get("topics", []))
    return AlertStory(story_id=row.story_key, title=str(p.get("title", "")),
                      url=str(p.get("url", "")), topics=topics, feeds=tuple(feeds),
                      language=p.get("language"), published_at=str(p.get("published_at", "")))


def sample_message(alert_id: str, now: datetime) -> AlertMessage:
    story = AlertStory(
        story_id="test", title="Test alert from monitor", url="https://example.org/monitor-test",
        topics=(AlertTopic("test", "Test topic", ("test",), "a [[test]] message"),),
        feeds=("monitor",), language="en", published_at=to_iso(now))
    return AlertMessage(alert_id=alert_id, key=f"test-{alert_id}-{to_iso(now)}", kind="test",
                        stories=(story,))


async def deliver(store: Store, alerts: Sequence[AlertConfig], settings: Settings,
                  now: datetime, local: tzinfo | None = None) -> list[Delivery]:
    """One delivery run over every alert; the alerts go concurrently (a target
    that hangs delays only its own messages), each alert's rows in order."""
    return list(await asyncio.gather(*(_deliver_one(store, a, settings, now, local)
                                       for a in alerts)))


async def _deliver_one(store: Store, alert: AlertConfig, settings: Settings, now: datetime,
                       local: tzinfo | None) -> Delivery:
    rows = store.alert_due(alert.id, now)
    if not rows:
        return Delivery(alert.id)
    if alert.quiet_hours and in_quiet_hours(now.astimezone(local).time(),
                                             alert.quiet_hours):
        return Delivery(alert.id, held="quiet hours")
    folded: dict[str, list[OutboxRow]] = {}
    ready: list[tuple[OutboxRow, list[str]]] = []
    expired: list[int] = []
    for r in rows:
        if r.summary_key:
            folded.setdefault(r.summary_key, []).append(r)
            continue
        feeds = store.story_feed_names(r.story_key)
        if len(feeds) >= alert.min_sources:
            ready.append((r, feeds))
        elif _created(r) < now - timedelta(seconds=alert.window):
            expired.append(r.id)
    if expired:
        store.alert_drop(expired)
    sent_recently = store.alert_messages_since(alert.id, now - RATE_WINDOW) + len(folded)
    alone, rest = alert_split(len(ready), sent_recently, alert.max_per_hour)
    if rest:
        fold = ready[alone:]
        key = _summary_key(alert.id, [r.id for r, _ in fold])
        store.alert_fold([r.id for r, _ in fold], key)
        folded[key] = [r for r, _ in fold]
    messages: list[tuple[AlertMessage, list[int]]] = [
        (AlertMessage(alert.id, r.key, "story", (story_of(r, feeds),)), [r.id])
        for r, feeds in ready[:alone]]
    for key, members in folded.items():
        stories = tuple(story_of(r, store.story_feed_names(r.story_key)) for r in members)
        messages.append((AlertMessage(alert.id, key, "summary", stories), [r.id for r in members]))
    return await _send_all(store, alert, settings, now, messages,
                           held="rate cap" if len(ready) > alone + rest else None)


async def _send_all(store: Store, alert: AlertConfig, settings: Settings, now: datetime,
                    messages: list[tuple[AlertMessage, list[int]]],
                    held: str | None) -> Delivery:
    sent = 0
    for message, ids in messages:
        try:
            await send_bounded(alert, message, settings)
        except AlertDeliveryError as exc:
            # The target is down: every message still due waits out the same backoff,
            # so a dead target costs one attempt per run, not one per story.
            waiting = [i for _, rest in messages[sent:] for i in rest]
            attempts = max(1, _attempts(store, alert.id, now))
            # Not worth asking again soon (a 4xx, a refused address), but never
            # dropped: once the target is fixed the messages go out.
            later = (alert_retry(attempts, now) if exc.retryable
                     else now + timedelta(seconds=ALERT_RETRY_MAX))
            store.alert_failed(alert.id, waiting, exc.reason, now, later)
            log.warning("alert %s: delivery failed (%s); %d messages wait", alert.id,
                        exc.reason, len(messages) - sent)
            return Delivery(alert.id, sent=sent, failed=len(messages) - sent, error=exc.reason)
        store.alert_delivered(alert.id, ids, now)
        sent += 1
        log.info("alert %s: sent %s (%d stories)", alert.id, message.kind, len(ids))
    return Delivery(alert.id, sent=sent, held=held)


async def send_bounded(alert: AlertConfig, message: AlertMessage, settings: Settings) -> None:
    """send_alert with a hard bound: a target that drips its answer byte by
    byte would outlast every per-read timeout."""
    target = target_of(alert)
    bound = settings.timeout + settings.connect_timeout + 5
    try:
        await asyncio.wait_for(send_alert(target, message, settings=settings), bound)
    except TimeoutError:
        raise AlertDeliveryError(f"no answer within {bound:g} s", alert_id=alert.id,
                                 retryable=True) from None
    except AlertDeliveryError:
        raise
    except MonitorError as exc:
        raise AlertDeliveryError(str(exc), alert_id=alert.id, retryable=True) from None


def _attempts(store: Store, alert_id: str, now: datetime) -> int:
    state: dict[str, Any] = store.alert_states().get(alert_id, {})
    return int(state.get("failures") or 0) + 1


def _created(row: OutboxRow) -> datetime:
    return datetime.fromisoformat(row.created_at.replace("Z", "+00:00"))


def _summary_key(alert_id: str, ids: Sequence[int]) -> str:
    return "s-" + hashlib.sha256(f"{alert_id}\n{ids[0]}-{ids[-1]}-{len(ids)}".encode()
                                 ).hexdigest()[:32]
