"""monitor.parsepool: bodies parsed in worker processes give exactly what
parse_feed gives in-process, errors keep their kind, and a worker killed
mid-parse loses no feed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.language import with_languages
from monitor.parse import parse_feed
from monitor.parsepool import MIN_FEEDS, ParsePool, worth_a_pool
from monitor.types import FetchResult, ParsedFeed

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
AT = datetime(2026, 3, 10, tzinfo=UTC)
XML = (("content-type", "application/xml"),)


def fetched(name: str, body: bytes) -> FetchResult:
    url = f"http://127.0.0.1/{name}"
    return FetchResult(feed_id=name, url=url, final_url=url, fetched_at=AT, duration=0.0,
                       status=200, body=body, headers=XML)


def bodies() -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in FEEDS.iterdir() if p.suffix != ".md")


async def parse_all(pool: ParsePool, items: list[FetchResult]) -> list[ParsedFeed]:
    return list(await asyncio.gather(*(pool.parse(f, max_items=1000) for f in items)))


def test_workers_give_what_parse_feed_gives() -> None:
    items = [fetched(n, b) for n, b in bodies()]
    assert items
    with ParsePool(2) as pool:
        got = asyncio.run(parse_all(pool, items))
    for f, parsed in zip(items, got, strict=True):
        assert f.body is not None
        assert parsed == parse_feed(f.body, url=f.final_url, headers=f.headers,
                                    fetched_at=AT, max_items=1000)


def test_workers_that_detect_languages_give_what_with_languages_gives() -> None:
    # The main process then skips detection for these entries: the worker's
    # must be exactly the in-process result, every entry without a language
    # in the document given the one detect() finds (or still none).
    items = [fetched(n, b) for n, b in bodies()]
    with ParsePool(1, languages=True) as pool:
        got = asyncio.run(parse_all(pool, items))
    detected = 0
    for f, parsed in zip(items, got, strict=True):
        assert f.body is not None
        here = parse_feed(f.body, url=f.final_url, headers=f.headers, fetched_at=AT,
                          max_items=1000)
        assert parsed.entries == tuple(with_languages(here.entries))
        detected += sum(1 for a, b in zip(here.entries, parsed.entries, strict=True)
                        if a.language is None and b.language is not None)
    assert detected > 0


def test_errors_keep_their_kind_and_message() -> None:
    page = fetched("page.html", b"<!doctype html><html><body><p>Not a feed</p></body></html>")
    with pytest.raises(ParseError) as in_process:
        parse_feed(b"<!doctype html><html><body><p>Not a feed</p></body></html>",
                   url=page.final_url, headers=XML, fetched_at=AT)
    with ParsePool(1) as pool, pytest.raises(ParseError) as in_worker:
        asyncio.run(pool.parse(page, max_items=10))
    assert in_worker.value.kind == in_process.value.kind == "not-a-feed"
    assert in_worker.value.message == in_process.value.message


def _big_feed(items: int) -> bytes:
    """Not well-formed (a bare "&"), so feedparser's slow path parses it."""
    entries = "".join(
        f"<item><title>Story {i} & more</title><link>http://x.invalid/{i}</link>"
        f"<description>&lt;p&gt;{'Words about Kazakhstan and the OSCE. ' * 40}&lt;/p&gt;"
        f"</description><guid>id-{i}</guid></item>" for i in range(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Big</title>{entries}</channel></rss>").encode()


def test_a_worker_killed_mid_parse_loses_no_feed(caplog: pytest.LogCaptureFixture) -> None:
    big = fetched("big.xml", _big_feed(3000))
    small = [fetched(n, b) for n, b in bodies()]

    async def scenario(pool: ParsePool) -> list[ParsedFeed]:
        task = asyncio.ensure_future(parse_all(pool, [big, *small]))
        deadline = time.monotonic() + 20
        while not pool.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the big body is being parsed now (it takes seconds)
        assert not task.done()
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        return await asyncio.wait_for(task, 120)

    with ParsePool(1) as pool:
        got = asyncio.run(scenario(pool))
        assert "retried alone" in caplog.text
        assert len(got[0].entries) == 1000  # max_items
        for f, parsed in zip(small, got[1:], strict=True):
            assert f.body is not None
            assert parsed == parse_feed(f.body, url=f.final_url, headers=f.headers,
                                        fetched_at=AT, max_items=1000)
        # and the pool works again afterwards
        again = asyncio.run(parse_all(pool, small[:1]))
        assert again[0].entries


def test_small_cycles_and_single_cores_parse_in_process() -> None:
    assert worth_a_pool(MIN_FEEDS - 1) == 0
    assert worth_a_pool(10_000) in (0, 1, 2, 3, 4)
    if len(os.sched_getaffinity(0)) >= 2:
        assert worth_a_pool(10_000) >= 1


def run_script(tmp_path: Path, body: bytes, main: str) -> subprocess.CompletedProcess[str]:
    """``main`` run by a fresh interpreter as a script of its own (no main
    guard), with ``f``: a FetchResult of ``body``, and asyncio and ParsePool
    imported."""
    (tmp_path / "feed.xml").write_bytes(body)
    script = tmp_path / "script.py"
    script.write_text(f"""
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from monitor.parsepool import ParsePool
from monitor.types import FetchResult
body = Path({str(tmp_path / "feed.xml")!r}).read_bytes()
f = FetchResult(feed_id="f", url="http://127.0.0.1/f", final_url="http://127.0.0.1/f",
                fetched_at=datetime(2026, 3, 10, tzinfo=UTC), duration=0.0, status=200,
                body=body, headers=(("content-type", "application/xml"),))
""" + main)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)


def test_a_script_without_a_main_guard_can_use_workers(tmp_path: Path) -> None:
    _name, body = bodies()[0]
    done = run_script(tmp_path, body, """
with ParsePool(1) as pool:
    print("entries", len(asyncio.run(pool.parse(f, max_items=1000)).entries))
""")
    assert done.returncode == 0, done.stderr
    expected = len(parse_feed(body, url="http://127.0.0.1/f", headers=XML, fetched_at=AT).entries)
    assert done.stdout.splitlines() == [f"entries {expected}"]  # the script ran once


def test_starting_the_workers_leaves_the_event_loop_running(tmp_path: Path) -> None:
    """The first parse starts the forkserver and its workers, which takes a
    while (it imports the parser); downloads in flight on the same event loop
    must go on meanwhile. Run in a fresh interpreter, where no forkserver runs
    yet. The loop's longest stall is compared with the start's own length, so
    a slow machine slows both."""
    _name, body = bodies()[0]
    done = run_script(tmp_path, body, """
import time

async def main():
    gaps = []
    async def tick():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.01)
    with ParsePool(2, languages=True) as pool:
        t0 = time.perf_counter()
        parsed = await pool.parse(f, max_items=1000)
        took = time.perf_counter() - t0
    ticker.cancel()
    print(len(parsed.entries), took, max(gaps))

asyncio.run(main())
""")
    assert done.returncode == 0, done.stderr
    entries, took, stall = done.stdout.split()
    assert int(entries) > 0
    assert float(stall) < float(took) / 2, (stall, took)


def test_the_setting_decides_how_many_workers() -> None:
    assert worth_a_pool(10_000, 0) == 0  # settings.parse_workers: 0, one process
    assert worth_a_pool(10_000, 3) == 3
    assert worth_a_pool(MIN_FEEDS - 1, 3) == 0  # a small cycle never pays for them


def test_workers_exit_when_the_poller_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "poller.py"
    script.write_text(f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from test_parsepool import fetched, _big_feed
from monitor.parsepool import ParsePool

async def main():
    pool = ParsePool(1)
    work = asyncio.ensure_future(pool.parse(fetched("big.xml", _big_feed(20000)), max_items=10))
    while not pool.pids():
        await asyncio.sleep(0.05)
    print(" ".join(map(str, pool.pids())), flush=True)
    await work

asyncio.run(main())
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout is not None
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers
    finally:
        proc.kill()  # SIGKILL: no cleanup of its own runs
        proc.wait(timeout=10)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and ") Z " in stat.read_text())  # a zombie is gone

    deadline = time.monotonic() + 15
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, workers)), "a parser worker outlived its poller"


def test_a_pooled_poll_stores_the_languages_a_one_process_poll_stores(tmp_path: Path) -> None:
    # A cycle of MIN_FEEDS feeds or more sends its bodies to a worker, which
    # detects the languages the ingest thread then no longer does: the archive
    # must hold the same item languages as a poll without workers. In a new
    # process, as `monitor poll` runs: one that holds the model already (this
    # one, after other tests) leaves detection in the ingest thread.
    import sqlite3
    import subprocess
    import sys

    from feedserver import serve
    from helpers import ROOT, write_config

    files = bodies()
    with serve() as server:
        for i in range(MIN_FEEDS + 5):
            server.put(f"/f{i}", files[i % len(files)][1])
        listed = [{"id": f"f{i}", "name": f"f{i}", "url": server.url(f"/f{i}")}
                  for i in range(MIN_FEEDS + 5)]
        stored = []
        for workers in (1, 0):
            config = write_config(tmp_path / f"feeds{workers}.yaml", listed, topics=False,
                                  settings={"parse_workers": workers})
            db = tmp_path / f"m{workers}.db"
            done = subprocess.run(
                [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db),
                 "-q", "poll", "--force"], capture_output=True, text=True, timeout=120,
                cwd=ROOT)
            assert done.returncode == 0, done.stderr
            with sqlite3.connect(db) as conn:
                stored.append(sorted(conn.execute(
                    "SELECT feed_id, key, language FROM items").fetchall()))
    pooled, alone = stored
    assert pooled == alone
    assert sum(1 for _f, _k, lang in pooled if lang) > 0


def test_workers_that_detect_languages_share_one_model(tmp_path: Path) -> None:
    # The forkserver loads the model (monitor.langpreload) before forking
    # the workers: each worker's own (private) memory stays well under the
    # model's arrays, which a copy per worker would add to each (86 MB in
    # all then, 14 MB with the model shared). A process of its own: the
    # forkserver starts once per process, with the first pool's preload.
    import subprocess
    import sys

    if not Path("/proc/self/smaps_rollup").exists():
        pytest.skip("needs Linux's /proc/<pid>/smaps_rollup")
    script = tmp_path / "share.py"
    script.write_text(f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from test_parsepool import fetched, bodies, parse_all
from monitor.parsepool import ParsePool

def private_mb(pid):
    lines = open(f"/proc/{{pid}}/smaps_rollup").read().splitlines()
    return sum(int(x.split()[1]) for x in lines if x.startswith(("Private_Clean", "Private_Dirty"))) / 1024

with ParsePool(2, languages=True) as pool:
    got = asyncio.run(parse_all(pool, [fetched(n, b) for n, b in bodies()]))
    assert sum(e.language is not None for p in got for e in p.entries) > 0
    print(" ".join(f"{{private_mb(p):.1f}}" for p in pool.pids()))
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parent.parent, check=True)
    private = [float(x) for x in out.stdout.split()]
    assert len(private) == 2 and max(private) < 45, private
