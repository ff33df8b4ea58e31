"""Article text end to end: a teaser feed served on 127.0.0.1 whose links
point to real article pages (tests/data/articles), polled through the real
CLI into a real SQLite file; the pages' failures from a real fault server."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml
from faultserver import FaultServer, never_reply
from feedserver import FeedServer
from helpers import DATA, run_cli

PAGES = {"europa": "europa-plumes.html", "titan": "titan-map.html"}
# Words only the Europa article has: neither the feed's titles nor summaries.
TOPIC = {"id": "goddard", "name": "Goddard", "query": '"Goddard Space Flight Center"'}
# Matches every teaser on its summary, and the Europa article again.
WIDE = {"id": "wide", "name": "Wide", "query": "teaser OR Greenbelt"}


def _rss(links: dict[str, str]) -> bytes:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>Space news {n}</title><link>{url}</link><guid>{key}</guid>"
        f"<description>A short teaser.</description>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=n))}</pubDate></item>"
        for n, (key, url) in enumerate(links.items()))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Teasers</title>'
            f"<link>http://example.org/</link><description>d</description>{items}"
            f"</channel></rss>").encode()


def _config(path: Path, url: str, *, mode: str | None = None,
            **settings: Any) -> Path:
    feed: dict[str, Any] = {"id": "teasers", "name": "Teasers", "url": url}
    if mode:
        feed["article_text"] = mode
    data = {"settings": {"allow_private": True, "timeout": "1s", "connect_timeout": "1s",
                         **settings},
            "feeds": [feed], "topics": [TOPIC, WIDE]}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _serve_pages(server: FeedServer, links: dict[str, str] | None = None) -> dict[str, str]:
    for key, name in PAGES.items():
        server.put(f"/a/{key}", (DATA / "articles" / name).read_bytes(),
                   "text/html; charset=utf-8")
    out = {key: server.url(f"/a/{key}") for key in PAGES}
    out.update(links or {})
    server.put("/feed", _rss(out))
    return out


def _poll(config: Path, db: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("poll", "--json", *extra, config=config, db=db)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)  # plain sqlite3: the file needs none of our code
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _feed_articles(config: Path, db: Path) -> dict[str, Any]:
    result = run_cli("feeds", "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    feed = next(f for f in json.loads(result.stdout)["feeds"] if f["id"] == "teasers")
    articles: dict[str, Any] = feed["articles"]
    return articles


def test_a_topic_found_only_in_the_article_matches_once_with_article_evidence(
        tmp_path: Path, server: FeedServer) -> None:
    _serve_pages(server)
    config, db = _config(tmp_path / "feeds.yaml", server.url("/feed")), tmp_path / "m.db"
    _poll(config, db)
    hits = _rows(db, "SELECT i.key, h.found_in, h.snippet FROM hits h "
                     "JOIN items i ON i.id = h.item_id WHERE h.topic_id = 'goddard'")
    assert [(h[0], h[1]) for h in hits] == [("europa", "article")]
    assert "[[Goddard Space Flight Center]]" in hits[0][2]
    shown = run_cli("hits", "--json", "--topic", "goddard", config=config, db=db)
    assert shown.exit_code == 0, shown.output
    assert [h["found_in"] for h in json.loads(shown.stdout)] == [["article"]]
    # A hit the summary made is not doubled by the article: its evidence grows.
    wide = _rows(db, "SELECT i.key, h.found_in, h.terms FROM hits h JOIN items i "
                     "ON i.id = h.item_id WHERE h.topic_id = 'wide' ORDER BY i.key")
    assert [(k, f) for k, f, _ in wide] == [("europa", "summary,article"), ("titan", "summary")]
    assert json.loads(wide[0][2]) == ["teaser", "greenbelt"]
    # The archive's own index searches the article column, from plain sqlite3 too.
    assert _rows(db, "SELECT count(*) FROM items_fts WHERE items_fts MATCH "
                     "'article: methane'") == [(1,)]
    found = run_cli("search", "--json", "article:Goddard", config=config, db=db)
    assert found.exit_code == 0, found.output
    assert [r["title"] for r in json.loads(found.stdout)["results"]] == ["Space news 0"]
    # A second poll finds nothing new: no page is asked for again, no hit doubles.
    _poll(config, db, "--force")
    assert server.count("/a/europa") == 1 and server.count("/a/titan") == 1
    assert _rows(db, "SELECT count(*) FROM hits") == [(3,)]
    assert _feed_articles(config, db)["ok"] == 2


def test_failures_are_recorded_with_their_reasons_and_shown_in_feeds(
        tmp_path: Path, server: FeedServer) -> None:
    server.put("/a/notes", b"plain text, not a page", "text/plain")
    with FaultServer() as faults:
        hang = faults.route("/hang", never_reply)
        _serve_pages(server, {"missing": server.url("/a/missing"),
                              "notes": server.url("/a/notes"), "hang": hang})
        config, db = _config(tmp_path / "feeds.yaml", server.url("/feed")), tmp_path / "m.db"
        _poll(config, db)
        status = dict((k, (s, r)) for k, s, r in _rows(
            db, "SELECT i.key, a.status, a.reason FROM articles a JOIN items i "
                "ON i.id = a.item_id"))
        assert status["europa"][0] == status["titan"][0] == "ok"
        assert status["missing"][0] == "failed" and "404" in status["missing"][1]
        assert status["notes"][0] == "failed" and "not-html" in status["notes"][1]
        # A hang is worth another try later: queued again, with its reason.
        assert status["hang"][0] == "queued" and "timeout" in status["hang"][1]
        shown = _feed_articles(config, db)
        assert (shown["ok"], shown["failed"], shown["queued"]) == (2, 2, 1)
        assert any("404" in r for r in shown["failures"])
        assert any("timeout" in r for r in shown["failures"])
        table = run_cli("feeds", config=config, db=db).stdout
        row = table.split("│ teasers", 1)[1]  # its wrapped lines
        assert "articles" in table.split("│ teasers", 1)[0]
        assert all(word in row for word in ("ok /", "failed", "articl"))
        # The retry waits for its backoff: a second poll asks for nothing twice.
        _poll(config, db, "--force")
        assert faults.count("/hang") == 1 and server.count("/a/missing") == 1


def test_never_fetches_no_article(tmp_path: Path, server: FeedServer) -> None:
    _serve_pages(server)
    config = _config(tmp_path / "feeds.yaml", server.url("/feed"), mode="never")
    db = tmp_path / "m.db"
    _poll(config, db)
    assert server.count("/a/europa") == 0 and server.count("/a/titan") == 0
    assert _rows(db, "SELECT count(*) FROM articles") == [(0,)]
    assert _rows(db, "SELECT topic_id, found_in FROM hits") == [("wide", "summary")] * 2


def test_queued_articles_are_fetched_by_the_next_run(tmp_path: Path,
                                                     server: FeedServer) -> None:
    _serve_pages(server)
    db = tmp_path / "m.db"
    # A budget of nothing: the run ends with its articles queued, as a crash would.
    config = _config(tmp_path / "feeds.yaml", server.url("/feed"), article_budget=0)
    _poll(config, db)
    assert _rows(db, "SELECT count(*) FROM articles WHERE status = 'queued'") == [(2,)]
    assert server.count("/a/europa") == 0
    # The next run (no feed due) resumes them from the table.
    config = _config(tmp_path / "feeds.yaml", server.url("/feed"))
    summary = _poll(config, db)
    assert summary["feeds_polled"] == 0
    assert _rows(db, "SELECT count(*) FROM articles WHERE status = 'ok'") == [(2,)]
    assert server.count("/a/europa") == 1
    assert _rows(db, "SELECT found_in FROM hits WHERE topic_id = 'goddard'") == [("article",)]


def test_auto_turns_article_text_on_for_teaser_feeds_only() -> None:
    from monitor.decide import wants_article_text

    assert wants_article_text("auto", [40, 120, 499])
    assert not wants_article_text("auto", [40, 2000, 3000])  # mostly full text
    assert not wants_article_text("auto", [])
    assert wants_article_text("always", [5000]) and not wants_article_text("never", [10])


def test_a_retryable_failure_backs_off_then_becomes_final() -> None:
    from monitor.decide import ARTICLE_ATTEMPTS, article_retry

    now = datetime(2026, 1, 1, tzinfo=UTC)
    delays = [article_retry(n, now) for n in range(1, ARTICLE_ATTEMPTS)]
    assert all(d is not None and d > now for d in delays)
    assert delays == sorted(delays) and len(set(delays)) == len(delays)
    assert article_retry(ARTICLE_ATTEMPTS, now) is None


def test_bad_article_settings_name_the_feed_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(yaml.safe_dump({
        "settings": {"article_budget": -1, "article_window": "soon"},
        "feeds": [{"id": "f", "url": "http://example.org/f", "article_text": "sometimes"}]}))
    result = run_cli("check", config=path)
    assert result.exit_code == 2
    text = result.output
    assert "settings.article_budget" in text and "settings.article_window" in text
    assert "feed f" in text and "article_text" in text


def test_topics_apply_reads_the_stored_article_text(tmp_path: Path, server: FeedServer) -> None:
    _serve_pages(server)
    config, db = _config(tmp_path / "feeds.yaml", server.url("/feed")), tmp_path / "m.db"
    _poll(config, db)
    data = yaml.safe_load(config.read_text())
    data["topics"][0]["query"] = "article:methane"  # only the Titan article has it
    config.write_text(yaml.safe_dump(data))
    result = run_cli("topics", "apply", "--topic", "goddard", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert _rows(db, "SELECT i.key, h.found_in FROM hits h JOIN items i ON i.id = h.item_id "
                     "WHERE h.topic_id = 'goddard'") == [("titan", "article")]
