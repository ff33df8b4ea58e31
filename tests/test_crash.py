"""Crash safety: kill -9 at random moments of a real poll, a full disk, a
corrupted database file, a suspended daemon (DESIGN.md "Reliability rules";
catalogue S1-S3, S5, N14, C8, C9).

The poller is the real CLI (`python -m monitor poll --force`) in a child
process, fed by tests/feedserver.py serving real feeds whose content changes
every round (tests/killharness.py). After every kill the database must pass
every invariant of ``killharness.check_database``; the next poll must finish
the work. ``MONITOR_KILL_ROUNDS`` (default 20) sets the number of kills, e.g.
``MONITOR_KILL_ROUNDS=100 pytest tests/test_crash.py -k kill``;
``MONITOR_KILL_SEED`` replays a failing run.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from feedserver import FeedServer
from helpers import ROOT, run_cli
from killharness import (
    NO_TTL,
    Farm,
    check_database,
    child_env,
    load,
    missing_current_items,
    poll_and_kill,
    poll_command,
    run_poll,
)

ROUNDS = int(os.environ.get("MONITOR_KILL_ROUNDS", "20"))
SEED = int(os.environ.get("MONITOR_KILL_SEED", str(random.randrange(1 << 30))))


def has_schema(db: Path) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        return bool(conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'hits'")
                    .fetchone()[0])
    finally:
        conn.close()


def last_commits(db: Path) -> dict[str, int]:
    """Per feed, the id of its newest fetch log row: written in each feed's
    poll transaction, so a change means that feed committed."""
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT feed_id, max(id) FROM fetches GROUP BY feed_id"))
    finally:
        conn.close()


# --- S1, S2, N14: kill -9 -------------------------------------------------------------------

def test_kill_9_at_random_moments_leaves_a_consistent_database(tmp_path, server):
    """ROUNDS kills of a forced poll over 28 changing real feeds, a few while
    another connection holds a long read transaction; after each: integrity,
    foreign keys, FTS, no duplicates, hits = what the topics imply, validators
    only with their items. Then one poll completes the work."""
    rng = random.Random(SEED)
    farm = Farm(server, rng=rng)
    config_path = farm.config(tmp_path / "feeds.yaml")
    config = load(config_path)
    db = tmp_path / "m.db"
    note = f"(MONITOR_KILL_SEED={SEED})"

    # Round 0: killed while creating the database and applying migrations.
    first = poll_and_kill(config_path, db, rng.uniform(0.5, 1.0))
    if has_schema(db):
        check_database(db, config, farm)
    # A clean poll, timed: the kills below land in [0.45, 1.05] x its duration,
    # start-up included, so most of them hit ingestion.
    t0 = time.monotonic()
    done = run_poll(config_path, db)
    full = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    check_database(db, config, farm)

    kills_mid_poll = 0
    committed = last_commits(db)
    for rnd in range(ROUNDS):
        farm.advance()
        reader = None
        if rnd % 4 == 3:  # S2: a reader holding a snapshot while the writer is killed
            reader = sqlite3.connect(db, isolation_level=None)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM items").fetchone()
        # Half the kills at a random time, half right after a random feed's commit.
        mid = rng.randint(1, len(farm.feeds) - 1) if rnd % 2 else None
        outcome = poll_and_kill(config_path, db, rng.uniform(0.45, 1.05) * full, mid)
        if reader is not None:
            reader.execute("COMMIT")
            reader.close()
        assert outcome.finished or outcome.returncode == -signal.SIGKILL, outcome
        if outcome.finished:
            assert outcome.returncode == 0, outcome.stderr
        assert "Traceback" not in outcome.stderr, outcome.stderr
        try:
            check_database(db, config, farm)
        except AssertionError as exc:
            raise AssertionError(f"round {rnd} (kill after {outcome.delay:.2f}s) {note}: "
                                 f"{exc}") from None
        now_committed = last_commits(db)
        fed = sum(1 for f, last in now_committed.items() if committed.get(f) != last)
        if not outcome.finished and 0 < fed < len(farm.feeds):
            kills_mid_poll += 1  # some feeds of this poll committed, not all
        committed = now_committed

    # The next poll completes the work: every item served now is stored.
    done = run_poll(config_path, db)
    assert done.returncode == 0, done.stderr
    check_database(db, config, farm)
    assert missing_current_items(db, farm) == {}, note
    # The kills did land mid-ingestion, between the feeds' commits.
    assert kills_mid_poll >= ROUNDS // 5, (kills_mid_poll, note)
    print(f"{ROUNDS} kills, {kills_mid_poll} mid-ingestion, round 0 "
          f"{'finished' if first.finished else 'killed'}, poll {full:.2f}s {note}")


# --- S3: disk full --------------------------------------------------------------------------

def file_size_limit(limit: int) -> Callable[[], None]:
    """For preexec_fn: writes past ``limit`` bytes of any file fail with EFBIG
    (SIGXFSZ ignored, so the process lives). Only the soft limit is lowered,
    so the parent can raise it again with prlimit."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def small_database(tmp_path: Path, server: FeedServer) -> tuple[Farm, Path, Path]:
    # No <ttl> in these feeds: every one is due again 2 s after a poll.
    farm = Farm(server, n_feeds=8, rng=random.Random(7), sources=NO_TTL)
    config = farm.config(tmp_path / "feeds.yaml", interval="2s", min_interval="1s")
    db = tmp_path / "m.db"
    first = subprocess.run(poll_command(config, db, "--feed", farm.feeds[3].id),
                           capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=60)
    assert first.returncode == 0, first.stderr
    return farm, config, db


def feed_states(db: Path) -> dict[str, tuple[str | None, int]]:
    """Each stored feed's ETag and item count."""
    conn = sqlite3.connect(db)
    try:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT id, etag, (SELECT count(*) FROM items WHERE feed_id = feeds.id) FROM feeds")}
    finally:
        conn.close()


def test_disk_full_rolls_back_the_feed_reports_it_and_a_later_poll_recovers(tmp_path, server):
    import json

    farm, config, db = small_database(tmp_path, server)
    before = check_database(db, load(config), farm)
    kept = feed_states(db)
    limit = db.stat().st_size + 64 * 1024
    proc = subprocess.run(poll_command(config, db), capture_output=True, text=True, cwd=ROOT,
                          env=child_env(), timeout=60, preexec_fn=file_size_limit(limit))
    # The poll carries on past the failed feeds and exits cleanly with the reasons.
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["feeds_polled"] == len(farm.feeds)
    failed = [f for f in summary["feeds"] if f["error"] and f["error"]["kind"] == "storage"]
    assert failed, summary
    for f in failed:
        assert "disk full" in f["error"]["reason"] or "file size limit" in f["error"]["reason"]
        assert f["new_items"] == 0
    assert "disk full" in proc.stderr
    # Rolled back: the failed feeds have neither items nor validators from this
    # poll. The one feed polled before (whose farm copy may have changed since)
    # keeps what that poll stored.
    after = check_database(db, load(config), farm)
    now = feed_states(db)
    for f in failed:
        assert now[f["id"]] == kept.get(f["id"], (None, 0)), f
    assert after["items"] >= before["items"]
    # Space again: the next poll stores everything.
    again = run_poll(config, db)
    assert again.returncode == 0, again.stderr
    check_database(db, load(config), farm)
    assert missing_current_items(db, farm) == {}


def last_tick(db: Path) -> str | None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT last_tick_at FROM daemon WHERE id = 1").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def test_disk_full_daemon_keeps_running_and_recovers_when_space_returns(tmp_path, server):
    """S3 and C8 on one running daemon, its file size limit moved with prlimit:
    first a little room (the big feeds' commits fail, each rolled back and
    logged, and those feeds are not fetched again at every tick), then none
    (the poll job itself fails at its heartbeat: logged, the scheduler ticks
    on), then space again: everything is stored, SIGTERM exits 0."""
    farm, config, db = small_database(tmp_path, server)
    limit = db.stat().st_size + 64 * 1024
    # stderr to a pipe, not a file: a log file would hit the same size limit.
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run",
         "--tick", "0.3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=child_env(), preexec_fn=file_size_limit(limit))
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: any("disk full" in line for line in lines), 20, "a disk-full error",
                 lines)
        before = {f.id: server.count(f.path) for f in farm.feeds}
        time.sleep(2.5)  # about eight ticks while the disk is full
        assert proc.poll() is None, "".join(lines)
        # The failed feeds keep the schedule their lost transaction would have
        # saved (interval 2 s): not fetched again at every 0.3 s tick.
        more = {f.id: server.count(f.path) - before[f.id] for f in farm.feeds}
        assert max(more.values()) <= 2, more
        # C8: no room at all; the job raises, the daemon logs it and goes on.
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        n0 = len(lines)
        wait_for(lambda: sum("ERROR monitor.daemon" in line and "disk full" in line
                             for line in lines[n0:]) >= 3, 20, "three failed ticks logged",
                 lines)
        assert proc.poll() is None, "".join(lines)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wait_for(lambda: (last_tick(db) or "") > since, 20, "a tick recorded again", lines)
        wait_for(lambda: not missing_current_items(db, farm), 30,
                 "every item stored once space is back", lines)
        assert proc.poll() is None, "".join(lines)
    finally:
        code = terminate(proc)
    assert code == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
    check_database(db, load(config), farm)

def terminate(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, and the exit code within 15 s (killed and raised otherwise)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(check: Callable[[], object], timeout: float, what: str,
             log: list[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n"
                                 + "".join((log or [])[-30:]))
        time.sleep(0.1)


# --- S5: corrupted file ---------------------------------------------------------------------

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corrupt(db: Path) -> None:
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):  # every b-tree page header but the first
        data[page * 4096: page * 4096 + 12] = b"\x0d" + b"\xff" * 11
    db.write_bytes(bytes(data))


def test_corrupted_database_every_command_refuses_exit_1_and_file_untouched(tmp_path, server):
    farm = Farm(server, n_feeds=4, rng=random.Random(3))
    config = farm.config(tmp_path / "feeds.yaml")
    db = tmp_path / "m.db"
    assert run_poll(config, db).returncode == 0
    corrupt(db)
    digest, size = sha(db), db.stat().st_size
    for args in (["poll", "--force"], ["feeds"], ["hits"], ["search", "kazakhstan"],
                 ["digest", "--format", "json"]):
        result = run_cli(*args, config=config, db=db)
        assert result.exit_code == 1, (args, result.output)
        assert "corrupt" in result.output and str(db) in result.output, (args, result.output)
        assert "Traceback" not in result.output
    daemon = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run"],
        capture_output=True, text=True, cwd=tmp_path, env=child_env(), timeout=30)
    assert daemon.returncode == 1, daemon.stderr
    assert "corrupt" in daemon.stderr
    # never recreated, never repaired behind the user's back
    assert sha(db) == digest and db.stat().st_size == size
    # Beside them only what the first, healthy poll kept for later starts
    # (configcache, examplecache): read, never written, by the refused commands.
    kept = {"m.db.config.json", "m.db.examples.json"}
    assert sorted(p.name for p in tmp_path.iterdir()
                  if p.name.startswith("m.db") and p.name not in kept) in (
        ["m.db"], ["m.db", "m.db-shm", "m.db-wal"], ["m.db", "m.db.lock"],
        ["m.db", "m.db-shm", "m.db-wal", "m.db.lock"])


def test_sigstop_then_sigcont_coalesces_missed_polls_into_one(tmp_path, server):
    """C9: a daemon suspended for over a feed interval polls each feed once on
    resuming (missed ticks coalesced, none dropped), then keeps its interval."""
    farm, config, db = small_database(tmp_path, server)  # interval 2 s, no <ttl>
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run",
         "--tick", "0.3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=child_env())
    lines: list[str] = []
    assert proc.stderr is not None
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: all(server.count(f.path) >= 2 for f in farm.feeds), 20,
                 "every feed polled twice", lines)
        proc.send_signal(signal.SIGSTOP)
        stopped = {f.id: server.count(f.path) for f in farm.feeds}
        time.sleep(3.0)  # more than one interval: every feed is due at least once
        assert {f.id: server.count(f.path) for f in farm.feeds} == stopped
        proc.send_signal(signal.SIGCONT)
        # Stored due times have second precision, so a feed's next poll comes at
        # least 1 s after the last one: within 0.9 s, once at most (not doubled)...
        time.sleep(0.9)
        burst = {f.id: server.count(f.path) - stopped[f.id] for f in farm.feeds}
        assert max(burst.values()) <= 1, burst
        # ...and every feed is polled soon after resuming (not dropped).
        wait_for(lambda: all(server.count(f.path) > stopped[f.id] for f in farm.feeds), 5,
                 "every feed polled after SIGCONT", lines)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGCONT)
        code = terminate(proc)
    assert code == 0, "".join(lines)
    assert not any(word in line for line in lines for word in
                   ("was missed by", "maximum number of running instances", "Traceback")), lines
