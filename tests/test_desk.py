"""The desk (`monitor serve`) over HTTP: Starlette's TestClient on the real app,
over a real SQLite archive made by a real poll of files served by
tests/feedserver.py; no part of ours is replaced."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, unquote

import feedparser
import pytest
from feedserver import serve
from helpers import DATA, run_cli, write_config
from starlette.testclient import TestClient

from monitor.app import open_monitor
from monitor.config import CachedConfig
from monitor.digest.sources import sources_health
from monitor.store import Store
from monitor.web.app import create_app, desk_monitors
from monitor.web.security import CSP, DeskAuth

TOPIC = "kz-labour-protests"
EVIL_TITLE = ("<script>alert(1)</script> Miners strike in Kazakhstan over unpaid wages "
              "\u202eevil\u202c <img src=x onerror=alert(2)>")


def _evil_feed() -> bytes:
    now = formatdate(usegmt=True)
    esc = EVIL_TITLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Evil &lt;script&gt;alert(6)&lt;/script&gt; \u202efeed</title>
<link>javascript:alert(7)</link><description>x</description>
<item><title>{esc}</title><link>javascript:alert(3)</link><guid isPermaLink="false">evil-1</guid>
<description>&lt;script&gt;alert(4)&lt;/script&gt;Protest in Kazakhstan
&lt;a href="javascript:alert(5)"&gt;x&lt;/a&gt;</description><pubDate>{now}</pubDate></item>
<item><title>Protests over doubled gas prices spread across Kazakhstan</title>
<link>https://example.org/gas</link><guid>gas-1</guid><pubDate>{now}</pubDate></item>
</channel></rss>""".encode()


def _archive(folder: Path) -> tuple[Path, Path]:
    with serve() as server:
        server.put("/kz", (DATA / "feeds" / "kz-news.xml").read_bytes())
        server.put("/bbc", (DATA / "feeds" / "bbc-world.xml").read_bytes())
        server.put("/evil", _evil_feed())
        feeds = [{"id": "kz", "name": "kz", "url": server.url("/kz")},
                 {"id": "bbc", "name": "bbc", "url": server.url("/bbc")},
                 {"id": "evil", "url": server.url("/evil")},
                 {"id": "gone", "name": "gone", "url": server.url("/gone")}]  # 404: failing
        config = write_config(folder / "feeds.yaml", feeds)
        db = folder / "m.db"
        result = run_cli("poll", "--force", config=config, db=db)
        assert "gone" in result.output, result.output
    return config, db


def _client(config: Path, db: Path, **kwargs: object) -> TestClient:
    return TestClient(create_app(lambda: open_monitor(str(config), str(db)), **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _archive(tmp_path_factory.mktemp("desk"))


@pytest.fixture
def own_archive(tmp_path: Path) -> tuple[Path, Path]:
    """An archive of the test's own, for the tests that write."""
    return _archive(tmp_path)


@pytest.fixture
def client(archive: tuple[Path, Path]) -> Iterator[TestClient]:
    with _client(*archive) as c:
        yield c


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def _story_keys(html: str) -> list[str]:
    return [unquote(k) for k in re.findall(r'href="/story\?key=([^"]+)" class="open"', html)]


def _pages(c: TestClient) -> dict[str, str]:
    """Every page of the desk, with the evil story's own page."""
    topic = c.get(f"/topic/{TOPIC}?period=24h")
    keys = _story_keys(topic.text)
    assert keys, topic.text
    evil = next(k for k in keys if "evil" not in k)  # the keys are hashes; find by title below
    pages = {"overview": c.get("/"), "topic": topic, "search": c.get("/search?q=Miners"),
             "query search": c.get("/search?q=%40kazakhstan%20AND%20strike%2A"),
             "sources": c.get("/sources")}
    for key in keys:
        story = c.get(f"/story?key={quote(key)}")
        pages[f"story {key}"] = story
        if "Miners strike" in story.text:
            evil = key
    pages["propose"] = c.get(f"/propose?topic={TOPIC}&key={quote(evil)}&next=/")
    for name, r in pages.items():
        assert r.status_code == 200, (name, r.text)
    return {name: r.text for name, r in pages.items()}


def test_every_page_renders_on_a_polled_archive(client: TestClient) -> None:
    pages = _pages(client)
    assert "Labour protests in Kazakhstan" in pages["overview"]
    assert "<svg class=\"bars\"" in pages["overview"]
    assert "none reviewed" in pages["overview"]
    # ranked as the digest ranks: the snippet's matched words marked, chips for the terms
    assert "<mark>" in pages["topic"] and 'class="chip"' in pages["topic"]
    assert "Protests over doubled gas prices" in pages["topic"]
    assert "Miners strike" in pages["search"]
    assert "Read as query" in pages["query search"]
    assert all(f">{feed}<" in pages["sources"] or f"{feed} <span" in pages["sources"]
               for feed in ("kz", "bbc"))
    assert any("Evidence per topic" in text and "<mark>" in text
               for name, text in pages.items() if name.startswith("story"))
    assert "+" in pages["propose"] and "no_match" in pages["propose"]


def test_unknown_topic_and_story_are_404(client: TestClient) -> None:
    assert client.get("/topic/no-such-topic").status_code == 404
    assert client.get("/story?key=u%3Anothing").status_code == 404


def test_hostile_feed_content_is_inert_on_every_page(client: TestClient) -> None:
    pages = _pages(client)
    pages["atom"] = client.get(f"/topic/{TOPIC}/atom.xml?period=24h").text
    pages["json"] = client.get(f"/topic/{TOPIC}/export.json?period=24h").text
    pages["csv"] = client.get(f"/topic/{TOPIC}/export.csv?period=24h").text
    assert any("&lt;script&gt;alert(1)" in text for text in pages.values())
    for name, text in pages.items():
        assert "javascript:" not in text.lower(), name
        assert "\u202e" not in text and "\u202c" not in text, name
        if name in ("json", "csv"):
            continue  # data, not markup: served as application/json and text/csv
        assert "<img" not in text, name
        if name != "atom":
            # our own script, from a file; no other script element, no event attribute
            assert re.findall(r"<script[^>]*>", text) == ['<script src="/static/desk.js" defer>']
            assert not re.search(r"<[a-zA-Z][^>]*\son\w+\s*=", text), name


def test_security_headers_on_every_response(client: TestClient) -> None:
    for url in ("/", f"/topic/{TOPIC}", "/static/desk.js", "/no-such-page", "/sources",
                f"/topic/{TOPIC}/atom.xml"):
        r = client.get(url)
        assert r.headers["content-security-policy"] == CSP, url
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP
    client.cookies.clear()
    cookie = client.get("/").headers.get("set-cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def _precision(c: TestClient) -> str:
    html = c.get("/").text
    row = html[html.index(f'href="/topic/{TOPIC}"'):]
    found = re.search(r'class="precision">([^<]*)<', row)
    assert found
    return found.group(1)


def _evil_key(c: TestClient) -> str:
    for key in _story_keys(c.get(f"/topic/{TOPIC}?period=24h").text):
        if "Miners strike" in c.get(f"/story?key={quote(key)}").text:
            return key
    raise AssertionError("the hostile story is not in the topic")


def test_triage_changes_the_precision(own_archive: tuple[Path, Path]) -> None:
    config, _ = own_archive
    with _client(*own_archive) as c:
        evil = _evil_key(c)
        keys = [k for k in _story_keys(c.get(f"/topic/{TOPIC}?period=24h").text) if k != evil]
        token = _csrf(c.get(f"/topic/{TOPIC}").text)
        assert _precision(c) == "none reviewed"
        r = c.post("/triage", data={"csrf": token, "key": keys[0], "topic": TOPIC,
                                    "action": "relevant", "next": f"/topic/{TOPIC}"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/topic/{TOPIC}"
        assert _precision(c) == "1 of 1 reviewed relevant"
        starred = c.post("/triage", data={"csrf": token, "key": keys[0], "topic": TOPIC,
                                          "action": "star", "next": "/"})
        assert starred.status_code == 200
        only = c.get(f"/topic/{TOPIC}?period=24h&state=starred").text
        assert _story_keys(only) == [keys[0]]

        r = c.post("/triage", data={"csrf": token, "key": evil, "topic": TOPIC,
                                    "action": "not_relevant", "next": "https://evil.example/"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/propose?")
        proposal = c.get(r.headers["location"])
        assert "Write to feeds.yaml" in proposal.text
        added = re.findall(r'<span class="add">\+(.*)</span>', proposal.text)
        assert len(added) == 1 and "Miners strike" in added[0]  # one example line added
        assert _precision(c) == "1 of 2 reviewed relevant"
        before = config.read_text(encoding="utf-8")
        done = c.post("/propose", data={"csrf": token, "topic": TOPIC, "key": evil,
                                        "next": "https://evil.example/"},
                      follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/"
    after = config.read_text(encoding="utf-8")
    assert after != before
    topic = open_monitor(str(config), "unused.db").config.topic(TOPIC)
    assert topic.examples.no_match[-1].startswith("<script>alert(1)</script> Miners strike")


def test_post_without_csrf_is_refused(own_archive: tuple[Path, Path]) -> None:
    with _client(*own_archive) as c:
        key = _story_keys(c.get(f"/topic/{TOPIC}?period=24h").text)[0]
        form = {"key": key, "topic": TOPIC, "action": "relevant", "next": "/"}
        assert c.post("/triage", data=form).status_code == 403
        assert c.post("/triage", data={**form, "csrf": "forged"}).status_code == 403
        assert c.post("/propose", data={"topic": TOPIC, "key": key}).status_code == 403
        assert _precision(c) == "none reviewed"
    with _client(*own_archive) as fresh:  # a token from a page, but no cookie of its own
        token = _csrf(fresh.get(f"/topic/{TOPIC}?period=24h").text)
        fresh.cookies.clear()
        assert fresh.post("/triage", data={**form, "csrf": token}).status_code == 403


def test_topic_filters_and_keyset_paging(archive: tuple[Path, Path]) -> None:
    with _client(*archive, page_size=1) as c:
        seen: list[str] = []
        url: str | None = f"/topic/{TOPIC}?period=24h"
        for _ in range(50):
            assert url is not None
            html = c.get(url).text
            keys = _story_keys(html)
            assert len(keys) <= 1
            seen += keys
            found = re.search(r'href="([^"]+)" rel="next"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
            if url is None:
                break
        assert len(seen) >= 2 and len(set(seen)) == len(seen)
    with _client(*archive) as c:
        everything = _story_keys(c.get(f"/topic/{TOPIC}?period=24h").text)
        assert sorted(everything) == sorted(seen)
        only_evil = _story_keys(c.get(f"/topic/{TOPIC}?period=24h&feed=evil").text)
        assert 0 < len(only_evil) < len(everything)
        assert _story_keys(c.get(f"/topic/{TOPIC}?period=24h&language=xx").text) == []


def test_exports_csv_json_and_atom(client: TestClient) -> None:
    listed = _story_keys(client.get(f"/topic/{TOPIC}?period=24h").text)
    data = json.loads(client.get(f"/topic/{TOPIC}/export.json?period=24h").text)
    assert data["topic"] == TOPIC and len(data["stories"]) == len(listed)
    assert {s["story_key"] for s in data["stories"]} == set(listed)
    assert all(s["url"] is None or s["url"].startswith("http") for s in data["stories"])

    r = client.get(f"/topic/{TOPIC}/export.csv?period=24h")
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == len(listed)
    assert not any(v.startswith(("=", "+", "-", "@")) for row in table for v in row.values())

    atom = client.get(f"/topic/{TOPIC}/atom.xml?period=24h")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(atom.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert len(parsed.entries) == len(listed)
    assert all(e.id.startswith("urn:sha256:") and e.title for e in parsed.entries)
    assert any("Miners strike" in e.title for e in parsed.entries)


def test_login_is_required_and_rate_limited(archive: tuple[Path, Path]) -> None:
    with _client(*archive, auth=DeskAuth(token="s3cret-token")) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        token = _csrf(c.get("/login").text)
        for _ in range(5):
            assert c.post("/login", data={"csrf": token, "secret": "wrong"}).status_code == 401
        limited = c.post("/login", data={"csrf": token, "secret": "s3cret-token"})
        assert limited.status_code == 429
        assert c.get("/", follow_redirects=False).status_code == 303
    with _client(*archive, auth=DeskAuth(token="s3cret-token")) as c:
        token = _csrf(c.get("/login").text)
        assert c.post("/login", data={"csrf": "x", "secret": "s3cret-token"}).status_code == 403
        ok = c.post("/login", data={"csrf": token, "secret": "s3cret-token", "next": "/sources"},
                    follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/sources"
        assert c.get("/").status_code == 200


def test_password_hash_login(archive: tuple[Path, Path]) -> None:
    from monitor.web.security import PASSWORD_ENV, hash_password

    auth = DeskAuth.from_env({PASSWORD_ENV: hash_password("correct horse", iterations=1000)})
    with _client(*archive, auth=auth) as c:
        token = _csrf(c.get("/login").text)
        assert c.post("/login", data={"csrf": token, "secret": "wrong"}).status_code == 401
        assert c.post("/login", data={"csrf": token, "secret": "correct horse"}).status_code == 200
        assert "Topics" in c.get("/").text


def test_serve_refuses_a_non_loopback_host_without_auth(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_DESK_TOKEN", raising=False)
    monkeypatch.delenv("MONITOR_DESK_PASSWORD_HASH", raising=False)
    config = write_config(tmp_path / "feeds.yaml", [])
    for host in ("0.0.0.0", "192.0.2.7", "::"):
        result = run_cli("serve", "--host", host, "--port", "0", config=config,
                         db=tmp_path / "m.db")
        assert result.exit_code == 2, result.output
        assert "MONITOR_DESK_TOKEN" in result.output and "not a loopback" in result.output
    monkeypatch.setenv("MONITOR_DESK_PASSWORD_HASH", "plain-text")
    result = run_cli("serve", "--host", "0.0.0.0", config=config, db=tmp_path / "m.db")
    assert result.exit_code == 2 and "pbkdf2_sha256" in result.output



@contextmanager
def running_desk(config: Path, db: Path) -> Iterator[str]:
    """The desk on a real uvicorn on 127.0.0.1 (a free port) in a thread; its base URL."""
    import threading
    import time

    import uvicorn

    app = create_app(desk_monitors(str(config), str(db)))  # as `monitor serve` builds it
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.025)
        assert server.started
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_the_desk_on_a_real_uvicorn_over_loopback(archive: tuple[Path, Path]) -> None:
    import httpx

    with running_desk(*archive) as base, httpx.Client(base_url=base) as c:
        page = c.get(f"/topic/{TOPIC}?period=24h")
        assert page.status_code == 200 and "Miners strike" in page.text
        assert page.headers["content-security-policy"] == CSP
        assert c.post("/triage", data={"action": "relevant"}).status_code == 403
        script = c.get("/static/desk.js")
        assert script.status_code == 200 and "keydown" in script.text


def test_monitor_serve_runs_the_desk_on_loopback(archive: tuple[Path, Path]) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_DESK_")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(archive[0]),
                             "--db", str(archive[1]), "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page = None
        for _ in range(200):
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/sources", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        assert page is not None and page.status_code == 200
        assert "Sources" in page.text and page.headers["x-content-type-options"] == "nosniff"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_note_is_kept_escaped_and_clear_resets_the_verdict(own_archive: tuple[Path, Path]) -> None:
    with _client(*own_archive) as c:
        key = _evil_key(c)
        story = f"/story?key={quote(key)}"
        token = _csrf(c.get(story).text)
        form = {"csrf": token, "key": key, "topic": TOPIC, "next": story}
        c.post("/triage", data={**form, "action": "note", "note": '<b onclick="x()">seen</b>'})
        c.post("/triage", data={**form, "action": "relevant"})
        page = c.get(story).text
        assert "&lt;b onclick=&#34;x()&#34;&gt;seen&lt;/b&gt;" in page
        assert _precision(c) == "1 of 1 reviewed relevant"
        c.post("/triage", data={**form, "action": "clear"})
        assert _precision(c) == "none reviewed"
        assert "&lt;b onclick" in c.get(story).text  # the note outlives the verdict


def test_serve_hash_password_prints_a_hash_the_login_accepts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli
    from monitor.web.security import check_password

    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "feeds.yaml"), "serve",
                                      "--hash-password"], input="hunter22\nhunter22\n")
    assert result.exit_code == 0, result.output
    encoded = result.output.strip().splitlines()[-1]
    assert encoded.startswith("pbkdf2_sha256$") and "hunter22" not in encoded
    assert check_password("hunter22", encoded) and not check_password("hunter23", encoded)


def test_sources_list_failing_then_silent_first(client: TestClient) -> None:
    html = client.get("/sources").text
    states = re.findall(r'<tr class="(\w+)"><td>', html)
    assert states[0] == "failing" and "gone" in html.split('<tr class="failing">')[1][:200]
    assert states == sorted(states, key=["failing", "silent", "disabled", "ok"].index)
    assert "ok" in states


def test_topics_check_runs_the_desks_verdicts_as_examples(
        own_archive: tuple[Path, Path]) -> None:
    config, db = own_archive
    with open_monitor(str(config), str(db)) as m:
        since = datetime.now(UTC) - timedelta(days=3650)
        stories = m.desk_topic(TOPIC, since, datetime.now(UTC) + timedelta(seconds=1))
        by_title = {s.title: s.key for s in stories["section"].stories}
        gas = next(k for t, k in by_title.items() if "doubled gas prices" in t)
        miners = next(k for t, k in by_title.items() if "Miners strike" in t)
        jackson = m.search(m.search_reading("Jesse Jackson"), limit=1)[0]["story_key"]
        assert jackson not in by_title.values()
    assert run_cli("topics", "check", config=config, db=db).exit_code == 0  # no verdicts yet
    with open_monitor(str(config), str(db)) as m:
        m.set_verdict(gas, TOPIC, verdict="relevant")  # matches: passes
        m.set_verdict(miners, TOPIC, verdict="not_relevant")  # still matches: fails
        m.set_verdict(jackson, TOPIC, verdict="relevant")  # never matched: fails

    result = run_cli("topics", "check", config=config, db=db)
    assert result.exit_code == 2, result.output
    assert "2 example(s) failed" in result.output
    assert re.search(r"verdict: story '[^\n]*Miners strike[^\n]*' was marked not relevant for "
                     rf"topic {TOPIC} and now matches it", result.output), result.output
    assert re.search(r"verdict: story 'US civil rights leader Jesse Jackson dies aged 84' was "
                     rf"marked relevant for topic {TOPIC} and no longer matches it",
                     result.output), result.output
    data = json.loads(run_cli("topics", "check", "--json", config=config, db=db).stdout)
    verdicts = {r["story"]: r for r in data["examples"] if "story" in r}
    assert {k: (r["expect"], r["pass"]) for k, r in verdicts.items()} == {
        gas: ("match", True), miners: ("no match", False), jackson: ("match", False)}
    assert data["failed"] == 2


def test_the_desk_reads_feeds_yaml_again_only_when_it_changes(
        own_archive: tuple[Path, Path]) -> None:
    config, db = own_archive
    cache = CachedConfig()
    with TestClient(create_app(lambda: open_monitor(str(config), str(db), load=cache))) as c:
        for url in ("/", f"/topic/{TOPIC}", "/sources", "/"):
            assert c.get(url).status_code == 200
        assert cache.loads == 1
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("Labour protests in Kazakhstan",
                                       "Strikes and protests, Kazakhstan"), encoding="utf-8")
        page = c.get("/").text
        assert "Strikes and protests, Kazakhstan" in page
        assert "Labour protests in Kazakhstan" not in page
        assert c.get(f"/topic/{TOPIC}").status_code == 200
        assert cache.loads == 2


def test_silence_of_every_feed_is_one_query(own_archive: tuple[Path, Path]) -> None:
    _, db = own_archive
    statements: list[str] = []
    with Store(str(db)) as store:
        feeds = store.digest_feeds()
        one_by_one = {f: store.recent_published(f, datetime.now(UTC), 20) for f in feeds}
        store.conn.set_trace_callback(statements.append)
        sources_health(store, feeds, datetime.now(UTC))
        together = store.recent_published_many(list(feeds), datetime.now(UTC), 20)
        store.conn.set_trace_callback(None)
    reads = [s for s in statements if "published_at" in s and "items" in s]
    assert len(reads) == 2, reads  # sources_health's one, and the direct call's
    assert together == one_by_one
    assert any(together.values())


def test_sources_page_shows_each_feeds_item_count(client: TestClient) -> None:
    page = client.get("/sources").text
    assert "built-in method" not in page  # a dict's .items method, not the count
    assert re.search(r"<td>bbc <span class=\"muted\">bbc</span></td><td>\w+</td><td>[1-9]\d*</td>",
                     page), page
