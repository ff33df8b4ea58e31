"""The daemon as users run it: `python -m monitor run` in a subprocess, polling
feeds served on 127.0.0.1 (tests/feedserver.py) into a SQLite file in tmp_path,
mailing digests to a real aiosmtpd server. Short intervals (min_interval 1 s,
interval 2 s, tick 0.5 s); every wait polls the database, the server or the log
against a deadline, and every daemon is killed in a ``finally``.
"""

from __future__ import annotations

import email
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from feedserver import FeedServer
from helpers import DATA, ROOT, write_config

from monitor import cron
from monitor.config import parse_config
from monitor.daemon import Daemon, status
from monitor.errors import ConfigError, StorageError
from monitor.store import PollWrite, Store, to_iso
from monitor.types import Entry, FeedConfig, FeedUpdate, Hit, Topic

FEEDS = {"kz-news": "kz-news.xml", "aljazeera": "aljazeera.xml", "dw-en": "dw-en.rdf"}
FAST = {"interval": "2s", "min_interval": "1s"}
TICK = "0.5"
STOP_BOUND = 10.0  # the promise: SIGTERM -> exit 0 within 10 s
STRIKE = (b"<item><title>Kazakhstan: miners strike in Karaganda over unpaid wages</title>"
          b"<link>https://example.org/karaganda-strike</link><guid>karaganda-strike</guid>"
          b"<description>Coal miners at a Karaganda mine went on strike.</description></item>")


# --- helpers -------------------------------------------------------------------------------

def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        conn.close()


def polled(db: Path, *feed_ids: str) -> bool:
    ok = rows(db, "SELECT id FROM feeds WHERE last_success_at IS NOT NULL")
    return set(feed_ids) <= {r[0] for r in ok}


class DaemonProcess:
    """`monitor run` in a subprocess, its log in a file (a pipe could fill up)."""

    def __init__(self, tmp: Path, config: Path, db: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run",
             "--tick", TICK, *args],
            stdout=subprocess.DEVNULL, stderr=self._log, cwd=tmp, env=child_env(env))
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 10) -> None:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the daemon's log")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM; the exit code, failing if there is none within STOP_BOUND."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit {STOP_BOUND:g} s after SIGTERM:\n{self.log()}") from None
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **(extra or {})}


@contextmanager
def daemon(tmp: Path, config: Path, db: Path, *args: str,
           env: dict[str, str] | None = None) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp, config, db, *args, env=env)
    try:
        yield d
    finally:
        d.kill()


def feed_list(server: FeedServer, ids: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "name": i, "url": server.url(f"/{i}"), **extra} for i in ids]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(server: FeedServer) -> FeedServer:
    for feed_id, name in FEEDS.items():
        server.put(f"/{feed_id}", (DATA / "feeds" / name).read_bytes())
    return server


def add_strike(server: FeedServer) -> None:
    body = (DATA / "feeds" / "kz-news.xml").read_bytes().replace(b"</channel>",
                                                                 STRIKE + b"</channel>")
    server.put("/kz-news", body)


def strike_items(db: Path) -> list[tuple[Any, ...]]:
    return rows(db, "SELECT i.id, count(h.id) FROM items i LEFT JOIN hits h ON h.item_id = i.id "
                    "WHERE i.key = 'karaganda-strike' GROUP BY i.id")


# --- the daemon, end to end ----------------------------------------------------------------

def test_changed_feed_ingested_within_one_interval_then_sigterm_exits_0(tmp_path, server):
    config = write_config(tmp_path / "feeds.yaml", feed_list(server, list(FEEDS)), settings=FAST)
    db = tmp_path / "monitor.db"
    with daemon(tmp_path, config, db, "--log-json") as d:
        wait_for(lambda: polled(db, *FEEDS), 15, "every feed's first poll")

        info = status(str(db))  # read while the daemon writes
        assert info["state"] == "running" and info["daemon"]["pid"] == d.pid
        assert info["daemon"]["last_tick_at"] and info["next_due"]["id"] in FEEDS
        assert info["failing"] == 0 and info["feeds"] == len(FEEDS)

        add_strike(server)
        # Due within interval + 10 % jitter; found within the next tick; the rest is slack.
        wait_for(lambda: strike_items(db), 2 * 1.1 + 0.5 + 3, "the new item")
        assert strike_items(db)[0][1] >= 1, "the new item matched no topic"

        code = d.stop()
        assert code == 0, d.log()
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert rows(db, "SELECT stopped_at IS NOT NULL FROM daemon") == [(1,)]
    lines = [json.loads(line) for line in d.log().splitlines()]  # every line is JSON
    polls = [r for r in lines if r["logger"] == "monitor.poll"]
    assert any(r["message"].startswith("feed kz-news: new, 1 new") for r in polls), polls
    cycles = [r for r in lines if r.get("event") == "cycle"]
    assert cycles and {"polled", "new_items", "hits", "duration"} <= set(cycles[0])
    # One copy of the language model, the daemon's own, loaded before the first cycle
    # (no feed says its language): no parser worker loads a second one.
    messages = [r["message"] for r in lines]
    loaded = [n for n, m in enumerate(messages) if m.startswith("language model loaded")]
    started = [n for n, m in enumerate(messages) if m.startswith("monitor daemon started")]
    assert len(loaded) == 1 and loaded[0] < started[0], messages


@contextmanager
def blackhole() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def hold() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()
        for conn in accepted:
            conn.close()


def test_sigterm_during_a_hung_fetch_exits_0_and_commits_nothing_for_it(tmp_path):
    db = tmp_path / "monitor.db"
    with blackhole() as (port, accepted):
        url = f"http://127.0.0.1:{port}/feed"
        config = write_config(tmp_path / "feeds.yaml", [{"id": "hung", "name": "hung",
                                                         "url": url}],
                              settings={**FAST, "timeout": "60s"})
        with daemon(tmp_path, config, db) as d:
            wait_for(lambda: accepted, 15, "the fetch to connect")
            assert d.stop() == 0, d.log()
            assert "poll interrupted" in d.log()
    # The interrupted feed is untouched: still due, no fetch logged.
    assert rows(db, "SELECT last_fetch_at, next_due_at FROM feeds") == [(None, None)]
    assert rows(db, "SELECT count(*) FROM fetches") == [(0,)]


def test_sigterm_while_a_digest_hangs_on_smtp_exits_0_and_keeps_it_pending(tmp_path, server):
    db = tmp_path / "monitor.db"
    with blackhole() as (port, accepted):
        config = write_config(tmp_path / "feeds.yaml", feed_list(server, ["kz-news"]),
                              settings=FAST, digests=[
                                  {"id": "desk", "schedule": "*/2 * * * * *", "format": "text",
                                   "to": ["desk@example.org"]}])
        env = {"MONITOR_SMTP_HOST": "127.0.0.1", "MONITOR_SMTP_PORT": str(port),
               "MONITOR_SMTP_SECURITY": "none"}
        with daemon(tmp_path, config, db, env=env) as d:
            wait_for(lambda: accepted and rows(db, "SELECT 1 FROM digest_pending"), 15,
                     "the digest to be sending")
            assert d.stop() == 0, d.log()  # within the 10 s bound, the send still hanging
            assert "still running after" in d.log()
    # Not sent, so still pending: the next start sends it.
    assert rows(db, "SELECT digest_id, attempts FROM digest_pending") == [("desk", 0)]
    assert status(str(db))["state"] == "stopped"


def test_restart_polls_only_feeds_that_are_due(tmp_path, server):
    slow = ["aljazeera", "dw-en"]
    feeds = feed_list(server, slow, interval="1h") + feed_list(server, ["kz-news"],
                                                               interval="1s")
    config = write_config(tmp_path / "feeds.yaml", feeds, settings=FAST)
    db = tmp_path / "monitor.db"
    with daemon(tmp_path, config, db) as first:
        wait_for(lambda: polled(db, *FEEDS), 15, "every feed's first poll")
        assert first.stop() == 0
    due_before = rows(db, "SELECT id, next_due_at FROM feeds WHERE id != 'kz-news' ORDER BY id")
    fast_before = server.count("/kz-news")
    with daemon(tmp_path, config, db) as second:
        # Two polls of the fast feed after the restart: the daemon ran several cycles.
        wait_for(lambda: server.count("/kz-news") >= fast_before + 2, 15,
                 "the due feed to be polled after the restart")
        assert rows(db, "SELECT pid FROM daemon") == [(second.pid,)]
        assert second.stop() == 0
    assert {p: server.count(f"/{p}") for p in slow} == {p: 1 for p in slow}
    assert rows(db, "SELECT id, next_due_at FROM feeds WHERE id != 'kz-news' "
                    "ORDER BY id") == due_before


def test_second_instance_on_the_same_database_exits_1_naming_the_pid(tmp_path, server):
    config = write_config(tmp_path / "feeds.yaml", feed_list(server, ["kz-news"]), settings=FAST)
    db = tmp_path / "monitor.db"
    with daemon(tmp_path, config, db) as first:
        wait_for(lambda: rows(db, "SELECT pid FROM daemon WHERE last_tick_at IS NOT NULL"),
                 15, "the first daemon's heartbeat")
        second = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run"],
            capture_output=True, text=True, timeout=30, cwd=tmp_path, env=child_env())
        assert second.returncode == 1, second.stderr
        assert f"pid {first.pid}" in second.stderr and "already running" in second.stderr
        assert first.alive()
        assert rows(db, "SELECT pid FROM daemon") == [(first.pid,)]
        assert first.stop() == 0


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def test_scheduled_digest_failing_to_send_is_recorded_then_retried_and_mailed(tmp_path, server):
    port = free_port()  # nothing listens there yet: the first sends fail
    feeds = feed_list(server, ["kz-news"])
    config = write_config(tmp_path / "feeds.yaml", feeds, settings=FAST, digests=[
        {"id": "desk", "schedule": "*/2 * * * * *", "format": "text",
         "to": ["desk@example.org"]}])
    db = tmp_path / "monitor.db"
    env = {"MONITOR_SMTP_HOST": "127.0.0.1", "MONITOR_SMTP_PORT": str(port),
           "MONITOR_SMTP_SECURITY": "none", "MONITOR_SMTP_FROM": "monitor@example.org"}
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    with daemon(tmp_path, config, db, "--digest-retry", "1", env=env) as d:
        failed = wait_for(lambda: rows(db, "SELECT attempts, last_error FROM digest_pending "
                                           "WHERE attempts > 0"), 15, "a failed send recorded")
        assert "cannot connect" in failed[0][1]
        assert status(str(db))["pending_digests"][0]["digest_id"] == "desk"
        d.wait_log("digest desk not sent (attempt 1)")
        controller.start()
        try:
            wait_for(lambda: inbox.messages, 15, "the digest in the mailbox")
            wait_for(lambda: not rows(db, "SELECT 1 FROM digest_pending"), 10,
                     "the pending digest cleared")
        finally:
            controller.stop()
        assert d.stop() == 0
    message = inbox.messages[0]
    assert message["To"] == "desk@example.org"
    body = message.get_body(preferencelist=("plain",)).get_content()
    hit_titles = [r[0] for r in rows(db, "SELECT DISTINCT i.title FROM hits h "
                                         "JOIN items i ON i.id = h.item_id")]
    assert hit_titles and any(t in body for t in hit_titles), body[:2000]
    assert rows(db, "SELECT count(*) > 0 FROM digests WHERE name = 'desk' AND sent_at IS NOT NULL")\
        == [(1,)]


def test_sighup_with_a_broken_config_keeps_running_and_polling(tmp_path, server):
    config = write_config(tmp_path / "feeds.yaml", feed_list(server, ["kz-news"]), settings=FAST)
    good = config.read_text(encoding="utf-8")
    db = tmp_path / "monitor.db"
    with daemon(tmp_path, config, db) as d:
        wait_for(lambda: polled(db, "kz-news"), 15, "the first poll")
        config.write_text(good + "\nfeeds: [\n", encoding="utf-8")  # not YAML any more
        d.signal(signal.SIGHUP)
        d.wait_log("reload refused, keeping the running configuration")
        assert d.alive()
        assert "not valid YAML" in status(str(db))["daemon"]["last_reload_error"]

        add_strike(server)
        wait_for(lambda: strike_items(db), 10, "the new item with the old configuration")

        data = yaml.safe_load(good)
        data["feeds"] += feed_list(server, ["aljazeera"])
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        d.signal(signal.SIGHUP)
        wait_for(lambda: polled(db, "aljazeera"), 15, "the feed added by the reload")
        d.wait_log("configuration reloaded: 2 feeds")
        assert status(str(db))["daemon"]["last_reload_error"] is None
        assert d.stop() == 0


def test_sighup_with_an_alias_bomb_is_refused_and_polling_goes_on(tmp_path, server):
    config = write_config(tmp_path / "feeds.yaml", feed_list(server, ["kz-news"]), settings=FAST)
    good = config.read_text(encoding="utf-8")
    db = tmp_path / "monitor.db"
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = "\n".join(levels) + "\n" + good.replace("feeds:\n", "feeds:\n- tags: *a9\n  id: x\n", 1)
    with daemon(tmp_path, config, db) as d:
        wait_for(lambda: polled(db, "kz-news"), 15, "the first poll")
        config.write_text(bomb, encoding="utf-8")
        d.signal(signal.SIGHUP)
        d.wait_log("reload refused, keeping the running configuration")
        assert d.alive()
        assert "alias" in status(str(db))["daemon"]["last_reload_error"]
        shown = subprocess.run([sys.executable, "-m", "monitor", "--db", str(db), "status"],
                               capture_output=True, text=True, timeout=30, env=child_env(),
                               cwd=tmp_path)
        assert "last reload refused" in shown.stdout and "alias" in shown.stdout, shown.stdout

        add_strike(server)
        wait_for(lambda: strike_items(db), 10, "the new item with the old configuration")
        assert d.stop() == 0


# --- the parts, in process -----------------------------------------------------------------

def test_cron_weekdays_follow_crontab_and_seconds_are_optional():
    monday = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def fires(expr: str, start: datetime, n: int = 5) -> list[str]:
        trigger, out, t = cron.cron_trigger(expr, UTC), [], start
        for _ in range(n):
            t = trigger.get_next_fire_time(None, t + timedelta(seconds=1))
            out.append(t.strftime("%a %H:%M:%S"))
        return out

    assert fires("0 7 * * 1-5", monday) == ["Tue 07:00:00", "Wed 07:00:00", "Thu 07:00:00",
                                             "Fri 07:00:00", "Mon 07:00:00"]
    assert fires("30 6 * * 0", monday, 1) == ["Sun 06:30:00"]  # 0 is Sunday, as in crontab
    assert fires("0 9 * * 7", monday, 1) == ["Sun 09:00:00"]
    assert fires("*/20 * * * * *", monday, 3) == ["Mon 08:00:20", "Mon 08:00:40", "Mon 08:01:00"]
    assert cron.weekdays("*/2") == "sun,tue,thu,sat" and cron.weekdays("1-7") == "*"
    for bad in ("0 7 * *", "0 7 * * 8", "0 7 * * 5-1", "61 * * * *", "0 7 * * mon-"):
        with pytest.raises(ValueError):
            cron.cron_trigger(bad)
    base = "digests:\n  - id: d\n    schedule: '{}'\n"
    assert parse_config(base.format("*/5 * * * * *")).digests[0].schedule == "*/5 * * * * *"
    with pytest.raises(ConfigError, match="schedule"):
        parse_config(base.format("0 7 * * 9"))


def _entry(key: str, title: str) -> Entry:
    return Entry(key=key, title=title, summary=f"{title} summary", url=f"https://e.org/{key}",
                 published_at=datetime(2026, 1, 1, tzinfo=UTC), content_hash=key)


def test_prune_keeps_hits_their_items_and_recent_items_and_fts_stays_consistent(tmp_path):
    db = tmp_path / "monitor.db"
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=5)
    with Store(db) as store:
        store.sync_feeds([FeedConfig(id="f", url="https://e.org/feed", name="f")], now)
        store.sync_topics([Topic(id="t", name="t", query="x", fts_query="x")], now)
        for when, prefix in ((old, "old"), (recent, "new")):
            entries = [_entry(f"{prefix}-{i}", f"{prefix}word item {i}") for i in range(5)]
            hits = [Hit("t", f"{prefix}-0", ("x",), "x")]
            store.commit_polls([PollWrite(FeedUpdate(feed_id="f", fetched_at=when, outcome="new",
                                                     next_due_at=when), new=entries, hits=hits)])
        assert store.prune(30 * 86400, now, batch=2) == 4  # old-1..old-4, in batches of 2
        keys = {r["key"] for r in store.query("SELECT key FROM items")}
        assert keys == {"old-0"} | {f"new-{i}" for i in range(5)}
        assert store.query("SELECT count(*) AS n FROM hits")[0]["n"] == 2
        found = store.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'oldword'")
        assert len(found) == 1
        store.conn.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
        assert store.optimize_fts() is True
        assert store.checkpoint(min_wal_bytes=1 << 40) is None  # far below the threshold
        busy, _, _ = store.checkpoint() or (1, 0, 0)
        assert busy == 0 and store.wal_bytes() == 0
        assert store.prune(30 * 86400, now) == 0


def test_maintenance_records_what_it_did_and_missed_digests_are_queued(tmp_path):
    config = write_config(tmp_path / "feeds.yaml", [], topics=False, digests=[
        {"id": "morning", "schedule": "0 7 * * *", "format": "text",
         "output_dir": str(tmp_path / "out")}])
    db = tmp_path / "monitor.db"
    with pytest.raises(StorageError, match="no database"):
        status(str(db))
    d = Daemon(str(config), str(db))
    d.maintain()
    info = status(str(db))
    assert info["state"] == "never started" and info["daemon"]["last_pruned"] == 0
    assert info["daemon"]["last_optimize_at"] is not None
    # A digest last sent two days ago: its run of yesterday was missed while stopped.
    now = datetime.now(UTC)
    with Store(db) as store:
        with store.write() as w:
            w.table("digests").insert({"name": "morning", "since": to_iso(now - timedelta(3)),
                                       "until": to_iso(now - timedelta(2)),
                                       "generated_at": to_iso(now - timedelta(2))})
        d._catch_up_digests(now)
        pending = store.digest_pending("morning")
    assert pending is not None and pending["last_error"] == "missed while the daemon was stopped"
    d.run_digest("morning", retry=True)  # what the retry job does next
    assert list((tmp_path / "out").iterdir())
    assert status(str(db))["pending_digests"] == []


def test_a_feed_whose_poll_cannot_be_committed_is_not_fetched_again_every_tick(tmp_path, server):
    feeds = feed_list(server, ["dw-en"], interval="1h") + feed_list(server, ["kz-news"],
                                                                    interval="1s")
    config = write_config(tmp_path / "feeds.yaml", feeds, settings=FAST)
    db = tmp_path / "monitor.db"
    with Store(db) as store:
        store.sync_feeds(parse_config(config.read_text(encoding="utf-8")).feeds, datetime.now(UTC))
    # The database refuses dw-en's poll, as a full disk would: it stays due there.
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON fetches WHEN NEW.feed_id = 'dw-en' "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    with daemon(tmp_path, config, db) as d:
        wait_for(lambda: server.count("/kz-news") >= 3, 20, "several cycles of the fast feed")
        assert d.stop() == 0
    # Held in memory until its next due time (an hour away), not fetched at every tick.
    assert server.count("/dw-en") == 1
    assert rows(db, "SELECT last_success_at FROM feeds WHERE id = 'dw-en'") == [(None,)]


def test_overlap_warning_of_a_tick_paced_job_is_quiet_and_others_are_not():
    """APScheduler's 'maximum number of running instances' for a job run at
    the tick (a digest retry still waiting on the poll's write) is expected
    and not logged; for another job it is."""
    import logging

    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.daemon import _QuietOverlap

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    handler.addFilter(_QuietOverlap())
    logger = logging.getLogger("apscheduler")
    logger.addHandler(handler)
    release = threading.Event()
    scheduler = BackgroundScheduler()
    try:
        for job_id in ("digest-retries", "maintenance"):
            scheduler.add_job(release.wait, "interval", args=[5], id=job_id, name=job_id,
                              seconds=0.05, next_run_time=datetime.now(UTC))
        scheduler.start()
        deadline = time.monotonic() + 5
        while not any("maintenance" in m for m in seen) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        release.set()
        scheduler.shutdown(wait=True)
        logger.removeHandler(handler)
    overlaps = [m for m in seen if "maximum number of running instances" in m]
    assert overlaps and all('"maintenance' in m for m in overlaps), seen
