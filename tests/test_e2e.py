"""End to end: real feeds served on 127.0.0.1, polled by the real CLI into a
real SQLite file, matched against the shipped topics."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from feedserver import FeedServer
from helpers import DATA, run_cli, write_config

FEEDS = {
    "moscow-times": ("moscowtimes.xml", "application/rss+xml"),
    "bbc-world": ("bbc-world.xml", "application/rss+xml; charset=utf-8"),
    "aljazeera": ("aljazeera.xml", "application/rss+xml; charset=utf-8"),
    "dw-en": ("dw-en.rdf", "application/rdf+xml"),
    "ibash-ru": ("ibash-windows-1251.xml", "text/xml"),
    "kz-news": ("kz-news.xml", "application/rss+xml; charset=utf-8"),
}


@pytest.fixture
def server(server: FeedServer) -> FeedServer:
    for feed_id, (name, ctype) in FEEDS.items():
        server.put(f"/{feed_id}", (DATA / "feeds" / name).read_bytes(), ctype)
    return server


@pytest.fixture
def setup(tmp_path: Path, server: FeedServer) -> tuple[Path, Path]:
    feeds = [{"id": fid, "name": fid, "url": server.url(f"/{fid}"), "language": "en",
              "tags": ["test"]} for fid in FEEDS]
    return write_config(tmp_path / "feeds.yaml", feeds), tmp_path / "db" / "monitor.db"


def poll_json(config: Path, db: Path, *extra: str) -> dict:
    result = run_cli("poll", "--force", "--json", *extra, config=config, db=db)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_poll_stores_items_and_hits_then_repoll_adds_nothing(setup, server):
    config, db = setup
    first = poll_json(config, db)
    assert first["feeds_polled"] == len(FEEDS)
    assert first["failed"] == 0, first["feeds"]
    conn = sqlite3.connect(db)
    per_feed = dict(conn.execute("SELECT feed_id, count(*) FROM items GROUP BY feed_id"))
    assert set(per_feed) == set(FEEDS)
    assert per_feed["kz-news"] == 12 and per_feed["ibash-ru"] == 50
    assert first["new_items"] == sum(per_feed.values())
    assert first["hits"] > 0

    second = poll_json(config, db)
    assert second["new_items"] == 0 and second["hits"] == 0
    assert {f["status"] for f in second["feeds"]} == {"not-modified"}
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == sum(per_feed.values())
    # the second request was conditional, with the validators byte-identical
    for feed_id in FEEDS:
        first_h, second_h = server.headers_for(f"/{feed_id}")
        assert "if-none-match" not in first_h
        assert second_h["if-none-match"] == server.files[f"/{feed_id}"].etag
        assert second_h["if-modified-since"] == server.files[f"/{feed_id}"].last_modified
        assert "cookie" not in second_h and second_h["user-agent"].startswith("monitor/")


def test_unchanged_body_without_validators_is_not_parsed(setup, server):
    config, db = setup
    poll_json(config, db)
    # The server forgets its validators but serves the same bytes: the body hash
    # says "unchanged" and nothing is parsed or written.
    for served in server.files.values():
        served.etag = ""
        served.last_modified = ""
    again = poll_json(config, db)
    assert {f["status"] for f in again["feeds"]} == {"unchanged"}
    assert again["new_items"] == 0


def test_changed_feed_adds_only_new_items(setup, server):
    config, db = setup
    poll_json(config, db)
    body = (DATA / "feeds" / "kz-news.xml").read_bytes().replace(
        b"</channel>",
        b"<item><title>Kazakhstan: miners strike in Karaganda over unpaid wages</title>"
        b"<link>https://example.org/karaganda-strike</link><description>Coal miners at a "
        b"Karaganda mine went on strike.</description></item></channel>")
    server.put("/kz-news", body)
    again = poll_json(config, db)
    kz = next(f for f in again["feeds"] if f["id"] == "kz-news")
    assert kz["status"] == "new" and kz["new_items"] == 1 and kz["hits"] >= 1
    hits = json.loads(run_cli("hits", "--topic", "kz-labour-protests", "--json",
                              config=config, db=db).stdout)
    strike = [h for h in hits if "Karaganda" in h["title"]]
    assert strike and "strike" in strike[0]["terms"]


def test_hits_carry_terms_and_snippets_in_every_script(setup):
    config, db = setup
    poll_json(config, db)
    rows = json.loads(run_cli("hits", "--json", "--limit", "500", config=config, db=db).stdout)
    assert rows
    for row in rows:
        assert row["terms"], row
        assert row["snippet"], row
        assert row["feeds"]
    titles = {r["title"] for r in rows}
    # Russian text matched through the Cyrillic variants of the topics
    assert any("Алматы" in t for t in titles)
    # one row per story, however many topics it matched, each with its own words
    assert len({r["story_key"] for r in rows}) == len(rows)
    multi = [r for r in rows if len(r["topics"]) > 1]
    assert multi and all(set(r["matched"]) == set(r["topics"]) for r in multi)
    text = run_cli("hits", config=config, db=db).output
    assert "kz-" in text and "stories" in text


def test_feeds_command_shows_health(setup, server):
    config, db = setup
    poll_json(config, db)
    out = run_cli("feeds", "--json", config=config, db=db).stdout
    report = json.loads(out)
    ok = {f["id"]: f for f in report["feeds"]}
    assert set(ok) == set(FEEDS)
    assert all(f["last_success_at"] and f["items"] > 0 for f in ok.values())
    table = run_cli("feeds", config=config, db=db).output
    assert "kz-news" in table and "ok" in table


def test_a_failing_feed_does_not_stop_the_cycle(tmp_path, server):
    feeds = [{"id": "kz-news", "name": "kz", "url": server.url("/kz-news")},
             {"id": "missing", "name": "missing", "url": server.url("/nope")},
             {"id": "html", "name": "html", "url": server.url("/html")}]
    server.put("/html", b"<!DOCTYPE html><html><body>Hello</body></html>", "text/html")
    config = write_config(tmp_path / "feeds.yaml", feeds)
    db = tmp_path / "m.db"
    summary = poll_json(config, db)
    by_id = {f["id"]: f for f in summary["feeds"]}
    assert by_id["kz-news"]["status"] == "new"
    assert by_id["missing"]["error"]["kind"] == "http-status"
    assert "404" in by_id["missing"]["error"]["reason"]
    assert by_id["html"]["error"]["kind"] == "not-a-feed"
    report = json.loads(run_cli("feeds", "--json", config=config, db=db).stdout)
    missing = next(f for f in report["feeds"] if f["id"] == "missing")
    assert missing["error_count"] == 1 and missing["last_error_kind"] == "http-status"
    conn = sqlite3.connect(db)
    logged = conn.execute("SELECT outcome, error_kind FROM fetches WHERE feed_id = 'missing'")
    assert logged.fetchall() == [("failed", "http-status")]


def test_poll_without_force_skips_feeds_not_due(setup, server):
    config, db = setup
    poll_json(config, db)
    before = len(server.requests)
    result = run_cli("poll", "--json", config=config, db=db)
    assert json.loads(result.stdout)["feeds_polled"] == 0
    assert len(server.requests) == before


def test_poll_one_feed(setup, server):
    config, db = setup
    summary = poll_json(config, db, "--feed", "kz-news")
    assert [f["id"] for f in summary["feeds"]] == ["kz-news"]
    result = run_cli("poll", "--feed", "no-such-feed", config=config, db=db)
    assert result.exit_code == 2 and "no-such-feed" in result.output


def test_poll_summary_table(setup):
    config, db = setup
    result = run_cli("poll", "--force", config=config, db=db)
    assert result.exit_code == 0
    assert "feeds polled" in result.output and "kz-news" in result.output
