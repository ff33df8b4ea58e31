"""Bounded work per feed: hostile fields are capped before super-linear code,
a parse that overruns settings.parse_timeout is killed (kind parse-timeout),
entries beyond max_items_per_feed are never parsed, and a feed cannot store
more than max_items_per_day items a day."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.parsepool import ParsePool
from monitor.types import FetchResult
from tests.feedserver import FeedServer
from tests.helpers import DATA, ROOT, run_cli, write_config
from tests.test_poll_faults import peak_rss_of

AT = datetime(2026, 3, 10, tzinfo=UTC)
RSS = "application/rss+xml; charset=utf-8"


def rss(items: list[str], title: str = "Hostile") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{title}</title>{''.join(items)}</channel></rss>").encode()


def item(key: str, *, author: str | None = None, summary: str = "A normal summary.") -> str:
    who = f"<author>{author}</author>" if author is not None else ""
    return (f"<item><title>Story {key}</title><link>http://x.invalid/{key}</link>"
            f"<guid>{key}</guid>{who}<description>{summary}</description></item>")


AUTHOR_BOMB = "a" * 60_000  # 13 s in the author/e-mail regex before the cap
MARKUP_BOMB = "&lt;a" * 64_000  # 12 s in html.parser before the crude reading


def poll_subprocess(config: Path, db: Path, timeout: float) -> dict[str, dict[str, object]]:
    """`monitor poll --force --json` in a child process that must end within timeout."""
    done = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "--db",
                           str(db), "poll", "--force", "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {f["id"]: f for f in json.loads(done.stdout)["feeds"]}


def test_hostile_fields_cost_milliseconds_through_the_real_cli(
        tmp_path: Path, server: FeedServer) -> None:
    normal = [item(f"n{i}") for i in range(3)]
    feeds = {
        "author-bomb": rss([item("a1", author=AUTHOR_BOMB), *normal]),
        "markup-bomb": rss([item("m1", summary=MARKUP_BOMB), *normal]),
        # About 960 KB: three such items and a few normal ones, parsed in a
        # worker process (too large for the ingest thread under the budget).
        "both": rss([item("b1", author=AUTHOR_BOMB), item("b2", summary=MARKUP_BOMB),
                     item("b3", summary=MARKUP_BOMB + MARKUP_BOMB), *normal]),
    }
    for name, body in feeds.items():
        server.put(f"/{name}.xml", body, RSS)
    server.put("/bbc.xml", (DATA / "feeds" / "bbc-world.xml").read_bytes(), RSS)
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": name, "url": server.url(f"/{name}.xml"), "name": name}
        for name in [*feeds, "bbc"]], topics=False, settings={"timeout": "5s"})
    db = tmp_path / "m.db"
    # Before the caps this poll took over a minute (34 s for the 960 KB feed alone).
    by_id = poll_subprocess(config, db, timeout=30)
    assert by_id["bbc"]["status"] == "new"
    conn = sqlite3.connect(db)
    for name in feeds:
        result = by_id[name]
        if result["status"] == "failed":
            assert result["error"]["kind"] == "parse-timeout", result  # type: ignore[index]
            continue
        assert result["status"] == "new", result
        rows = conn.execute("SELECT key, length(author), length(summary) FROM items "
                            "WHERE feed_id = ?", (name,)).fetchall()
        assert {"n0", "n1", "n2"} <= {key for key, _, _ in rows}
        assert all((author or 0) <= 1000 and summary <= 10_000 for _, author, summary in rows)
    assert conn.execute("SELECT count(*) FROM items WHERE feed_id = 'bbc'").fetchone()[0] > 0


def _slow_body(items: int) -> bytes:
    """Legitimately slow: not well-formed (a bare "&"), so feedparser parses it all."""
    return rss([f"<item><title>Story {i} & more</title><guid>id-{i}</guid><description>"
                f"{'Words about Kazakhstan and the OSCE. ' * 40}</description></item>"
                for i in range(items)])


def _fetched(name: str, body: bytes) -> FetchResult:
    url = f"http://127.0.0.1/{name}"
    return FetchResult(feed_id=name, url=url, final_url=url, fetched_at=AT, duration=0.0,
                       status=200, body=body, headers=(("content-type", RSS),))


def _gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_a_parse_over_the_budget_fails_parse_timeout_and_its_worker_is_killed() -> None:
    small = _fetched("small.xml", rss([item("s1")]))
    slow = _fetched("slow.xml", _slow_body(1000))

    async def scenario(pool: ParsePool) -> tuple[list[int], ParseError, int]:
        assert (await pool.parse(small, max_items=1000, timeout=10)).entries
        before = pool.pids()
        with pytest.raises(ParseError) as caught:
            await pool.parse(slow, max_items=1000, timeout=0.05)
        # The pool works again afterwards, in a new process.
        parsed = await pool.parse(small, max_items=1000, timeout=10)
        return before, caught.value, len(parsed.entries)

    with ParsePool(1) as pool:
        before, error, entries = asyncio.run(scenario(pool))
        assert error.kind == "parse-timeout"
        assert "parse_timeout" in error.message
        assert before and all(_gone(pid) for pid in before)
        assert entries == 1
        assert not set(before) & set(pool.pids())
    # The same body parses fine without a budget: the timeout, not the body, failed it.
    assert len(parse_feed(slow.body or b"", url=slow.final_url, headers=slow.headers,
                          fetched_at=AT).entries) == 1000


def test_parse_timeout_is_validated_like_the_other_durations(tmp_path: Path) -> None:
    config = write_config(tmp_path / "feeds.yaml", [], topics=False,
                          settings={"parse_timeout": "0s"})
    result = run_cli("check", config=config, db=tmp_path / "m.db")
    assert result.exit_code == 2
    assert "settings.parse_timeout" in result.output
    assert "duration must be positive" in result.output


def test_entries_past_the_cap_are_never_parsed(tmp_path: Path, server: FeedServer) -> None:
    # 200,000 entries (6.8 MB); the last ones carry a bare "&", which would
    # make the whole document malformed if anything read that far.
    entries = [f"<item><guid>g{i}</guid></item>" for i in range(200_000)]
    entries[-10:] = [f"<item><guid>g{i}</guid><title>a & b</title></item>"
                     for i in range(200_000 - 10, 200_000)]
    body = rss(entries, title="Many")
    parsed = parse_feed(body, url="http://x.invalid/", headers={"content-type": RSS},
                        fetched_at=AT, max_items=50)
    assert [e.key for e in parsed.entries] == [f"g{i}" for i in range(50)]
    assert parsed.bozo_reason is None  # the malformed tail was never read
    server.put("/many.xml", body, RSS)
    config = write_config(tmp_path / "feeds.yaml",
                          [{"id": "many", "url": server.url("/many.xml"), "name": "many"}],
                          topics=False, settings={"max_items_per_feed": 50})
    db = tmp_path / "m.db"
    out, peak_mb = peak_rss_of([sys.executable, "-m", "monitor", "--config", str(config),
                                "--db", str(db), "poll", "--force", "--json"])
    assert json.loads(out)["new_items"] == 50
    assert sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0] == 50
    # Reading every entry first took 194 MB here (77 MB with the cut).
    assert peak_mb < 150, peak_mb


def test_a_feed_over_its_daily_quota_is_skipped_flagged_and_read_again_later(
        tmp_path: Path, server: FeedServer) -> None:
    fresh = iter(range(10_000))
    def publish() -> None:
        server.put("/flood.xml", rss([item(f"f{next(fresh)}") for _ in range(10)]), RSS)

    feeds = [{"id": "flood", "url": server.url("/flood.xml"), "name": "flood"},
             # its own quota: 33 items at once
             {"id": "bbc", "url": server.url("/bbc.xml"), "name": "bbc",
              "max_items_per_day": 100}]
    server.put("/bbc.xml", (DATA / "feeds" / "bbc-world.xml").read_bytes(), RSS)
    config = write_config(tmp_path / "feeds.yaml", feeds, topics=False,
                          settings={"max_items_per_day": 25})
    db = tmp_path / "m.db"
    skipped = []
    for _ in range(4):
        publish()
        result = run_cli("poll", "--force", "--json", config=config, db=db)
        assert result.exit_code == 0, result.output
        by_id = {f["id"]: f for f in json.loads(result.stdout)["feeds"]}
        skipped.append(by_id["flood"]["quota_skipped"])
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT count(*) FROM items WHERE feed_id = 'flood'").fetchone()[0]
    assert stored == 25
    assert skipped == [0, 0, 5, 10]
    # The other feed is not held by the flood's quota.
    assert conn.execute("SELECT count(*) FROM items WHERE feed_id = 'bbc'").fetchone()[0] > 25

    table = run_cli("feeds", config=config, db=db)
    flood = [line for line in table.output.splitlines() if "flood" in line]
    # The table wraps its last column at 80 characters: the note starts on the row.
    assert flood and "over quota" in flood[0] and "quota:" in flood[0]
    assert "skipped" in table.output
    rows = {r["id"]: r for r in json.loads(run_cli("feeds", "--json", config=config,
                                                   db=db).stdout)["feeds"]}
    assert rows["flood"]["quota"] == ("quota: skipped 10 new items at the last poll "
                                      "(limit 25/day)")
    assert rows["bbc"]["quota"] is None

    # A day later the same body (same ETag, same hash) is read again and
    # the items skipped are stored, as far as the quota has room.
    with conn:
        conn.execute("UPDATE items SET fetched_at = '2000-01-01T00:00:00Z'")
    result = run_cli("poll", "--force", "--json", config=config, db=db)
    by_id = {f["id"]: f for f in json.loads(result.stdout)["feeds"]}
    assert by_id["flood"]["status"] == "new" and by_id["flood"]["new_items"] == 10
    stored = conn.execute("SELECT count(*) FROM items WHERE feed_id = 'flood'").fetchone()[0]
    assert stored == 35
    rows = {r["id"]: r for r in json.loads(run_cli("feeds", "--json", config=config,
                                                   db=db).stdout)["feeds"]}
    assert rows["flood"]["quota"] is None


def test_the_quota_count_uses_an_index(tmp_path: Path) -> None:
    from monitor.store import Store

    with Store(tmp_path / "m.db") as store:
        plan = store.query("EXPLAIN QUERY PLAN SELECT count(*) FROM items "
                           "WHERE feed_id = ? AND fetched_at >= ?", ["f", "2026"])
    detail = " ".join(str(r["detail"]) for r in plan)
    assert "(feed_id=? AND fetched_at>?)" in detail, detail
