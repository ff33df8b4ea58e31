"""Alerts (issue 16) through real parts: feeds served by tests/feedserver.py,
the real CLI and `Monitor`, a real webhook receiver on 127.0.0.1 that checks
the HMAC signature, and the daemon as a subprocess killed during delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from feedserver import FeedServer, post_server
from helpers import run_cli, write_config
from test_daemon import daemon, polled, rows, wait_for

from monitor.app import Monitor
from monitor.decide import alert_retry, alert_split, in_quiet_hours

SECRET = "s3cret-for-tests"
SECRET_ENV = "MONITOR_TEST_ALERT_SECRET"
TOPICS = [{"id": "protests", "name": "Protests", "query": "protest"},
          {"id": "arrests", "name": "Arrests", "query": "arrested"}]


# --- the receiver -----------------------------------------------------------------------------

@dataclass
class Receiver:
    """A webhook target: records each POST (key, body, whether its signature
    is right) and answers ``statuses`` in turn (then 200)."""

    secret: bytes = SECRET.encode()
    statuses: list[int] = field(default_factory=list)
    hold_at: int | None = None  # the n-th request (1-based) waits for `release`
    posts: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def keys(self) -> list[str]:
        with self.lock:
            return [p["key"] for p in self.posts]

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        stamp = h.headers.get("X-Monitor-Timestamp", "")
        mac = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        with self.lock:
            self.posts.append({"key": h.headers.get("X-Monitor-Key"), "json": json.loads(body),
                               "signed": h.headers.get("X-Monitor-Signature") == f"sha256={mac}"})
            n = len(self.posts)
            status = self.statuses.pop(0) if self.statuses else 200
        if self.hold_at == n:
            self.arrived.set()
            self.release.wait(20)
        payload = b"ok"
        h.send_response(status)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)


@contextmanager
def receiver(**kwargs: Any) -> Iterator[Receiver]:
    rec = Receiver(**kwargs)

    with post_server(rec.handle) as url:
        rec.url = url
        try:
            yield rec
        finally:
            rec.release.set()


# --- feeds and config -------------------------------------------------------------------------

def rss(items: list[tuple[str, str, str]], age: timedelta = timedelta(hours=1)) -> bytes:
    """(guid, title, link) items, published ``age`` ago."""
    when = format_datetime(datetime.now(UTC) - age, usegmt=True)
    body = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
                   f"<description>{t}</description><pubDate>{when}</pubDate></item>"
                   for g, t, link in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title>'
            f"<link>http://example.org/</link>{body}</channel></rss>").encode()


BACKLOG = [("old-1", "Workers protest in Zhanaozen", "http://example.org/old-1")]


def setup(tmp_path: Path, server: FeedServer, rec: Receiver, n_feeds: int = 1,
          settings: dict[str, Any] | None = None, feed_languages: tuple[str, ...] = (),
          **alert: Any) -> tuple[Path, Path]:
    feeds = []
    for i in range(n_feeds):
        server.put(f"/f{i}", rss(BACKLOG))
        feeds.append({"id": f"f{i}", "name": f"Feed {i}", "url": server.url(f"/f{i}")})
        if feed_languages:
            feeds[-1]["language"] = feed_languages[i]
    hook = {"id": "desk", "to": rec.url, "secret_env": SECRET_ENV, "allow_private": True,
            **alert}
    config = write_config(tmp_path / "feeds.yaml", feeds, topics=False, settings=settings)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.update(topics=TOPICS, alerts=[hook])
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config, tmp_path / "m.db"


def poll(config: Path, db: Path) -> None:
    result = run_cli("poll", "--force", config=config, db=db)
    assert result.exit_code == 0, result.output


def deliver(config: Path, db: Path, now: datetime | None = None) -> None:
    with Monitor(str(config), str(db)) as m:
        m.deliver_alerts(now)


def alerts_json(config: Path, db: Path) -> dict[str, Any]:
    result = run_cli("alerts", "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    return {a["id"]: a for a in json.loads(result.output)["alerts"]}


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


# --- behaviour --------------------------------------------------------------------------------

def test_backlog_does_not_alert(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec)
        poll(config, db)
        deliver(config, db)
        assert rec.posts == []
        assert alerts_json(config, db)["desk"]["pending"] == 0


def test_new_items_in_a_second_poll_alert_once_signed(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec)
        poll(config, db)
        new = ("new-1", "Journalist arrested after protest", "http://example.org/new-1")
        server.put("/f0", rss([new, *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        poll(config, db)  # the same item again: nothing new
        deliver(config, db)
        assert len(rec.posts) == 1
        post = rec.posts[0]
        assert post["signed"]
        assert post["json"]["kind"] == "story"
        story = post["json"]["stories"][0]
        assert story["title"] == "Journalist arrested after protest"
        assert {t["id"] for t in story["topics"]} == {"protests", "arrests"}
        assert story["feeds"] == ["Feed 0"]
        state = alerts_json(config, db)["desk"]
        assert state["state"] == "ok" and state["pending"] == 0 and state["last_sent_at"]


def test_a_story_from_three_feeds_alerts_once(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, n_feeds=3)
        poll(config, db)
        for i in range(3):
            server.put(f"/f{i}", rss([(f"s-{i}", "Protest in Almaty", "http://example.org/s"),
                                      *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        assert len(rec.posts) == 1
        assert len(rec.posts[0]["json"]["stories"][0]["feeds"]) == 3


def test_topics_apply_does_not_alert(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec)
        poll(config, db)
        server.put("/f0", rss([("n", "Strike at the oil field", "http://example.org/n"),
                               *BACKLOG]))
        poll(config, db)
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["topics"][1]["query"] = "strike"
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        result = run_cli("topics", "apply", "--topic", "arrests", config=config, db=db)
        assert result.exit_code == 0, result.output
        assert rows(db, "SELECT count(*) FROM hits WHERE topic_id = 'arrests'") == [(1,)]
        deliver(config, db)
        assert rec.posts == []


def test_items_older_than_the_window_do_not_alert(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, window="2h")
        poll(config, db)
        server.put("/f0", rss([("n", "Protest", "http://example.org/n"), *BACKLOG],
                              age=timedelta(hours=3)))
        poll(config, db)
        deliver(config, db)
        assert rec.posts == []


def test_languages_filter_on_the_items_language(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, n_feeds=2, feed_languages=("en", "ru"),
                           languages=["ru"])
        poll(config, db)
        server.put("/f0", rss([("e", "Protest in English", "http://example.org/e"), *BACKLOG]))
        server.put("/f1", rss([("r", "Protest in Russian", "http://example.org/r"), *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        assert [p["json"]["stories"][0]["title"] for p in rec.posts] == ["Protest in Russian"]


def test_min_sources_waits_for_the_second_feed(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, n_feeds=2, min_sources=2)
        poll(config, db)
        story = ("m-0", "Protest in Shymkent", "http://example.org/m")
        server.put("/f0", rss([story, *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        assert rec.posts == []
        assert alerts_json(config, db)["desk"]["pending"] == 1
        server.put("/f1", rss([("m-1", "Protest in Shymkent", "http://example.org/m"),
                               *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        assert len(rec.posts) == 1


def test_a_receiver_answering_500_is_retried_then_delivered(tmp_path, server):
    with receiver(statuses=[500]) as rec:
        config, db = setup(tmp_path, server, rec)
        poll(config, db)
        server.put("/f0", rss([("n", "Protest", "http://example.org/n"), *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        state = alerts_json(config, db)["desk"]
        assert state["state"] == "failing" and state["pending"] == 1
        assert "500" in state["last_error"]
        status = run_cli("status", config=config, db=db)
        assert "alert desk failing" in status.output
        for fmt in ("text", "json"):
            digest = run_cli("digest", "--format", fmt, "--since", "24h", config=config, db=db)
            assert digest.exit_code == 0, digest.output
            assert "desk" in digest.output and "answered 500" in digest.output
        deliver(config, db)  # still backing off: nothing sent
        assert len(rec.posts) == 1
        deliver(config, db, now=datetime.now(UTC) + timedelta(minutes=10))
        assert len(rec.posts) == 2
        assert rec.posts[0]["key"] == rec.posts[1]["key"]
        state = alerts_json(config, db)["desk"]
        assert state["state"] == "ok" and state["pending"] == 0
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("m.db*"))
        assert SECRET.encode() not in stored


def test_a_hanging_receiver_does_not_block_the_next_poll(tmp_path, server):
    with receiver(hold_at=1) as rec:
        config, db = setup(tmp_path, server, rec)
        poll(config, db)
        server.put("/f0", rss([("n1", "Protest", "http://example.org/n1"), *BACKLOG]))
        poll(config, db)
        sender = threading.Thread(target=deliver, args=(config, db))
        sender.start()
        try:
            assert rec.arrived.wait(10), "the delivery never reached the receiver"
            server.put("/f0", rss([("n2", "Protest again", "http://example.org/n2"),
                                   ("n1", "Protest", "http://example.org/n1"), *BACKLOG]))
            poll(config, db)  # while the receiver hangs
            assert rows(db, "SELECT count(*) FROM alert_outbox WHERE sent_at IS NULL") == [(2,)]
        finally:
            rec.release.set()
            sender.join(30)
        assert not sender.is_alive()


def test_over_the_hourly_cap_the_rest_is_one_summary(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, max_per_hour=3)
        poll(config, db)
        new = [(f"c{i}", f"Protest number {i}", f"http://example.org/c{i}") for i in range(6)]
        server.put("/f0", rss([*new, *BACKLOG]))
        poll(config, db)
        deliver(config, db)
        kinds = [p["json"]["kind"] for p in rec.posts]
        assert kinds == ["story", "story", "summary"]
        assert len(rec.posts[2]["json"]["stories"]) == 4
        assert alerts_json(config, db)["desk"]["pending"] == 0


def test_alerts_test_sends_a_sample(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec)
        result = run_cli("alerts", "test", "desk", config=config, db=db)
        assert result.exit_code == 0, result.output
        assert [p["json"]["kind"] for p in rec.posts] == ["test"]
        assert rec.posts[0]["signed"]
        result = run_cli("alerts", "test", "nope", config=config, db=db)
        assert result.exit_code == 2


def test_an_unknown_topic_in_an_alert_names_it(tmp_path, server):
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, topics=["nope"])
        result = run_cli("check", config=config, db=db)
        assert result.exit_code == 2
        assert "alert desk" in result.output and "unknown topic 'nope'" in result.output


def test_alert_policy():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert alert_retry(1, now) < alert_retry(3, now) <= now + timedelta(hours=1)
    night = (time(22), time(7))
    assert in_quiet_hours(time(23), night) and in_quiet_hours(time(6, 59), night)
    assert not in_quiet_hours(time(7), night)
    assert alert_split(5, 0, 20) == (5, 0)
    assert alert_split(6, 0, 3) == (2, 4)
    assert alert_split(6, 3, 3) == (0, 0)


def test_quiet_hours_hold_messages(tmp_path, server):
    with receiver() as rec:
        now = datetime.now(UTC)
        start = (now - timedelta(minutes=30)).strftime("%H:%M")
        end = (now + timedelta(minutes=30)).strftime("%H:%M")
        config, db = setup(tmp_path, server, rec, quiet_hours=f"{start}-{end}")
        poll(config, db)
        server.put("/f0", rss([("n", "Protest", "http://example.org/n"), *BACKLOG]))
        poll(config, db)
        with Monitor(str(config), str(db)) as m:
            m.deliver_alerts(now, local=UTC)
            assert rec.posts == []
            m.deliver_alerts(now + timedelta(hours=1), local=UTC)
        assert len(rec.posts) == 1


# --- the daemon, killed during delivery ----------------------------------------------------------

def test_sigkill_during_delivery_loses_no_alert_and_repeats_at_most_one(tmp_path, server):
    with receiver(hold_at=2) as rec:
        config, db = setup(tmp_path, server, rec,
                           settings={"interval": "1s", "min_interval": "1s"})
        env = {SECRET_ENV: SECRET}
        with daemon(tmp_path, config, db, env=env) as d:
            wait_for(lambda: polled(db, "f0"), 20, "the first poll")
            new = [(f"k{i}", f"Protest number {i}", f"http://example.org/k{i}")
                   for i in range(5)]
            server.put("/f0", rss([*new, *BACKLOG]))
            assert rec.arrived.wait(20), f"no second delivery:\n{d.log()}"
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(10)
        rec.release.set()
        assert rows(db, "SELECT count(*) FROM alert_outbox") == [(5,)]
        with daemon(tmp_path, config, db, env=env) as d:
            wait_for(lambda: len(set(rec.keys())) == 5, 20, "every alert delivered")
            assert d.stop() == 0
        keys = rec.keys()
        assert len(keys) - len(set(keys)) <= 1
        assert rows(db, "SELECT count(*) FROM alert_outbox WHERE sent_at IS NULL") == [(0,)]


# --- hits that arrive with the article text ------------------------------------------------------

ARTICLE_TOPIC = {"id": "goddard", "name": "Goddard", "query": '"Goddard Space Flight Center"'}


def teaser_rss(links: list[tuple[str, str]]) -> bytes:
    """(guid, link) teasers whose title and summary lack the topic's words."""
    return rss([(g, "Space news", link) for g, link in links])


def test_a_hit_found_in_the_article_alerts_once_after_the_article(tmp_path, server):
    page = (Path(__file__).parent / "data" / "articles" / "europa-plumes.html").read_bytes()
    for path in ("/a/old", "/a/new"):
        server.put(path, page, "text/html; charset=utf-8")
    with receiver() as rec:
        config, db = setup(tmp_path, server, rec, settings={"article_text": "always"})
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["topics"] = [ARTICLE_TOPIC]
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        server.put("/f0", teaser_rss([("old", server.url("/a/old"))]))
        poll(config, db)  # the backlog's article matches too, but must not alert
        assert rows(db, "SELECT count(*) FROM hits") == [(1,)]
        server.put("/f0", teaser_rss([("new", server.url("/a/new")),
                                      ("old", server.url("/a/old"))]))
        data["settings"]["article_budget"] = 0  # the article stays queued
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        poll(config, db)
        deliver(config, db)
        assert rec.posts == [] and rows(db, "SELECT count(*) FROM alert_outbox") == [(0,)]
        del data["settings"]["article_budget"]
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        poll(config, db)  # fetches the queued article: its hit alerts
        deliver(config, db)
        poll(config, db)
        deliver(config, db)
        assert [p["json"]["stories"][0]["title"] for p in rec.posts] == ["Space news"]
        assert rec.posts[0]["json"]["stories"][0]["topics"][0]["id"] == "goddard"
        assert rows(db, "SELECT count(*) FROM alert_outbox") == [(1,)]
