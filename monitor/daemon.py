"""`monitor run`: the long-running service on APScheduler 3.x.

Owns scheduling and process concerns only:

- a polling tick that polls the feeds whose ``next_due_at`` (stored per feed,
  so it survives restarts) has come, with a deadline per cycle;
- scheduled digests (cron, local time) with retries that survive restarts;
- daily housekeeping: the integrity check, retention, the FTS index, freed
  pages returned to the file system, the WAL file;
- a heartbeat in the ``daemon`` table for `monitor status`;
- the single-instance lock, signals (SIGTERM/SIGINT stop cleanly, SIGHUP
  reloads feeds.yaml between two ticks) and the log format.

What a poll, a digest, a reload or housekeeping does is the business of
``monitor.app.Monitor``: each job calls one of its use cases and logs the outcome.

Every job runs through ``_job``: an exception is logged and the job runs again
at its next time, and stopping waits (up to ``STOP_GRACE``) for jobs in flight.
All jobs have ``coalesce=True`` and ``max_instances=1`` (a late or long run is
never doubled) and ``misfire_grace_time=None``: in APScheduler 3.x a run later
than its grace time is skipped with only a warning, so after a suspended
laptop or a busy moment the missed run happens late instead of never.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import FrameType
from typing import IO, Any

import tzlocal
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from monitor import language

# The daemon polls: its fetcher, parsers and matcher are imported at its start
# (app.py leaves them to the first poll, for a `monitor poll` with nothing due),
# not inside its first tick, beside the jobs the scheduler has started.
from monitor import poll as _poll  # noqa: F401
from monitor.app import CatchUp, Monitor, Notice, StaleTopic, load_checked
from monitor.app import status as status
from monitor.clean import CleanFormatter, clean_lines
from monitor.config import Config
from monitor.cron import cron_trigger
from monitor.decide import DIGEST_ERROR_AFTER, DIGEST_RETRY
from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.types import Settings

log = logging.getLogger("monitor.daemon")

TICK_SECONDS = 10.0  # how often due feeds are looked for; feeds keep their own intervals
STOP_GRACE = 6.0  # seconds a stop waits for jobs in flight: exit stays within 10 s
POLL_MARGIN = 30.0  # seconds added to a poll cycle's deadline beyond its fetches
MAINTENANCE_EVERY = 86400.0
MAINTENANCE_DELAY = 300.0  # first housekeeping after start, once the first polls are done
MAINTENANCE_BUDGET = 120.0  # seconds of pruning/merging per run; the rest waits a day
# The backfill of the norm column (items stored before it): a slice every
# minute, each of short transactions, until none is left; then one indexed count.
NORM_BACKFILL_EVERY = 60.0
NORM_BACKFILL_BUDGET = 10.0
ALERTS_EVERY = 30.0  # seconds between deliveries of the alert outbox (and after each poll)


def poll_deadline(settings: Settings) -> float:
    """Seconds a poll cycle may take. Room for three rounds of fetches at the
    full timeout (feeds queued behind a busy host or the concurrency limit
    start late) plus ingesting; feeds not reached stay due and go first at the
    next tick, so a hung cycle never blocks the later ones."""
    return settings.timeout * 3 + POLL_MARGIN


class Deadline:
    """A stop flag for a job: set by a stop request or once ``seconds`` pass."""

    def __init__(self, stop: threading.Event, seconds: float) -> None:
        self.stop = stop
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def is_set(self) -> bool:
        return self.stop.is_set() or self.expired


class InstanceLock:
    """An exclusive flock beside the database: one daemon per database. The
    kernel drops it when the process dies, however it dies."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + ".lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process life
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StorageError(f"another monitor daemon is already running on this database "
                               f"({holder})", db=db_path_of(self.path)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def db_path_of(lock_path: str) -> str:
    return lock_path.removesuffix(".lock")


class Daemon:
    def __init__(self, config_path: str, db_path: str, *, tick: float = TICK_SECONDS,
                 digest_retry: float = DIGEST_RETRY, timezone: tzinfo | None = None) -> None:
        if tick <= 0 or digest_retry <= 0:
            raise ConfigError("--tick and --digest-retry must be positive")
        self.config_path = config_path
        self.db_path = db_path
        self.tick_seconds = tick
        self.digest_retry = digest_retry
        self.monitor = Monitor(config_path, db_path, on_warning=_log_notice)
        self.monitor.config = load_checked(config_path)
        # A named zone (not a fixed offset) so "0 7 * * *" stays 07:00 across DST.
        self.timezone = timezone or tzlocal.get_localzone()
        self.stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._digest_lock = threading.Lock()  # one digest at a time, scheduled or retried
        self._idle = threading.Condition()
        self._active = 0
        self.scheduler = BlockingScheduler(
            timezone=self.timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.lock = InstanceLock(db_path)

    @property
    def config(self) -> Config:
        return self.monitor.config

    # --- life cycle ----------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; 0 after a clean stop. Raises StorageError
        at once if another daemon holds this database."""
        self.lock.acquire()
        try:
            self._install_signals()
            return self._run()
        finally:
            self.lock.release()

    def _run(self) -> int:
        now = datetime.now(UTC)
        # Once per start (and daily in maintenance), not on every open: a
        # corrupted file is refused before the daemon writes to it.
        seconds = self.monitor.check_database()
        log.info("database integrity check: ok in %.2fs", seconds or 0.0)
        self._load_language_model()
        self.monitor.daemon_started(tick=self.tick_seconds, now=now)
        self._catch_up_digests(now)
        self._schedule_jobs(now)
        log.info("monitor daemon started: pid %d, %d feeds, %d topics, %d digests, "
                 "database %s", os.getpid(), len(self.config.feeds), len(self.config.topics),
                 len(self.config.digests), self.db_path)
        if not self.stopping.is_set():
            self.scheduler.start()  # blocks until stop() shuts it down
        if not self._wait_idle(STOP_GRACE):
            self._abandon()
        self.monitor.daemon_stopped()
        self.monitor.close()
        log.info("monitor daemon stopped")
        return 0

    def _load_language_model(self) -> None:
        """One copy of the language model (~6 MB) for the daemon's life: held
        here, the parser workers of a cycle of new feeds never load their own
        (monitor.poll._workers_detect), and later cycles find it loaded."""
        if all(f.language is not None for f in self.config.feeds):
            return
        t0 = time.monotonic()
        if language.load():
            log.info("language model loaded in %.2fs", time.monotonic() - t0)

    def stop(self) -> None:
        if self.stopping.is_set():
            log.info("already stopping: waiting for the job in flight (at most %.0f s)",
                     STOP_GRACE)
            return
        self.stopping.set()
        # Not from the signal handler itself: it may have interrupted the
        # scheduler's own loop in the main thread.
        threading.Thread(target=self._shutdown, name="monitor-stop", daemon=True).start()

    def _shutdown(self) -> None:
        for _ in range(100):  # a signal during start-up: the scheduler may not run yet
            try:
                self.scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:
                time.sleep(0.05)

    def _wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def _abandon(self) -> None:
        """A job still runs after the grace period (a mail server that does not
        answer): stop anyway. Its work is not lost: a digest not recorded as
        sent is still pending and goes out at the next start."""
        log.warning("a job is still running after %.0f s; stopping without it", STOP_GRACE)
        try:
            self.monitor.daemon_stopped(own_connection=True)
        except MonitorError as exc:
            log.error("could not record the stop: %s", exc)
        log.info("monitor daemon stopped")
        logging.shutdown()
        self.lock.release()
        os._exit(0)  # worker threads would otherwise keep the interpreter alive

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            self.stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            log.info("SIGHUP: feeds.yaml will be reloaded before the next poll")
            self._reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    # --- jobs ----------------------------------------------------------------------------

    def _schedule_jobs(self, now: datetime) -> None:
        self._add("poll", "interval", self.tick, seconds=self.tick_seconds, next_run_time=now)
        self._add("digest-retries", "interval", self.retry_digests, seconds=self.tick_seconds,
                  next_run_time=now)
        # Its own job (its own thread and connection): a target that hangs
        # delays its alerts, never the next poll.
        self._add("alerts", "interval", self.deliver_alerts,
                  seconds=min(ALERTS_EVERY, self.tick_seconds * 3), next_run_time=now)
        self._add("maintenance", "interval", self.maintain, seconds=MAINTENANCE_EVERY,
                  next_run_time=now + timedelta(seconds=MAINTENANCE_DELAY))
        self._add("norm-backfill", "interval", self.backfill_norm, seconds=NORM_BACKFILL_EVERY,
                  next_run_time=now + timedelta(seconds=NORM_BACKFILL_EVERY))
        self._schedule_digests()

    def _add(self, job_id: str, trigger: Any, fn: Callable[..., None], *args: Any,
             name: str | None = None, **trigger_args: Any) -> None:
        self.scheduler.add_job(self._job, trigger, args=[job_id, fn, *args], id=job_id,
                               name=name or job_id, replace_existing=True, **trigger_args)

    def _job(self, job_id: str, fn: Callable[..., None], *args: Any) -> None:
        with self._idle:
            if self.stopping.is_set():
                return
            self._active += 1
        try:
            fn(*args)
        except MonitorError as exc:
            log.error("%s failed: %s; it runs again at its next time", job_id, exc)
        except Exception:
            log.exception("%s failed unexpectedly; it runs again at its next time", job_id)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def tick(self) -> None:
        """One poll cycle of the due feeds, after a pending reload."""
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self._reload()
        if not self.monitor.heartbeat():
            # Most ticks: skip building the matcher, the event loop and the
            # HTTP client (its TLS context alone costs tens of ms).
            log.debug("tick: no feed due")
            self._checkpoint()
            return
        deadline = Deadline(self.stopping, poll_deadline(self.config.settings))
        summary = self.monitor.poll_cycle(deadline)
        if summary.hits and self.config.alerts:
            self._alerts_now()
        if deadline.expired and not self.stopping.is_set():
            log.warning("poll cycle reached its deadline (%.0f s): %d of %d due feeds done; "
                        "the others stay due and go first next time", deadline.seconds,
                        len(summary.results), summary.due)
        log.info("cycle: %d feeds polled, %d new items, %d hits, %d failed in %.1fs",
                 len(summary.results), summary.new_items, summary.hits, summary.failed,
                 summary.duration,
                 extra={"event": "cycle", "due": summary.due, "polled": len(summary.results),
                        "new_items": summary.new_items, "hits": summary.hits,
                        "failed": summary.failed, "duration": round(summary.duration, 3)})
        self._checkpoint()

    def _alerts_now(self) -> None:
        """Run the delivery job now, in its own thread; if it is running, the
        rows of this cycle go with its next run."""
        with contextlib.suppress(LookupError, SchedulerNotRunningError):
            self.scheduler.modify_job("alerts", next_run_time=datetime.now(UTC))

    def deliver_alerts(self) -> None:
        """The outbox's due rows (each failure is logged where it happens)."""
        self.monitor.deliver_alerts(local=self.timezone)

    def _checkpoint(self) -> None:
        c = self.monitor.checkpoint()
        if c.done is not None:
            log.info("WAL file reached %.0f MB: checkpointed (%d of %d pages%s)",
                     c.wal_bytes / 1e6, c.done[2], c.done[1], ", readers busy" if c.done[0] else "")

    # --- reload --------------------------------------------------------------------------

    def _reload(self) -> None:
        """Apply feeds.yaml again, between two poll cycles; a bad file is
        refused with its error and the running configuration kept."""
        try:
            config = self.monitor.reload()
        except MonitorError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self._schedule_digests()
        log.info("configuration reloaded: %d feeds, %d topics, %d digests",
                 len(config.feeds), len(config.topics), len(config.digests))

    # --- digests -------------------------------------------------------------------------

    def _schedule_digests(self) -> None:
        wanted = {f"digest:{d.id}": d for d in self.config.digests}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:") and job.id not in wanted:
                job.remove()
        for job_id, d in wanted.items():
            name = f"digest {d.id} ({d.schedule})"
            existing = self.scheduler.get_job(job_id)
            if existing is not None and existing.name == name:
                continue  # same schedule: keep its next run time
            self._add(job_id, cron_trigger(d.schedule, self.timezone), self.run_digest, d.id,
                      name=name)

    def _catch_up_digests(self, now: datetime) -> None:
        """Digests whose time came while no daemon ran, or that were never
        confirmed sent, go out now: a stopped daemon loses no digest."""
        self.monitor.catch_up_digests(self.timezone, now, _log_catch_up)

    def retry_digests(self) -> None:
        for digest_id in self.monitor.digest_retries_due():
            if self.stopping.is_set():
                return
            self.run_digest(digest_id, retry=True)

    def run_digest(self, digest_id: str, *, retry: bool = False) -> None:
        """Build, write and/or mail one digest; a failure is recorded and retried
        with backoff (x4 from ``digest_retry``, then hourly) until it is sent."""
        with self._digest_lock:
            run = self.monitor.scheduled_digest(digest_id, retry=retry,
                                                retry_base=self.digest_retry)
        if run.status == "dropped":
            log.info("digest %s is no longer configured: dropping its pending run", digest_id)
        elif run.status == "failed":
            level = logging.ERROR if run.attempts >= DIGEST_ERROR_AFTER else logging.WARNING
            log.log(level, "digest %s not sent (attempt %d): %s; next attempt in %.0f s",
                    digest_id, run.attempts, run.reason, run.delay,
                    exc_info=None if isinstance(run.error, MonitorError) else run.error,
                    extra={"event": "digest-failed", "digest": digest_id,
                           "attempts": run.attempts, "error": run.reason})
        elif run.outcome is not None:
            outcome = run.outcome
            log.info("digest %s: %d stories%s%s", digest_id, outcome.digest.story_count,
                     f", written to {outcome.path}" if outcome.path else "",
                     f", mailed to {', '.join(outcome.sent_to)}" if outcome.sent_to else "",
                     extra={"event": "digest", "digest": digest_id,
                            "stories": outcome.digest.story_count,
                            "path": str(outcome.path) if outcome.path else None,
                            "sent_to": list(outcome.sent_to)})

    # --- housekeeping --------------------------------------------------------------------

    def maintain(self) -> None:
        """The integrity check, retention, FTS merging, free pages and the
        WAL, within ``MAINTENANCE_BUDGET``."""
        t0 = time.monotonic()
        budget = Deadline(self.stopping, MAINTENANCE_BUDGET)
        m = self.monitor.maintain(budget.is_set, on_line=log.info)
        log.info("maintenance: integrity ok; %d items without hits older than %.0f days pruned; "
                 "FTS index %s; %d free pages returned; WAL %.1f MB%s; %.1fs", m.pruned,
                 m.retention / 86400, m.merged, m.freed_pages, m.wal_bytes / 1e6,
                 " checkpointed" if m.checkpointed else "", time.monotonic() - t0,
                 extra={"event": "maintenance", "pruned": m.pruned,
                        "freed_pages": m.freed_pages})


    def backfill_norm(self) -> None:
        """A slice of the norm column's backfill (``monitor reindex``), within
        ``NORM_BACKFILL_BUDGET``; polls interleave between its transactions."""
        done, left = self.monitor.reindex(Deadline(self.stopping, NORM_BACKFILL_BUDGET).is_set)
        if done:
            log.info("norm backfill: %d items normalised, %d left", done, left,
                     extra={"event": "norm-backfill", "done": done, "left": left})


def _log_notice(notice: Notice) -> None:
    if isinstance(notice, StaleTopic):
        log.warning("topic %s changed: stored hits follow the old query until "
                    "`monitor topics apply --topic %s`", notice.topic_id, notice.topic_id)


def _log_catch_up(c: CatchUp) -> None:
    if c.kind == "retry":
        log.warning("digest %s was not sent last time (%s): trying again", c.digest_id,
                    c.last_error or "interrupted")
    elif c.missed_at is not None:
        log.warning("digest %s: its run at %s was missed while the daemon was "
                    "stopped: sending it now", c.digest_id, c.missed_at.isoformat())


# --- logging -----------------------------------------------------------------------------

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message",
                                                                              "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any
    ``extra=`` fields (feed, status, new_items...) for log shippers. Text is
    cleaned as by CleanFormatter: JSON escapes ESC but not U+009B nor bidi
    controls, which a log viewer in a terminal would obey."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean_lines(record.getMessage()),
        }
        data.update({k: clean_lines(v) if isinstance(v, str) else v
                     for k, v in vars(record).items()
                     if k not in _RECORD_FIELDS and not k.startswith("_")})
        if record.exc_info:
            data["exception"] = clean_lines(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class _QuietOverlap(logging.Filter):
    """A tick-paced job (poll, digest retries, alerts) that finds its previous
    run still going is expected: that run goes on, and the job runs again at
    the next tick. APScheduler's warning for it would repeat every tick; a
    slow write of the poll's is enough to make a 0.3 s digest-retries tick
    overlap its last run."""

    TICK_PACED = ('"poll', '"digest-retries', '"alerts')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("maximum number of running instances" in message
                    and any(job in message for job in self.TICK_PACED))


def configure_logging(*, verbose: int = 0, quiet: bool = False, json_lines: bool = False) -> None:
    """The daemon logs one line per poll at INFO by default; ``-v`` adds our
    debug lines, ``-vv`` those of httpx and APScheduler too; ``-q`` only
    warnings and errors."""
    level = logging.WARNING if quiet else (logging.INFO if verbose == 0 else logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else CleanFormatter(LOG_FORMAT))
    handler.addFilter(_QuietOverlap())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "asyncio", "tzlocal"):
        logging.getLogger(noisy).setLevel(level if verbose >= 2 else logging.WARNING)
