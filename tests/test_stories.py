"""One story, one entry: canonical URLs, story keys across feeds, search over
the archive, and re-applying changed topics to stored items."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, write_config
from hypothesis import given
from hypothesis import strategies as st

from monitor.stories import canonical_url, normalise_title, title_key

STORY = ("Kazakhstan: miners strike in Karaganda over unpaid wages",
         "Coal miners at a Karaganda mine in Kazakhstan went on strike on Monday.")


def rss(items: list[tuple[str, str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{guid}</guid>"
        f"<description>{d}</description><pubDate>Mon, 05 Jan 2026 08:00:00 GMT</pubDate></item>"
        for t, d, link, guid in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x'
            f"</title><link>https://example.org/</link>{body}</channel></rss>").encode()


# --- canonical URLs ---------------------------------------------------------------------

def test_canonical_url_drops_tracking_fragment_and_case():
    base = "https://www.rferl.org/a/kazakhstan-strike/33001.html"
    for variant in [
        "https://WWW.RFERL.org/a/kazakhstan-strike/33001.html#comments",
        "http://www.rferl.org:80/a/kazakhstan-strike/33001.html?utm_source=rss&utm_medium=feed",
        "https://www.rferl.org/a/kazakhstan-strike/33001.html?fbclid=abc&gclid=x",
        "https://www.rferl.org/a/kazakhstan-strike/33001.html?at_medium=RSS&at_campaign=KARANGA",
    ]:
        assert canonical_url(variant) == canonical_url(base)
    assert canonical_url(base + "?id=2") != canonical_url(base + "?id=3")
    assert canonical_url("javascript:alert(1)") is None and canonical_url(None) is None


tracking = st.dictionaries(
    st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "fbclid", "gclid",
                     "at_medium", "mc_cid"]),
    st.text(alphabet="abcdefXYZ0123456789", min_size=1, max_size=8), max_size=4)
path = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1,
                        max_size=12), min_size=1, max_size=4).map("/".join)


@given(path=path, params=tracking, fragment=st.text(alphabet="abc123", max_size=6),
       upper=st.booleans())
def test_canonical_url_is_stable_under_irrelevant_changes(path, params, fragment, upper):
    plain = f"https://news.example.kz/{path}?id=7"
    host = "NEWS.Example.KZ" if upper else "news.example.kz"
    query = "&".join([*(f"{k}={v}" for k, v in params.items()), "id=7"])
    noisy = f"https://{host}/{path}?{query}" + (f"#{fragment}" if fragment else "")
    assert canonical_url(noisy) == canonical_url(plain)


@given(st.text(max_size=200))
def test_title_normalisation_never_raises_and_is_idempotent(title):
    norm = normalise_title(title)
    assert normalise_title(norm) == norm
    key = title_key(title)
    assert key is None or key == title_key(title + " !")
    ascii_title = title.encode("ascii", "ignore").decode()
    assert title_key(ascii_title) == title_key(ascii_title.upper())


# --- the same story from three feeds -----------------------------------------------------

@pytest.fixture
def three_feeds(tmp_path: Path, server):
    url = "https://www.rferl.org/a/kazakhstan-karaganda-strike/33001.html"
    server.put("/a", rss([(*STORY, url + "?utm_source=rss", "a-1")]))
    server.put("/b", rss([(*STORY, url.replace("www.rferl", "WWW.RFERL") + "#top", "b-9")]))
    # a third outlet with its own URL but the same headline
    server.put("/c", rss([(STORY[0], "Shakhtyory bastuyut.", "https://other.kz/1", "c-5")]))
    feeds = [{"id": f"feed-{x}", "name": x, "url": server.url(f"/{x}")} for x in "abc"]
    config = write_config(tmp_path / "feeds.yaml", feeds)
    yield server, config, tmp_path / "m.db"


def test_story_from_three_feeds_is_shown_once_with_three_sources(three_feeds):
    _, config, db = three_feeds
    assert run_cli("poll", "--force", config=config, db=db).exit_code == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 3
    assert conn.execute("SELECT count(DISTINCT story_key) FROM items").fetchone()[0] == 1
    rows = json.loads(run_cli("hits", "--json", "--topic", "kz-labour-protests",
                              config=config, db=db).stdout)
    assert len(rows) == 1
    assert rows[0]["feeds"] == ["feed-a", "feed-b", "feed-c"]
    found = json.loads(run_cli("search", "--json", "karaganda", config=config,
                               db=db).stdout)["results"]
    assert len(found) == 1 and found[0]["feeds"] == ["feed-a", "feed-b", "feed-c"]


# --- search --------------------------------------------------------------------------------

def test_search_ranks_snippets_and_expands_terms(three_feeds, tmp_path):
    server, config, db = three_feeds
    server.put("/a", rss([
        (*STORY, "https://x.org/1", "a-1"),
        ("Weather in Astana", "Snow is expected; miners mentioned once.", "https://x.org/2", "a-2"),
    ]))
    run_cli("poll", "--force", config=config, db=db)
    found = json.loads(run_cli("search", "--json", "miners", config=config,
                               db=db).stdout)["results"]
    assert found[0]["title"] == STORY[0]  # in the title weighs more than in a summary
    assert "[[" in found[0]["snippet"]
    # @terms of feeds.yaml work in search, with Cyrillic folding
    found = json.loads(run_cli("search", "--json", "@kazakhstan AND strike*",
                               config=config, db=db).stdout)["results"]
    assert found and all("strike" in (f["title"] + f["snippet"]).lower() for f in found)
    text = run_cli("search", "karaganda", config=config, db=db).output
    assert "stories" in text


@pytest.mark.parametrize("query", ["@no_such_list", "   "])
def test_invalid_search_query_exits_2_with_a_message(three_feeds, query):
    _, config, db = three_feeds
    run_cli("poll", "--force", config=config, db=db)
    result = run_cli("search", query, config=config, db=db)
    assert result.exit_code == 2
    assert "invalid query" in result.output or "no_such_list" in result.output


@pytest.mark.parametrize("query", ['"unterminated', "AND AND", "NEAR(", "a:b"])
def test_search_that_is_not_a_query_is_read_as_plain_words(three_feeds, query):
    # These exited 2 ("invalid query") before search fell back to plain words.
    _, config, db = three_feeds
    run_cli("poll", "--force", config=config, db=db)
    result = run_cli("search", query, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reading"] == "plain words"


# --- topics apply --------------------------------------------------------------------------

def edit_topic(config: Path, topic_id: str, query: str) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for topic in data["topics"]:
        if topic["id"] == topic_id:
            topic["query"] = query
            topic.pop("exclude", None)
            topic["examples"] = {"match": [], "no_match": []}
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def hits_of(db: Path, topic_id: str) -> set[str]:
    conn = sqlite3.connect(db)
    return {r[0] for r in conn.execute(
        "SELECT i.key FROM hits h JOIN items i ON i.id = h.item_id WHERE h.topic_id = ?",
        [topic_id])}


def test_topics_apply_adds_and_removes_exactly_what_the_new_query_implies(tmp_path, server):
    feeds_dir = Path(__file__).parent / "data" / "feeds"
    feeds = []
    for name in ["kz-news.xml", "bbc-world.xml", "moscowtimes.xml", "aljazeera.xml"]:
        server.put(f"/{name}", (feeds_dir / name).read_bytes())
        feeds.append({"id": name.split(".")[0], "name": name, "url": server.url(f"/{name}")})
    config = write_config(tmp_path / "feeds.yaml", feeds)
    db = tmp_path / "m.db"
    run_cli("poll", "--force", config=config, db=db)
    before = hits_of(db, "kz-labour-protests")
    assert before

    new_query = "russia* OR россия* OR kremlin OR Кремл*"
    edit_topic(config, "kz-labour-protests", new_query)
    warned = run_cli("poll", config=config, db=db)
    assert "topics apply --topic kz-labour-protests" in warned.output
    result = run_cli("topics", "apply", "--topic", "kz-labour-protests", config=config, db=db)
    assert result.exit_code == 0, result.output
    after = hits_of(db, "kz-labour-protests")

    # The reference: a fresh database polled with the new query from the start.
    fresh = tmp_path / "fresh.db"
    for served in server.files.values():
        served.etag = ""
    run_cli("poll", "--force", config=config, db=fresh)
    assert after == hits_of(fresh, "kz-labour-protests")
    assert after != before and after - before and before - after
    assert str(len(after - before)) in result.output
    # applied: no more warning
    assert "topics apply" not in run_cli("poll", config=config, db=db).output


def test_search_windows_find_rare_old_items_and_stop_early_on_common_words(tmp_path,
                                                                           monkeypatch):
    from datetime import UTC, datetime, timedelta

    from monitor.store import PollWrite, Store
    from monitor.store import search as store_module
    from monitor.types import Entry, FeedConfig, FeedUpdate

    monkeypatch.setattr(store_module, "SEARCH_WINDOW", 4)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    entries = [Entry(key=f"k{i}", title=f"common headline number {i}"
                     + (" rarest" if i == 0 else ""), summary="text",
                     url=f"https://example.org/{i}", published_at=now + timedelta(hours=i),
                     content_hash=str(i)) for i in range(60)]
    with Store(tmp_path / "m.db") as store:
        store.sync_feeds([FeedConfig(id="f", url="https://example.org/f", name="f")], now)
        store.commit_polls([PollWrite(FeedUpdate(feed_id="f", fetched_at=now, outcome="new",
                                                 next_due_at=now), new=entries)])
        rare = store.search("rarest", limit=5)
        assert [r["title"] for r in rare] == ["common headline number 0 rarest"]
        common = store.search("common", limit=2)
        assert len(common) == 2
        # the newest window was enough: the oldest items were never ranked
        assert all(int(r["title"].split()[3]) >= 40 for r in common)
