"""Cron expressions of feeds.yaml (``digests[].schedule``) -> APScheduler triggers.

Owns one translation, shared by config validation and the daemon so both read a
schedule the same way. Five fields are classic crontab (minute hour day month
weekday); six put seconds first (``*/10 * * * * *``), handy for tests and demos.
The weekday field follows crontab, where 0 (and 7) is Sunday: APScheduler 3.x
counts 0 as Monday, so ``CronTrigger.from_crontab("0 7 * * 1-5")`` would mail
on Tuesday to Saturday. Numbers are therefore expanded here to day names.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

# crontab numbering: 0 = Sunday ... 6 = Saturday (7 is Sunday again)
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_PART = re.compile(r"(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?")


def cron_trigger(expr: str, timezone: tzinfo | str | None = None) -> CronTrigger:
    """A trigger for a 5-field crontab line, or 6 fields with seconds first.

    Raises ValueError with a readable message on anything else."""
    fields = expr.split()
    if len(fields) == 5:
        second, rest = "0", fields
    elif len(fields) == 6:
        second, rest = fields[0], fields[1:]
    else:
        raise ValueError(f"expected 5 fields (minute hour day month weekday) or 6 (seconds "
                         f"first), got {len(fields)}")
    minute, hour, day, month, weekday = rest
    return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                       day_of_week=weekdays(weekday), timezone=timezone)


def weekdays(field: str) -> str:
    """A crontab weekday field as APScheduler 3.x day names ('*' for every day)."""
    days: set[int] = set()
    for part in field.lower().split(","):
        m = _PART.fullmatch(part)
        if not m:
            raise ValueError(f"weekday field {field!r}: use 0-7 or sun-sat, ranges (1-5), "
                             "lists (1,3) and steps (*/2)")
        step = int(m.group("step") or 1)
        if step < 1:
            raise ValueError(f"weekday field {field!r}: a step must be at least 1")
        text = m.group("range")
        if text == "*":
            first, last = 0, 6
        elif "-" in text:
            a, b = text.split("-")
            first, last = _day(a, field), _day(b, field)
            if last == 0 and b.strip() == "7":  # "1-7": Monday through Sunday
                last = 7
            if first > last:
                raise ValueError(f"weekday field {field!r}: range {text} runs backwards")
        else:
            first = _day(text, field)
            last = 6 if m.group("step") else first  # "1/2": from Monday, every other day
        days.update(d % 7 for d in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _day(token: str, field: str) -> int:
    if token.isdigit():
        n = int(token)
        if 0 <= n <= 7:
            return n % 7
    elif token in DAY_NAMES:
        return DAY_NAMES.index(token)
    raise ValueError(f"weekday field {field!r}: {token!r} is not a day (0-7 or sun-sat)")
