"""The sources' health in a digest: feeds failing (since when, why), disabled,
and silent for longer than their own rhythm; read through the store, no SQL."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta

from monitor.clean import without_userinfo
from monitor.digest.model import (
    MAX_ERROR,
    MAX_NAME,
    RHYTHM_ITEMS,
    SILENT_DEFAULT,
    SILENT_FACTOR,
    SILENT_FLOOR,
    SILENT_MIN_ITEMS,
    DisabledFeed,
    FailingAlert,
    FailingFeed,
    SilentFeed,
    SourcesHealth,
    clean,
)
from monitor.health import feed_name
from monitor.store import DigestFeed, Store, from_iso


def sources_health(store: Store, feeds: dict[str, DigestFeed], now: datetime) -> SourcesHealth:
    failing: list[FailingFeed] = []
    silent: list[SilentFeed] = []
    disabled: list[DisabledFeed] = []
    ok = 0
    # One query for every feed that may be silent, not one per feed.
    published = store.recent_published_many(
        [f.id for f in feeds.values() if f.active and f.last_success_at], now, RHYTHM_ITEMS)
    for f in feeds.values():
        if not f.active:
            continue
        name = clean(feed_name(f.names), MAX_NAME)
        # A digest travels by mail: a feed URL's own credentials stay home.
        url = clean(without_userinfo(f.url or ""), 500)
        if f.disabled_reason:
            disabled.append(DisabledFeed(f.id, name, url, clean(f.disabled_reason, MAX_ERROR)))
        elif f.last_error_kind or f.last_error:
            failing.append(FailingFeed(
                f.id, name, url, clean(f.last_error or f.last_error_kind, MAX_ERROR),
                f.last_error_kind or "", from_iso(f.failing_since), int(f.error_count or 0)))
        else:
            ok += 1
            quiet = _silence(f, published.get(f.id, []), now)
            if quiet is not None:
                silent.append(SilentFeed(f.id, name, url, *quiet))
    far = datetime.max.replace(tzinfo=UTC)
    failing.sort(key=lambda x: (x.failing_since or far, x.id))
    silent.sort(key=lambda x: (x.last_item_at or datetime.min.replace(tzinfo=UTC), x.id))
    return SourcesHealth(ok=ok, failing=tuple(failing), silent=tuple(silent),
                         disabled=tuple(disabled), failing_alerts=_failing_alerts(store))


def _failing_alerts(store: Store) -> tuple[FailingAlert, ...]:
    """Alert targets failing now: their messages wait, so the desk hears of it here."""
    out = [FailingAlert(alert_id, clean(str(s.get("last_error") or ""), MAX_ERROR),
                        from_iso(s.get("failing_since")), int(s.get("failures") or 0),
                        int(s.get("pending") or 0))
           for alert_id, s in sorted(store.alert_states().items())
           if int(s.get("failures") or 0) > 0]
    return tuple(out)


def _silence(feed: DigestFeed, published: list[str],
             now: datetime) -> tuple[datetime | None, float | None] | None:
    """(newest item, usual gap) when the feed has been quiet for longer than
    usual (see SILENT_*), else None; ``published``: its newest publication dates."""
    if not feed.last_success_at:
        return None  # never fetched yet: nothing to judge
    dates = [d for d in (from_iso(p) for p in published) if d is not None]
    if not dates:
        created = from_iso(feed.created_at)
        if created is not None and now - created > SILENT_DEFAULT:
            return None, None
        return None
    gap: float | None = None
    threshold = SILENT_DEFAULT
    if len(dates) >= SILENT_MIN_ITEMS:
        gap = statistics.median((a - b).total_seconds() for a, b in itertools.pairwise(dates))
        threshold = max(timedelta(seconds=SILENT_FACTOR * gap), SILENT_FLOOR)
    return (dates[0], gap) if now - dates[0] > threshold else None
