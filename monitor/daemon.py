"""`monitor run`: the long-running service on APScheduler 3.x.

Owns scheduling and process concerns only: a polling tick that runs one poll
cycle of the due feeds, a heartbeat in the database, the single-instance lock,
and signals (SIGTERM/SIGINT stop cleanly, SIGHUP reloads feeds.yaml). What a
poll does is poll.py's business; when a feed is due is stored per feed.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import IO

from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.config import Config, check_examples, load_config
from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.poll import poll_async
from monitor.store import Store, to_iso

log = logging.getLogger("monitor.daemon")

TICK_SECONDS = 10.0  # how often due feeds are looked for; feeds keep their own intervals


class InstanceLock:
    """An exclusive flock beside the database: one daemon per database."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + ".lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
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
    def __init__(self, config_path: str, db_path: str, *, tick: float = TICK_SECONDS) -> None:
        self.config_path = config_path
        self.db_path = db_path
        self.tick_seconds = tick
        self.config: Config = _load_checked(config_path)
        self.stopping = threading.Event()
        self.scheduler = BlockingScheduler(
            timezone=datetime.now().astimezone().tzinfo,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        self.lock = InstanceLock(db_path)

    def run(self) -> int:
        self.lock.acquire()
        try:
            with Store(self.db_path) as store:
                self._sync(store)
                self._heartbeat(store, started=True)
            self._install_signals()
            self.scheduler.add_job(self.tick, "interval", seconds=self.tick_seconds, id="poll",
                                   next_run_time=datetime.now(UTC))
            log.info("monitor daemon started: pid %d, %d feeds, %d topics, database %s",
                     os.getpid(), len(self.config.feeds), len(self.config.topics), self.db_path)
            self.scheduler.start()  # blocks until stop()
            log.info("monitor daemon stopped")
            with Store(self.db_path) as store, store.write() as db:
                db.execute("UPDATE daemon SET stopped_at = ? WHERE id = 1",
                           [to_iso(datetime.now(UTC))])
            return 0
        finally:
            self.lock.release()

    def tick(self) -> None:
        if self.stopping.is_set():
            return
        try:
            with Store(self.db_path) as store:
                self._heartbeat(store)
                summary = asyncio.run(poll_async(self.config, store, stop=self.stopping))
                if summary.due:
                    log.info("cycle: %d feeds polled, %d new items, %d hits, %d failed in %.1fs",
                             len(summary.results), summary.new_items, summary.hits,
                             summary.failed, summary.duration)
        except MonitorError as exc:
            log.error("poll cycle failed: %s", exc)
        except Exception:
            log.exception("poll cycle failed unexpectedly; the next tick will retry")

    def stop(self) -> None:
        self.stopping.set()
        # wait=True: the tick in flight finishes or rolls back its feed first.
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True},
                         daemon=True).start()

    def reload(self) -> None:
        try:
            config = _load_checked(self.config_path)
            with Store(self.db_path) as store:
                self.config = config
                self._sync(store)
        except MonitorError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        log.info("configuration reloaded: %d feeds, %d topics", len(config.feeds),
                 len(config.topics))

    def _sync(self, store: Store) -> None:
        now = datetime.now(UTC)
        store.sync_feeds(self.config.feeds, now)
        changed = store.sync_topics(self.config.topics, now)
        for topic_id in changed:
            log.warning("topic %s changed: stored hits follow the old query until "
                        "`monitor topics apply --topic %s`", topic_id, topic_id)

    def _heartbeat(self, store: Store, started: bool = False) -> None:
        now = to_iso(datetime.now(UTC))
        with store.write() as db:
            if started:
                db["daemon"].upsert({"id": 1, "pid": os.getpid(), "host": socket.gethostname(),
                                     "started_at": now, "last_tick_at": None,
                                     "stopped_at": None}, pk="id")
            else:
                db.execute("UPDATE daemon SET last_tick_at = ? WHERE id = 1", [now])

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self.reload, daemon=True).start()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


def _load_checked(path: str) -> Config:
    config = load_config(path)
    failures = check_examples(config)
    if failures:
        f = failures[0]
        raise ConfigError(f"example {'does not match' if f.expected else 'matches'}: {f.text!r}",
                          file=path, topic=f.topic_id, field="examples")
    return config
