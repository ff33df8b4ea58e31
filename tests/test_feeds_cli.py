"""`monitor feeds add/remove/enable` through the real CLI, against real feed
files and a real HTML page served on 127.0.0.1, editing a commented feeds.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from feedserver import FeedServer
from helpers import DATA, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ID_PATTERN, load_config
from monitor.discover import derive_id, feed_links
from monitor.errors import ConfigError
from monitor.feedsfile import FeedSpec, add_feeds, remove_feeds, yaml_scalar

FEEDS = DATA / "feeds"
PAGE = (DATA / "pages" / "daringfireball.html").read_bytes()
ATOM = (DATA / "parse" / "real" / "feed-extractor-googlenews-atom.xml").read_bytes()

# A hand-kept file: comments everywhere, two spacing styles, a flow list with
# odd spacing; `feeds add`/`remove` must leave every byte of it alone.
CONFIG = """\
# My desk's feeds — edited by hand, keep these notes.
settings:
    allow_private:   true     # the test server is on 127.0.0.1
    article_text: never
    timeout: 5s
    connect_timeout: 2s

feeds:
  # --- wires
  - id: kz-news
    name: "Kazakhstan news"
    url: {kz}
    tags: [kazakhstan,   news]   # odd spacing on purpose

  # --- Russia
  - id: moscow-times
    name: 'The Moscow Times'
    url: {mt}
    language: en

# --- what we look for
terms:
  kazakhstan: [Kazakhstan, "Kazakh*", "Казахстан*"]
topics:
  - id: kz
    name: "Kazakhstan"
    query: '@kazakhstan'
    examples:
      match: ["Kazakhstan holds an election"]
"""


@pytest.fixture
def server(server: FeedServer) -> FeedServer:
    server.put("/kz-news", (FEEDS / "kz-news.xml").read_bytes())
    server.put("/moscow-times", (FEEDS / "moscowtimes.xml").read_bytes())
    server.put("/bbc", (FEEDS / "bbc-world.xml").read_bytes())
    server.put("/", PAGE, "text/html; charset=utf-8")
    server.put("/feeds/main", ATOM, "application/atom+xml")
    server.put("/feeds/json", b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
               "application/json")
    return server


@pytest.fixture
def config(tmp_path: Path, server: FeedServer) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_bytes(CONFIG.format(kz=server.url("/kz-news"),
                                   mt=server.url("/moscow-times")).encode("utf-8"))
    return path


def inserted(before: bytes, after: bytes) -> bytes:
    """The one block ``after`` adds to ``before``, every other byte unchanged."""
    p = 0
    while p < len(before) and before[p] == after[p]:
        p += 1
    added = len(after) - len(before)
    assert added > 0 and after[p + added:] == before[p:], "more than one block changed"
    return after[p:p + added]


def test_add_by_feed_url_appends_one_block_and_keeps_every_other_byte(config, server, tmp_path):
    before = config.read_bytes()
    result = run_cli("feeds", "add", server.url("/bbc"), config=config)
    assert result.exit_code == 0, result.output
    assert "added feed bbc-news" in result.output
    assert "items: 33" in result.output and "title: BBC News" in result.output
    assert "SIGHUP" in result.output

    block = inserted(before, config.read_bytes()).decode()
    assert block == f'  - id: bbc-news\n    name: "BBC News"\n    url: {server.url("/bbc")}\n'
    # at the end of the feeds list: after the last feed, before the comment heading terms
    text = config.read_text()
    assert text.index("language: en\n" + block) < text.index("# --- what we look for")
    assert [f.id for f in load_config(config).feeds] == ["kz-news", "moscow-times", "bbc-news"]
    check = run_cli("check", config=config)
    assert check.exit_code == 0, check.output
    assert "3 feeds" in check.output

    # what was written is a feed the poller reads
    db = tmp_path / "monitor.db"
    polled = run_cli("poll", "--feed", "bbc-news", "--json", config=config, db=db)
    assert polled.exit_code == 0, polled.output
    assert json.loads(polled.stdout)["feeds"][0]["new_items"] == 33


def test_add_by_page_url_finds_the_feed_linked_from_the_page(config, server):
    result = run_cli("feeds", "add", server.url("/"), "--id", "google-top", "--tag", "world",
                     "--tag", "top stories", "--name", "Google: top", "--interval", "30m",
                     "--language", "en", config=config)
    assert result.exit_code == 0, result.output
    feed_url = server.url("/feeds/main")  # href="/feeds/main", resolved against the page
    assert f"url: {feed_url} (found on {server.url('/')})" in result.output
    assert "title: Top stories - Google News" in result.output
    assert "items: 38" in result.output
    assert f"also on the page: {server.url('/feeds/json')} (application/json" in result.output
    assert server.count("/feeds/json") == 0  # listed, not fetched

    feed = load_config(config).feed("google-top")
    assert (feed.url, feed.name, feed.interval, feed.language, feed.tags) == (
        feed_url, "Google: top", 1800.0, "en", ("world", "top stories"))
    page_fetch = server.headers_for("/")[0]
    assert page_fetch["user-agent"].startswith("monitor/")  # the poller's polite fetcher


def test_add_into_an_empty_feeds_list(tmp_path, server):
    path = tmp_path / "feeds.yaml"
    path.write_text("settings: {allow_private: true}  # local mirror\nfeeds: []  # none yet\n")
    result = run_cli("feeds", "add", server.url("/kz-news"), config=path)
    assert result.exit_code == 0, result.output
    assert path.read_text() == (
        "settings: {allow_private: true}  # local mirror\nfeeds:  # none yet\n"
        "  - id: kazakhstan-news-test-fixture\n"
        '    name: "Kazakhstan news (test fixture)"\n'
        f"    url: {server.url('/kz-news')}\n")
    assert run_cli("check", config=path).exit_code == 0


@pytest.mark.parametrize(("served", "given"), [
    ("/kz-news", "/kz-news"),  # the feed's own URL
    ("/page", "/page"),  # a page whose feed link is that URL
])
def test_add_refuses_a_feed_already_configured(config, server, served, given):
    server.put("/page", b'<!doctype html><html><head><link rel="alternate" '
               b'type="application/rss+xml" href="kz-news"></head><body></body></html>',
               "text/html")
    before = config.read_bytes()
    result = run_cli("feeds", "add", server.url(given), config=config)
    assert result.exit_code == 2
    assert "already in the config as feed kz-news" in result.output
    assert config.read_bytes() == before


def test_add_refuses_a_page_without_feed_links_and_leaves_the_file(config, server):
    no_links = re.sub(rb'\s*<link rel="alternate"[^>]*>', b"", PAGE)
    assert no_links != PAGE
    server.put("/about", no_links, "text/html; charset=utf-8")
    before = config.read_bytes()
    result = run_cli("feeds", "add", server.url("/about"), config=config)
    assert result.exit_code == 2
    assert "not a feed (HTML page, not a feed)" in result.output
    assert 'no <link rel="alternate"> to an RSS or Atom feed' in result.output
    assert config.read_bytes() == before
    assert not list(config.parent.glob(".feeds.yaml.*"))  # no temp file left behind


def test_add_refuses_a_taken_id_and_a_private_address_unless_allowed(config, server, tmp_path):
    taken = run_cli("feeds", "add", server.url("/bbc"), "--id", "kz-news", config=config)
    assert taken.exit_code == 2 and "feed kz-news" in taken.output
    strict = tmp_path / "strict.yaml"
    strict.write_text("feeds: []\n")
    refused = run_cli("feeds", "add", server.url("/bbc"), config=strict)
    assert refused.exit_code == 1
    assert "private address" in refused.output and "allow_private" in refused.output
    assert strict.read_text() == "feeds: []\n"


def test_remove_takes_out_only_the_feeds_own_lines(config, server, tmp_path):
    db = tmp_path / "monitor.db"
    assert run_cli("poll", config=config, db=db).exit_code == 0
    before = config.read_text()
    result = run_cli("feeds", "remove", "kz-news", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert "stay in the database" in result.output
    own_lines = ('  - id: kz-news\n    name: "Kazakhstan news"\n'
                 f"    url: {server.url('/kz-news')}\n"
                 "    tags: [kazakhstan,   news]   # odd spacing on purpose\n")
    assert own_lines in before
    assert config.read_text() == before.replace(own_lines, "", 1)
    assert run_cli("check", config=config).exit_code == 0

    report = json.loads(run_cli("poll", "--json", config=config, db=db).stdout)
    assert report["feeds_polled"] == 0
    feeds = {f["id"]: f for f in json.loads(
        run_cli("feeds", "--json", config=config, db=db).stdout)["feeds"]}
    assert feeds["kz-news"]["active"] == 0 and feeds["kz-news"]["items"] == 12

    unknown = run_cli("feeds", "remove", "kz-news", config=config)
    assert unknown.exit_code == 2 and "kz-news" in unknown.output


def test_remove_the_last_feed_leaves_an_empty_list(config):
    assert run_cli("feeds", "remove", "kz-news", config=config).exit_code == 0
    assert run_cli("feeds", "remove", "moscow-times", config=config).exit_code == 0
    text = config.read_text()
    assert "feeds: []\n  # --- wires\n\n  # --- Russia\n\n# --- what we look for" in text
    assert load_config(config).feeds == ()


def test_enable_brings_back_a_feed_disabled_by_410(tmp_path, server):
    server.put("/gone", b"gone", "text/plain", status=410)
    path = tmp_path / "feeds.yaml"
    path.write_text(f"settings: {{allow_private: true}}\nfeeds:\n  - id: gone\n"
                    f"    name: Gone\n    url: {server.url('/gone')}\n")
    db = tmp_path / "monitor.db"
    first = json.loads(run_cli("poll", "--json", config=path, db=db).stdout)
    assert first["feeds"][0]["error"]["kind"] == "gone"
    row = json.loads(run_cli("feeds", "--json", config=path, db=db).stdout)["feeds"][0]
    assert row["disabled_reason"] and row["error_count"] == 1
    assert run_cli("poll", "--force", config=path, db=db).exit_code == 0
    assert server.count("/gone") == 1  # disabled: not fetched, even forced

    server.put("/gone", (FEEDS / "kz-news.xml").read_bytes())
    result = run_cli("feeds", "enable", "gone", config=path, db=db)
    assert result.exit_code == 0, result.output
    assert "enabled" in result.output and "410" in result.output
    row = json.loads(run_cli("feeds", "--json", config=path, db=db).stdout)["feeds"][0]
    assert row["id"] == "gone"
    assert (row["disabled_reason"], row["error_count"], row["last_error"]) == (None, 0, None)
    assert row["disabled_at"] is None and row["state"] != "disabled"

    again = json.loads(run_cli("poll", "--json", config=path, db=db).stdout)  # not forced
    assert again["feeds"][0]["status"] == "new" and again["feeds"][0]["new_items"] == 12

    noop = run_cli("feeds", "enable", "gone", config=path, db=db)
    assert noop.exit_code == 0 and "not disabled" in noop.output
    unknown = run_cli("feeds", "enable", "nope", config=path, db=db)
    assert unknown.exit_code == 2 and "nope" in unknown.output


def test_feed_links_of_a_real_page_resolve_against_the_page_and_base():
    links = feed_links(PAGE, "https://daringfireball.net/index.html")
    assert [(f.url, f.type, f.readable) for f in links] == [
        ("https://daringfireball.net/feeds/main", "application/atom+xml", True),
        ("https://daringfireball.net/feeds/json", "application/json", True)]
    based = PAGE.replace(b"<head>", b'<head><base href="https://cdn.example.org/df/">', 1)
    assert feed_links(based, "https://daringfireball.net/")[0].url == \
        "https://cdn.example.org/feeds/main"
    assert feed_links(b"", "https://example.org/") == []
    assert feed_links(b"<html><link rel=alternate type=application/rss+xml href='x.rss'>",
                      "https://example.org/a/b") == [
        feed_links(b"<link rel='alternate' type='application/rss+xml' href='/a/x.rss'>",
                   "https://example.org/")[0]]


_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(title=st.one_of(st.none(), st.text()), taken=st.sets(_ids, max_size=20),
       host=st.sampled_from(["https://www.rferl.org/api/", "http://127.0.0.1:8080/f", "x:"]))
def test_derived_id_is_valid_and_unique(title, taken, host):
    feed_id = derive_id(title, host, taken)
    assert re.fullmatch(ID_PATTERN, feed_id) and len(feed_id) <= 64
    assert feed_id not in taken
    # and derive_id stays unique as ids pile up under the same title
    assert derive_id(title, host, taken | {feed_id}) != feed_id


def test_derived_id_reads_the_title():
    assert derive_id("Власть (Vlast.kz)", "https://vlast.kz/rss", ()) == "vlast-vlast-kz"
    assert derive_id("Азаттық — Қазақ", "https://azattyq.org/", ()) == "azattyq-qazaq"
    assert derive_id("BBC News", "https://bbc.co.uk/", {"bbc-news", "bbc-news-2"}) == "bbc-news-3"
    assert derive_id("新闻", "https://www.example.org/feed", ()) == "example-org"


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1))
def test_yaml_scalar_reads_back_as_the_same_string(value):
    assert yaml.safe_load(f"k: {yaml_scalar(value)}") == {"k": value}
    assert yaml.safe_load(f"k: [{yaml_scalar(value, flow=True)}]") == {"k": [value]}


def test_shipped_config_edits_touch_only_the_feeds_own_lines(tmp_path):
    path = tmp_path / "feeds.yaml"
    shipped = (DATA.parent.parent / "feeds.yaml").read_bytes()
    path.write_bytes(shipped)
    before = path.read_text()
    vlast = ('  - id: vlast\n    name: "Власть (Vlast.kz)"\n    url: https://vlast.kz/rss\n'
             "    language: ru\n    tags: [kazakhstan, news, independent]\n")
    result = run_cli("feeds", "remove", "vlast", config=path)
    assert result.exit_code == 0, result.output
    assert path.read_text() == before.replace(vlast, "", 1)
    assert "  # --- Kazakhstan media\n  - id: tengrinews-ru\n" in path.read_text()

    add_feeds(path, [FeedSpec(id="vlast", url="https://vlast.kz/rss", name="Власть",
                              tags=("kazakhstan",), language="ru")])
    block = inserted(before.replace(vlast, "", 1).encode(), path.read_bytes()).decode()
    assert block.startswith("  - id: vlast\n    name: \"Власть\"\n")
    assert path.read_text().index(block) < path.read_text().index("\nterms:")
    assert run_cli("check", config=path).exit_code == 0


LAYOUTS = {
    "four-space CRLF": b"settings:\r\n    interval: 15m\r\nfeeds:\r\n    -   id: a\r\n"
                       b"        name: A\r\n        url: https://a.example/feed   # note\r\n",
    "no final newline": b"feeds:\n- id: a\n  name: A\n  url: https://a.example/feed\n# end",
    "flow item first": b"feeds:\n  - {id: a, name: A, url: 'https://a.example/feed'}\n"
                       b"  - id: b\n    name: >-\n      B\n      feed\n\n    url: https://b.example/\n"
                       b"terms: {}\n",
    "no feeds key": b"# only settings so far\nsettings:\n  interval: 30m\n",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_add_then_remove_gives_back_the_same_bytes(tmp_path, layout):
    path = tmp_path / "feeds.yaml"
    path.write_bytes(LAYOUTS[layout])
    spec = FeedSpec(id="new", url="https://new.example/rss?a=1&b=2", name='Say "hi": #1 — ok',
                    interval="30m", tags=("a,b", "yes", "x"), language="kk")
    config = add_feeds(path, [spec])
    feed = config.feed("new")
    assert (feed.url, feed.name, feed.tags, feed.interval) == (
        spec.url, spec.name, ("a,b", "yes", "x"), 1800.0)
    if layout != "no feeds key":
        inserted(LAYOUTS[layout], path.read_bytes())
        remove_feeds(path, ["new"])
        assert path.read_bytes() == LAYOUTS[layout]


def test_an_edit_that_would_change_another_feed_is_refused(tmp_path):
    # "|+" keeps the blank lines after Foo in the name: a block inserted after
    # the feed's last text would steal them, so the check refuses the edit.
    text = b"feeds:\n  - id: a\n    url: https://a.example/\n    name: |+\n      Foo\n\n\nterms: {}\n"
    path = tmp_path / "feeds.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match="would change more than the feeds"):
        add_feeds(path, [FeedSpec(id="b", url="https://b.example/", name="B")])
    assert path.read_bytes() == text
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.yaml"]
