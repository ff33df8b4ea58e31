"""Running a digest: the period it covers (where the last one of its name
ended), writing it atomically, mailing it, and recording it through the
store. A scheduled digest is run by app.run_digest, through these."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.digest.model import DEFAULT_WINDOW, EXTENSIONS, Digest
from monitor.digest.render import render, subject
from monitor.errors import MonitorError
from monitor.notify import mail
from monitor.store import Store

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
    return store.last_digest_until(name)


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
    store.record_digest(name=d.name, since=d.since, until=d.until, generated_at=d.generated_at,
                        fmt=fmt, stories=d.story_count,
                        output=str(output) if output is not None else None, sent_to=sent_to)


def slug(text: str) -> str:
    """A file-name-safe form of an id: [a-z0-9-], never empty, never a path."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "digest"


def output_name(digest_id: str, until: datetime, fmt: str) -> str:
    stamp = until.astimezone(UTC).strftime("%Y%m%d-%H%M")
    return f"{slug(digest_id)}-{stamp}.{EXTENSIONS[fmt]}"
