"""Readers while the daemon writes, concurrent polls, hostile feed content through
the whole pipeline, bad configs through the CLI, and round-trip properties
(DESIGN.md "Reliability rules"; catalogue C1, C4-C6, B4-B7, S4, O6, K1, K3; issue 7).

Everything runs against real parts: the CLI in child processes or click's
runner, feeds served on 127.0.0.1 by tests/feedserver.py, SQLite files in
tmp_path. docs/reliability.md maps each promise to its test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from helpers import ROOT, run_cli, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from killharness import Farm, check_database, child_env, load, missing_current_items, run_poll

from monitor.parse import TITLE_MAX, parse_feed
from monitor.store import PollWrite, Store, from_iso
from monitor.types import FeedConfig, FeedUpdate


def cli_json(*args: str, config: Path, db: Path) -> object:
    result = run_cli(*args, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- C1: readers while a writer polls ----------------------------------------------------

READERS = (["feeds", "--json"], ["hits", "--json", "--limit", "200"],
           ["search", "kazakhstan OR strike*", "--json"],
           ["digest", "--format", "json", "--record"],  # --record: a second writer
           ["status", "--json"])


def test_readers_work_while_polls_write_and_nobody_sees_locked(tmp_path, server):
    """Polls (child processes, one after another, content changing) write while
    the CLI readers run in other processes and library readers loop in threads,
    each on its own connection: no 'database is locked', every command exits 0."""
    farm = Farm(server, rng=random.Random(11))
    config = farm.config(tmp_path / "feeds.yaml")
    db = tmp_path / "m.db"
    assert run_poll(config, db).returncode == 0
    writer_errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        for _ in range(2):
            farm.advance()
            done = run_poll(config, db)
            summary = json.loads(done.stdout) if done.returncode == 0 else {}
            if done.returncode != 0 or summary.get("failed") or "locked" in done.stderr:
                writer_errors.append(done.stderr[-2000:] or str(summary))
        stop.set()

    reads = {"thread": 0}
    reader_errors: list[str] = []

    def library_reader() -> None:
        try:
            with Store(db, busy_timeout=5) as store:
                while not stop.is_set():
                    store.feeds_report()
                    store.hits(limit=100)
                    store.search('"kazakhstan"', limit=20)
                    with store.conn:  # a read transaction spanning several queries
                        store.conn.execute("BEGIN")
                        store.counts()
                        store.query("SELECT count(*) FROM items_fts WHERE items_fts MATCH "
                                    "'strike'")
                    reads["thread"] += 1
        except Exception as exc:  # reported below, with its message
            reader_errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=library_reader)
                                                   for _ in range(2)]
    for t in threads:
        t.start()
    cli_runs = 0
    try:
        for args in itertools.cycle(READERS):
            if stop.is_set() and cli_runs >= len(READERS):
                break
            proc = subprocess.run(
                [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db),
                 *args], capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=60)
            assert proc.returncode == 0, (args, proc.stderr)
            assert "locked" not in proc.stderr, (args, proc.stderr)
            json.loads(proc.stdout)
            cli_runs += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not writer_errors, writer_errors
    assert not reader_errors, reader_errors
    assert reads["thread"] > 0 and cli_runs >= len(READERS)
    check_database(db, load(config), farm)


def wal_size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_long_reader_holds_the_wal_then_checkpoint_shrinks_it(tmp_path, server):
    """A reader that keeps one snapshot open stops checkpoints from reusing the
    WAL, so it grows while polls write; once the reader ends, a TRUNCATE
    checkpoint (what the daemon runs past 64 MB) empties it, and further polls
    keep it bounded (auto-checkpoints reuse the file from the start)."""
    farm = Farm(server, rng=random.Random(5))
    config = farm.config(tmp_path / "feeds.yaml")
    db = tmp_path / "m.db"
    assert run_poll(config, db).returncode == 0
    with Store(db) as store:  # keeps the WAL file alive between the polls
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        seen = reader.execute("SELECT count(*) FROM items").fetchone()[0]
        sizes = []
        for _ in range(3):
            farm.advance(change_all=True)
            assert run_poll(config, db).returncode == 0
            sizes.append(wal_size(db))
        assert sizes[0] < sizes[1] < sizes[2], sizes  # nothing could be reused
        # TRUNCATE waits for readers through the busy handler: with a short
        # timeout it gives up, partial, instead of blocking.
        with Store(db, busy_timeout=0.5) as impatient:
            t0 = time.monotonic()
            busy, pages, done = impatient.checkpoint() or (0, 0, 0)
            assert time.monotonic() - t0 < 10
        assert busy == 1 or done < pages, (busy, pages, done)
        # the reader still sees its snapshot, not the new items
        assert reader.execute("SELECT count(*) FROM items").fetchone()[0] == seen
        reader.execute("COMMIT")
        reader.close()
        busy, pages, done = store.checkpoint() or (1, 0, 0)
        assert busy == 0 and done == pages
        assert wal_size(db) == 0
        after = []
        for _ in range(3):
            farm.advance(change_all=True)
            assert run_poll(config, db).returncode == 0
            after.append(wal_size(db))
        # without the reader the WAL holds only these polls' own writes (SQLite
        # checkpoints inside a poll only past store.db.AUTOCHECKPOINT_PAGES, the
        # daemon between cycles past decide.WAL_LIMIT): no more than it grew to
        # while the reader held it
        assert max(after) <= max(sizes[2], 1000 * 4096 + sizes[0]), (sizes, after)
    check_database(db, load(config), farm)


def test_connections_opening_a_new_database_at_once_all_succeed(tmp_path):
    """The first `monitor run` and a `monitor feeds` started together on a new
    file: SQLite answers a journal-mode switch that loses the race "database
    is locked" without waiting, so the store retries it within its busy
    timeout. (A race: each round failed about once in 30 before the fix.)"""
    errors: list[str] = []
    for rnd in range(30):
        path = tmp_path / f"m{rnd}.db"
        barrier = threading.Barrier(8)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                Store(path).close()
            except Exception as exc:  # collected, reported below
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []


# --- C4: a manual poll while the daemon polls the same feeds -----------------------------

def test_concurrent_polls_of_the_same_feeds_add_no_duplicates(tmp_path, server):
    farm = Farm(server, rng=random.Random(9))
    config = farm.config(tmp_path / "feeds.yaml", interval="2s", min_interval="1s")
    db = tmp_path / "m.db"
    assert run_poll(config, db).returncode == 0
    log = tmp_path / "daemon.log"
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run",
             "--tick", "0.2"], stdout=subprocess.DEVNULL, stderr=log_file, cwd=tmp_path,
            env=child_env())
        try:
            for _ in range(2):
                farm.advance(change_all=True)
                polls = [subprocess.Popen(
                    [sys.executable, "-m", "monitor", "--config", str(config), "--db",
                     str(db), "poll", "--force", "--json"], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())
                    for _ in range(2)]
                for p in polls:
                    out, err = p.communicate(timeout=60)
                    assert p.returncode == 0, err
                    assert "locked" not in err and json.loads(out)["failed"] == 0, err
            assert daemon.poll() is None, log.read_text()
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                assert daemon.wait(timeout=15) == 0, log.read_text()
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
    text = log.read_text()
    assert "locked" not in text and "Traceback" not in text, text
    assert run_poll(config, db).returncode == 0
    check_database(db, load(config), farm)  # no duplicate, hits = topics, N14
    assert missing_current_items(db, farm) == {}


# --- B4-B7: hostile content through fetch, parse, store and the CLI ------------------------

STRIKE = "Kazakhstan: miners strike in Karaganda over unpaid wages"
DATES = {  # guid -> pubDate
    "date-missing": None,
    "date-malformed": "the day before yesterday, more or less",
    "date-year-1": "Mon, 01 Jan 0001 00:00:00 GMT",
    "date-year-9999": "Fri, 31 Dec 9999 23:59:59 GMT",
    "date-ok": "Mon, 05 Jan 2026 08:00:00 GMT",
}


def rss(items: list[str], title: str = "hostile") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{title}</title><link>https://example.org/</link>{''.join(items)}"
            "</channel></rss>").encode()


def item(guid: str | None, title: str, *, link: str | None = None, date: str | None = None,
         summary: str = "") -> str:
    parts = [f"<guid isPermaLink=\"false\">{guid}</guid>" if guid is not None else "",
             f"<title>{title}</title>", f"<link>{link}</link>" if link else "",
             f"<description>{summary}</description>" if summary else "",
             f"<pubDate>{date}</pubDate>" if date else ""]
    return "<item>" + "".join(parts) + "</item>"


def shapes_feed(poll: int) -> bytes:
    """Strict-XML hostile shapes; the item with the changing GUID changes every poll."""
    big = STRIKE + " " + "x" * 5_000_000
    items = [
        item("big-title", big, link="https://example.org/big"),
        item("g" * 100_000, "A GUID of a hundred thousand characters",
             link="https://example.org/long-guid"),
        item("dup", "First of two items with one GUID", link="https://example.org/dup-1"),
        item("dup", "Second of two items with one GUID", link="https://example.org/dup-2"),
        item(None, "No GUID and no link: Kazakh journalist detained in Almaty",
             summary="Police in Almaty detained a journalist."),
        item(None, "Another item without any identifier at all", summary="Nothing else."),
        item(f"changing-guid-{poll}", "Kazakhstan oil workers strike in Zhanaozen again",
             link=f"https://example.org/zhanaozen-strike?utm_source=rss&utm_medium=p{poll}"),
        *(item(guid, f"Dated item {guid}", link=f"https://example.org/{guid}", date=date)
          for guid, date in DATES.items()),
    ]
    return rss(items)


def bytes_feed() -> bytes:
    """Not well-formed: raw NUL and control bytes and lone surrogates as
    character references (feedparser falls back to its loose parser)."""
    title = f"{STRIKE} \x00NUL \x0bVT \x1b[31mESC\x07BEL &#xD800;lone&#xDFFF; end"
    summary = "Miners\x00 in\x01 Karaganda\x1f went on &#xDBFF; strike\x7f."
    return rss([item("controls", title, link="https://example.org/controls", summary=summary)])


def test_hostile_content_is_stored_cleaned_with_stable_keys_and_no_duplicates(tmp_path,
                                                                              server):
    server.put("/shapes", shapes_feed(1))
    server.put("/bytes", bytes_feed())
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "shapes", "name": "shapes", "url": server.url("/shapes")},
        {"id": "bytes", "name": "bytes", "url": server.url("/bytes")}])
    db = tmp_path / "m.db"
    before = datetime.now(UTC).replace(microsecond=0)
    first = cli_json("poll", "--force", config=config, db=db)
    after = datetime.now(UTC)
    assert first["failed"] == 0, first  # type: ignore[index]
    conn = sqlite3.connect(db)
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT key, title, summary, published_at, story_key, feed_id FROM items")}

    # B4: a 5 MB title is cut to TITLE_MAX with an ellipsis; a 100,000-character
    # GUID becomes a hashed key; controls removed, lone surrogates -> U+FFFD.
    assert len(rows["big-title"][0]) == TITLE_MAX and rows["big-title"][0].endswith("…")
    long_keys = [k for k in rows if k.startswith("sha256:")
                 and rows[k][0].startswith("A GUID of a hundred")]
    assert len(long_keys) == 1 and len(long_keys[0]) <= 512
    assert max(len(k) for k in rows) <= 512
    title, summary = rows["controls"][0], rows["controls"][1]
    for text in (title, summary):
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in text), repr(text)
    assert title.startswith(STRIKE) and "NUL" in title and "end" in title
    assert "\ufffd" in title and "strike" in summary
    # B5: one row per GUID, the first in document order
    assert rows["dup"][0] == "First of two items with one GUID"
    # B6: items without any id get a key from their text
    no_id = [k for k, v in rows.items() if "identifier" in v[0] or "No GUID" in v[0]]
    assert len(no_id) == 2 and all(k.startswith("sha256:") for k in no_id)
    # B7: missing, malformed, year 1 and year 9999 dates fall back to the fetch time
    for guid in DATES:
        published = from_iso(rows[guid][2])
        assert published is not None
        if guid == "date-ok":
            assert published == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        else:
            assert before <= published <= after, (guid, published)

    # Read back through the CLI as JSON: valid, cleaned, the hostile items found.
    hits = cli_json("hits", "--limit", "500", config=config, db=db)
    titles = {h["title"] for h in hits}  # type: ignore[union-attr]
    assert title in titles and rows["big-title"][0] in titles
    found = cli_json("search", "Karaganda", config=config, db=db)["results"]  # type: ignore[index]
    assert {r["title"] for r in found} >= {title}

    # Re-poll with the changing GUID changed (so the body is parsed again) and
    # the bytes feed re-served: stable keys, nothing duplicated, dates kept.
    server.put("/shapes", shapes_feed(2))
    server.put("/bytes", bytes_feed())
    second = cli_json("poll", "--force", config=config, db=db)
    by_id = {f["id"]: f for f in second["feeds"]}  # type: ignore[index]
    assert by_id["shapes"]["new_items"] == 1, by_id  # only the new changing GUID
    assert by_id["bytes"]["new_items"] == 0, by_id
    again = {r[0]: r[1:] for r in conn.execute(
        "SELECT key, title, summary, published_at, story_key, feed_id FROM items")}
    assert set(again) - set(rows) == {"changing-guid-2"}
    assert all(again[k] == rows[k] for k in rows)  # published_at fallback did not move
    # A GUID that changes every poll makes a new item each time (keys follow the
    # GUID), but the canonical link joins them into one story: one hit row.
    assert again["changing-guid-1"][3] == again["changing-guid-2"][3]
    hits = cli_json("hits", "--limit", "500", config=config, db=db)
    zhanaozen = [h for h in hits if "Zhanaozen" in h["title"]]  # type: ignore[union-attr]
    assert len(zhanaozen) == 1 and zhanaozen[0]["topics"], zhanaozen
    assert conn.execute("SELECT count(*) FROM hits h JOIN items i ON i.id = h.item_id WHERE "
                        "i.key LIKE 'changing-guid-%'").fetchone()[0] >= 2
    assert conn.execute("SELECT count(*) FROM (SELECT feed_id, key FROM items GROUP BY "
                        "feed_id, key HAVING count(*) > 1)").fetchone()[0] == 0
    conn.close()
    check_database(db, load(config))


# --- K1, K3: bad configs through the CLI -------------------------------------------------

BAD_FEEDS = {
    "file-url": ({"url": "file:///etc/passwd"}, "field url"),
    "ftp-url": ({"url": "ftp://example.org/feed.xml"}, "field url"),
    "javascript-url": ({"url": "javascript:alert(1)"}, "field url"),
    "data-url": ({"url": "data:text/xml,<rss/>"}, "field url"),
    "gopher-url": ({"url": "gopher://example.org/feed"}, "field url"),
    "zero-interval": ({"interval": "0s"}, "interval"),
    "negative-interval": ({"interval": "-5m"}, "interval"),
    "unknown-key": ({"colour": "red"}, "unknown key 'colour'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FEEDS))
def test_bad_feed_config_poll_exits_2_naming_the_line_and_polls_nothing(tmp_path, server,
                                                                       case):
    server.put("/ok", rss([item("1", STRIKE)]))
    change, expect = BAD_FEEDS[case]
    bad = {"id": "bad", "name": "bad", "url": server.url("/bad"), **change}
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "ok", "name": "ok", "url": server.url("/ok")}, bad], topics=False)
    db = tmp_path / "m.db"
    result = run_cli("poll", "--force", config=config, db=db)
    assert result.exit_code == 2, result.output
    assert expect in result.output and "feed bad" in result.output
    assert "line " in result.output and str(config) in result.output
    assert not db.exists() and server.requests == []


def test_duplicate_url_in_config_exits_2(tmp_path, server):
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "one", "name": "one", "url": server.url("/feed")},
        {"id": "two", "name": "two", "url": server.url("/feed")}], topics=False)
    result = run_cli("poll", "--force", config=config, db=tmp_path / "m.db")
    assert result.exit_code == 2 and "duplicate URL" in result.output, result.output


def test_daemon_with_a_bad_config_exits_2_at_once_without_touching_the_database(tmp_path):
    config = write_config(tmp_path / "feeds.yaml", [
        {"id": "bad", "name": "bad", "url": "http://127.0.0.1:9/feed", "interval": "0s"}],
        topics=False)
    db = tmp_path / "m.db"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "run",
         "--tick", "0.1"], capture_output=True, text=True, cwd=tmp_path, env=child_env(),
        timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "interval" in proc.stderr and "line" in proc.stderr
    assert time.monotonic() - t0 < 20  # start-up only: no loop, no retry
    assert not db.exists()


# --- properties: parse -> store -> read back ---------------------------------------------

XML_TEXT = st.text(st.characters(
    blacklist_categories=("Cs",),
    # XML 1.0 forbids these even as references; not well-formed documents go
    # through feedparser's loose parser, which test_hostile_content_... covers.
    blacklist_characters=[chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
    # "<" and "&" start markup: an RSS description is HTML, and feedparser
    # treats a title that looks like HTML as HTML (test_parse covers both).
    + ["\ufffe", "\uffff", "<", "&"]), max_size=300)


def _cp1252(c: str) -> str:
    try:
        return bytes([ord(c)]).decode("cp1252") if "\x80" <= c <= "\x9f" else c
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: no cp1252 reading
        return c


def cleaned(text: str, limit: int) -> str:
    """The documented cleaning. feedparser first: a text that is UTF-8 read as
    Latin-1 (mojibake such as "Ã©") is repaired, and C1 characters are read as
    windows-1252 (U+0091 -> U+2018). Then ours: control characters that are
    not whitespace, the BOM, noncharacters, bidi embeddings/overrides/isolates
    and interlinear annotation characters removed (monitor.clean); runs of
    whitespace collapsed to one space; cut to ``limit`` with an ellipsis."""
    text = text.strip()  # feedparser strips first (str.strip: U+0085 included)
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("iso-8859-1").decode("utf-8")
    text = "".join(_cp1252(c) for c in text)
    kept = "".join(c for c in text if not (
        (unicodedata.category(c) == "Cc" and not c.isspace()) or c in "\ufeff\ufffe\uffff"
        or "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069" or "\ufff9" <= c <= "\ufffb"))
    out = " ".join(kept.split())
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    now = datetime.now(UTC)
    with Store(tmp_path_factory.mktemp("prop") / "m.db") as store:
        store.sync_feeds([FeedConfig(id=f, url=f"https://example.org/{f}", name=f)
                          for f in ("a", "b")], now)
        yield store


_counter = itertools.count()


def store_one(store: Store, feed_id: str, body: bytes) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    parsed = parse_feed(body, url="https://example.org/feed",
                        headers={"content-type": "application/rss+xml"}, fetched_at=now)
    update = FeedUpdate(feed_id=feed_id, fetched_at=now, outcome="new",
                        next_due_at=now + timedelta(minutes=15))
    store.commit_polls([PollWrite(update, new=parsed.entries)])
    keys = [e.key for e in parsed.entries]
    return [store.query("SELECT * FROM items WHERE feed_id = ? AND key = ?", [feed_id, k])[0]
            for k in keys]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=XML_TEXT, summary=XML_TEXT)
def test_arbitrary_unicode_round_trips_through_parse_and_store(prop_store, title, summary):
    guid = f"prop-{next(_counter)}"
    body = rss([item(guid, escape(title), summary=escape(summary))])
    [row] = store_one(prop_store, "a", body)
    assert row["key"] == guid
    assert row["title"] == cleaned(title, TITLE_MAX)
    assert row["summary"] == cleaned(summary, 10_000)


NOISE = st.fixed_dictionaries({
    "scheme": st.sampled_from(["http", "https"]),
    "host_upper": st.booleans(),
    "tracking": st.lists(st.sampled_from(["utm_source=rss", "utm_medium=feed", "fbclid=abc",
                                          "at_medium=RSS", "gclid=1"]), max_size=3),
    "fragment": st.sampled_from(["", "#comments", "#top"]),
})


def noisy(path: str, noise: dict[str, object]) -> str:
    host = "News.Example.KZ" if noise["host_upper"] else "news.example.kz"
    query = "&".join(["id=7", *noise["tracking"]])  # type: ignore[list-item]
    return f"{noise['scheme']}://{host}/{path}?{query}{noise['fragment']}"


@settings(max_examples=40, deadline=None)
@given(a=NOISE, b=NOISE)
def test_story_key_joins_one_article_across_feeds_whatever_the_link_noise(prop_store, a, b):
    """Canonical URLs: tests/test_stories.py::test_canonical_url_is_stable_under_
    irrelevant_changes. Here the stored story key: the same article reached
    through links that differ only in scheme, host case, tracking parameters or
    fragment is one story, even under different titles."""
    path = f"a/story-{next(_counter)}.html"
    [first] = store_one(prop_store, "a", rss([item(None, "Headline one of a story",
                                                   link=escape(noisy(path, a)))]))
    [second] = store_one(prop_store, "b", rss([item(None, "Another headline for it here",
                                                    link=escape(noisy(path, b)))]))
    assert first["story_key"] == second["story_key"]
    assert first["canonical_url"] == second["canonical_url"]
    [other] = store_one(prop_store, "b", rss([item(None, "Headline of a different story",
                                                   link=escape(noisy(path + "x", b)))]))
    assert other["story_key"] != first["story_key"]


# --- C5, C6: config writes while a fetch is blocked ----------------------------------------

def test_feed_removed_and_added_while_its_fetch_hangs_no_wait_no_orphans(tmp_path):
    """No HTTP inside a transaction: while one feed's server sleeps, another
    process rewrites the feeds (removing that feed, adding one) at once; the
    poll then stores the slow feed's items under its kept, inactive row."""
    from faultserver import FaultServer, sleep_then, static
    from helpers import DATA

    body = (DATA / "feeds" / "kz-news.xml").read_bytes()
    with FaultServer() as fs:
        fs.route("/slow", sleep_then(3.0, static(body)))
        fs.route("/ok", static((DATA / "feeds" / "aljazeera.xml").read_bytes()))
        slow = {"id": "slow", "name": "slow", "url": fs.url("/slow")}
        ok = {"id": "ok", "name": "ok", "url": fs.url("/ok")}
        config = write_config(tmp_path / "feeds.yaml", [slow, ok])
        db = tmp_path / "m.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db),
             "poll", "--force", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env=child_env())
        try:
            deadline = time.monotonic() + 20
            while not fs.requests_to("/slow"):
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.05)
            with Store(db) as store:
                t0 = time.monotonic()
                now = datetime.now(UTC)
                store.sync_feeds([FeedConfig(id="ok", url=ok["url"], name="ok"),
                                  FeedConfig(id="new", url=fs.url("/new"), name="new")], now)
                took = time.monotonic() - t0
            assert proc.poll() is None, "the slow fetch should still be running"
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert took < 2.0, f"a config write waited {took:.1f}s for a fetch"
    assert proc.returncode == 0, err
    summary = {f["id"]: f for f in json.loads(out)["feeds"]}
    assert summary["slow"]["new_items"] > 0
    conn = sqlite3.connect(db)
    assert dict(conn.execute("SELECT id, active FROM feeds")) == {"slow": 0, "ok": 1, "new": 1}
    conn.close()
    check_database(db, load(config))


# --- S4: a folder the database cannot be written in --------------------------------------

@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_database_folder_is_a_clear_startup_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "m.db"
    Store(db).close()
    folder.chmod(0o555)
    try:
        for path in (db, folder / "sub" / "m.db"):
            result = run_cli("feeds", db=path)
            assert result.exit_code == 1, result.output
            assert "permission" in result.output.lower(), result.output
            assert "Traceback" not in result.output
    finally:
        folder.chmod(0o755)


# --- O6: hostile search queries ----------------------------------------------------------

HOSTILE_QUERIES = ("'", '"', "%", "_", "NEAR", '"unterminated', "\x00", "a'; DROP TABLE items; --",
                   "title:", "*", "kazakh%_'\"", "NEAR(strike", ")(")


def test_hostile_search_queries_are_answers_or_invalid_query_never_a_crash(tmp_path, server):
    server.put("/kz", rss([item("1", STRIKE, link="https://example.org/1")]))
    config = write_config(tmp_path / "feeds.yaml",
                          [{"id": "kz", "name": "kz", "url": server.url("/kz")}])
    db = tmp_path / "m.db"
    assert run_cli("poll", "--force", config=config, db=db).exit_code == 0
    for query in HOSTILE_QUERIES:
        result = run_cli("search", query, "--json", config=config, db=db)
        assert result.exit_code in (0, 2), (query, result.output)
        if result.exit_code == 2:
            assert "invalid query" in result.output, (query, result.output)
        else:
            assert isinstance(json.loads(result.stdout)["results"], list)
        assert "Traceback" not in result.output
    check_database(db, load(config))
    assert sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0] == 1
