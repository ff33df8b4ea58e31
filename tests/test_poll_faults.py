"""A whole poll over healthy real feeds and one feed per fault kind, through
the real CLI in a subprocess (so its peak memory can be measured), then what
the next polls send: nothing to a feed not due, conditional requests to the
feeds that gave validators, nothing to a disabled or rate-limited feed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import (  # noqa: F401 - closed_port is a fixture
    FaultServer,
    closed_port,
    empty,
    gzip_bomb,
    length_lie,
    never_reply,
    redirect,
    static,
    status,
)
from helpers import DATA, ROOT, run_cli, write_config

TIMEOUT = 2.0
REAL = sorted((DATA / "feeds").glob("*.x*")) + sorted((DATA / "parse" / "real").glob("*"))
HEALTHY = 50


def healthy_bodies() -> list[bytes]:
    bodies = [p.read_bytes() for p in REAL if p.is_file()]
    return [bodies[i % len(bodies)] for i in range(HEALTHY)]


FAULTS = {
    "f-timeout": (never_reply, "timeout"),
    "f-http-status": (status(404, body=b"missing"), "http-status"),
    "f-not-a-feed": (static(b"<!DOCTYPE html><html><body>Hi</body></html>",
                            content_type="text/html"), "not-a-feed"),
    "f-too-large": (gzip_bomb(), "too-large"),
    "f-rate-limited": (status(429, [("Retry-After", "3600")]), "rate-limited"),
    "f-gone": (status(410), "gone"),
    "f-empty": (empty(content_length=True), "empty"),
    "f-protocol": (length_lie(), "protocol"),
    "f-redirect": (redirect(302, "/f-redirect"), "redirect"),
    "f-parse": (static(b"\x00\x01\x02 this is not xml at all \xff\xfe",
                       content_type="application/rss+xml"), None),
}


@pytest.fixture
def farm(tmp_path: Path, closed_port: int) -> Iterator[tuple[FaultServer, Path, Path]]:  # noqa: F811
    with FaultServer() as server:
        feeds = []
        for i, body in enumerate(healthy_bodies()):
            server.route(f"/ok-{i}", static(body, etag=f'"ok-{i}"',
                                            last_modified="Mon, 05 Jan 2026 10:00:00 GMT"))
            feeds.append({"id": f"ok-{i}", "name": f"ok {i}", "url": server.url(f"/ok-{i}")})
        for feed_id, (handler, _) in FAULTS.items():
            server.route(f"/{feed_id}", handler)
            feeds.append({"id": feed_id, "name": feed_id, "url": server.url(f"/{feed_id}")})
        feeds.append({"id": "f-refused", "name": "refused",
                      "url": f"http://127.0.0.1:{closed_port}/feed"})
        config = write_config(tmp_path / "feeds.yaml", feeds, settings={
            "timeout": f"{TIMEOUT}s", "connect_timeout": "1s", "max_bytes": "2MB",
            "concurrency": 20, "interval": "15m"})
        yield server, config, tmp_path / "m.db"


def peak_rss_of(cmd: list[str]) -> tuple[bytes, int]:
    """Run cmd; (stdout, its peak RSS in MB) read from /proc/PID/status VmHWM while it
    runs. Not rusage: on Linux a child's ru_maxrss also counts the high-water mark of
    the process it was forked from (this pytest worker, hundreds of MB by then)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    peak_kb = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        time.sleep(0.01)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    assert proc.returncode == 0
    return b"".join(chunks), peak_kb // 1024


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass  # gone, or a zombie without memory
    return 0


def test_one_poll_over_healthy_and_faulty_feeds(farm):
    server, config, db = farm
    t0 = time.monotonic()
    out, peak_mb = peak_rss_of([sys.executable, "-m", "monitor", "--config", str(config),
                                "--db", str(db), "poll", "--force", "--json"])
    wall = time.monotonic() - t0
    summary = json.loads(out)
    by_id = {f["id"]: f for f in summary["feeds"]}
    assert len(by_id) == HEALTHY + len(FAULTS) + 1
    for i in range(HEALTHY):
        assert by_id[f"ok-{i}"]["status"] == "new", by_id[f"ok-{i}"]
    for feed_id, (_, kind) in FAULTS.items():
        error = by_id[feed_id]["error"]
        assert error is not None and error["reason"], feed_id
        if kind:
            assert error["kind"] == kind, (feed_id, error)
    assert by_id["f-refused"]["error"]["kind"] == "refused"
    # Deadline: the hung feed is cut at the timeout, so the whole cycle is bounded
    # by it plus start-up and parsing, not by the slowest server.
    assert wall < TIMEOUT * 3 + 20, wall
    assert peak_mb < 200, f"peak RSS {peak_mb} MB with a 1 GiB gzip bomb in the cycle"

    conn = sqlite3.connect(db)
    kinds = dict(conn.execute("SELECT id, last_error_kind FROM feeds WHERE last_error_kind "
                              "IS NOT NULL"))
    assert set(kinds) == set(FAULTS) | {"f-refused"}
    assert conn.execute("SELECT disabled_reason FROM feeds WHERE id = 'f-gone'").fetchone()[0]
    items = conn.execute("SELECT count(DISTINCT feed_id) FROM items").fetchone()[0]
    assert items == HEALTHY

    # An immediate second poll: nothing is due, no request at all.
    before = {path: server.count(path) for path in list(server_paths(server))}
    result = run_cli("poll", "--json", config=config, db=db)
    assert json.loads(result.stdout)["feeds_polled"] == 0
    assert {path: server.count(path) for path in before} == before

    # Forced: conditional requests to every feed that gave validators, none to the
    # disabled feed nor to the one whose Retry-After has not passed.
    result = run_cli("poll", "--force", "--json", config=config, db=db)
    again = {f["id"]: f for f in json.loads(result.stdout)["feeds"]}
    assert "f-gone" not in again and "f-rate-limited" not in again
    assert server.count("/f-gone") == 1 and server.count("/f-rate-limited") == 1
    for i in range(HEALTHY):
        assert again[f"ok-{i}"]["status"] == "not-modified"
        last = server.requests_to(f"/ok-{i}")[-1]
        assert last.header("if-none-match") == f'"ok-{i}"'.encode()
        assert last.header("if-modified-since") == b"Mon, 05 Jan 2026 10:00:00 GMT"


def server_paths(server: FaultServer) -> list[str]:
    return [f"/ok-{i}" for i in range(HEALTHY)] + [f"/{f}" for f in FAULTS]


def test_permanent_move_is_adopted_after_three_polls_temporary_never(tmp_path: Path):
    body = (DATA / "feeds" / "kz-news.xml").read_bytes()
    with FaultServer() as server:
        server.route("/old", redirect(301, "/new"))
        server.route("/new", static(body))
        server.route("/temp", redirect(307, "/new2"))
        server.route("/new2", static(body))
        config = write_config(tmp_path / "feeds.yaml", [
            {"id": "moved", "name": "moved", "url": server.url("/old")},
            {"id": "temp", "name": "temp", "url": server.url("/temp")}])
        db = tmp_path / "m.db"
        conn = sqlite3.connect(db)
        urls = []
        for _ in range(3):
            assert run_cli("poll", "--force", config=config, db=db).exit_code == 0
            urls.append(dict(conn.execute("SELECT id, url FROM feeds")))
        assert urls[0]["moved"] == urls[1]["moved"] == server.url("/old")
        assert urls[2]["moved"] == server.url("/new")
        assert all(u["temp"] == server.url("/temp") for u in urls)
        assert server.count("/old") == 3
        run_cli("poll", "--force", config=config, db=db)
        assert server.count("/old") == 3  # the fourth poll went straight to /new
        assert conn.execute("SELECT count(*) FROM items WHERE feed_id = 'moved'").fetchone()[0]


def test_failures_back_off_and_success_resets(tmp_path: Path):
    body = (DATA / "feeds" / "kz-news.xml").read_bytes()
    flaky = {"n": 0}

    def handler(ex):  # 500 three times, then the feed
        flaky["n"] += 1
        (status(500) if flaky["n"] <= 3 else static(body))(ex)

    with FaultServer() as server:
        server.route("/flaky", handler)
        config = write_config(tmp_path / "feeds.yaml",
                              [{"id": "flaky", "name": "flaky", "url": server.url("/flaky")}],
                              settings={"interval": "10m"})
        db = tmp_path / "m.db"
        conn = sqlite3.connect(db)
        delays = []
        for _ in range(3):
            run_cli("poll", "--force", config=config, db=db)
            row = conn.execute("SELECT error_count, last_fetch_at, next_due_at, last_error "
                               "FROM feeds").fetchone()
            delays.append((row[0], _seconds(row[2]) - _seconds(row[1])))
            assert "500" in row[3]
        assert [d[0] for d in delays] == [1, 2, 3]
        assert delays[0][1] < delays[1][1] < delays[2][1]
        assert delays[2][1] >= 4 * 600
        run_cli("poll", "--force", config=config, db=db)
        row = conn.execute("SELECT error_count, last_error, failing_since FROM feeds").fetchone()
        assert row == (0, None, None)


def _seconds(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
