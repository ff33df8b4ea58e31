"""`monitor search` on a real archive: pasted headlines are read as plain words,
the query language is read as before, and queries over the size limits are
refused (issues 12 and 19). The archive is filled by a real poll of the real
feeds in tests/data/feeds/ served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import SHIPPED_CONFIG, polled_archive, run_cli, shipped, shipped_lexicon
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.match import MAX_QUERY_CHARS, MAX_QUERY_TERMS, expand_query

FEEDS = {
    "moscow-times": "moscowtimes.xml",
    "bbc-world": "bbc-world.xml",
    "aljazeera": "aljazeera.xml",
    "kz-news": "kz-news.xml",
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    with polled_archive(tmp_path_factory.mktemp("search"), FEEDS) as archive:
        yield archive


def search(archive: tuple[Path, Path], query: str, *extra: str) -> dict:
    config, db = archive
    result = run_cli("search", "--json", "--limit", "1000", *extra, "--", query,
                     config=config, db=db)
    assert result.exit_code == 0, (query, result.output)
    found: dict = json.loads(result.stdout)
    return found


def fts_stories(db: Path, fts_query: str) -> set[str]:
    """The stories plain SQLite finds for an FTS5 query, for comparison."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT DISTINCT i.story_key FROM items_fts JOIN items i "
                            "ON i.id = items_fts.rowid WHERE items_fts MATCH ?", [fts_query])
        return {r[0] for r in rows}
    finally:
        conn.close()


# --- plain words --------------------------------------------------------------------------

HEADLINES = [
    # (pasted text, a title it must find); every one exited 2 before.
    ("Venezuela's new president",  # apostrophe: fts5 syntax error near "'"
     "Under pressure from Trump, Venezuela's new president has aces up her sleeve"),
    ("Russia-Ukraine war: List of key events",  # hyphen: no such column: Ukraine
     "Russia-Ukraine war: List of key events, day 1,455"),
    ("Russia vs. The Global Order",  # dot: syntax error near "."
     "Russia vs. The Global Order: What Will Trump's Divided Administration Do About It?"),
    ("Kazakhstan unrest: 'If you protest again",  # colon: no such column: Kazakhstan
     "Kazakhstan unrest: 'If you protest again, we'll kill you'"),
    ('"Kazakh protests',  # unbalanced quote: unterminated string
     "'They looted everything': Counting the cost of Kazakh protests"),
    ("Trump Backed by Kremlin for 'Years,'",  # comma
     "Trump Backed by Kremlin for 'Years,' Claims Unverified Dossier"),
    ("Hamas: Trump’s ‘Board of Peace’",  # typographic quotes and a colon
     "Hamas: Trump’s ‘Board of Peace’ must stop Israel’s killing in Gaza"),
]


@pytest.mark.parametrize(("query", "title"), HEADLINES)
def test_pasted_headline_is_read_as_plain_words(archive, query, title):
    found = search(archive, query)
    assert found["reading"] == "plain words", found
    assert found["query"] == query and found["reason"]
    assert title in [r["title"] for r in found["results"]]
    # Each word must be there: plain words are ANDed, not ORed.
    assert fts_stories(archive[1], found["fts_query"]) == {
        r["story_key"] for r in found["results"]}


def test_dotted_abbreviation_finds_it_in_the_text(archive):
    found = search(archive, "U.S.")
    assert found["reading"] == "plain words" and found["fts_query"] == '"U.S."'
    assert found["results"]
    assert all(re.search(r"U\]*\.\[*S", r["snippet"] + r["title"]) for r in found["results"])


def test_text_without_a_word_finds_nothing_and_exits_0(archive):
    for query in ("!!!", '"', "''", "- : ,"):
        found = search(archive, query)
        assert found["reading"] == "plain words" and found["results"] == [], query
    # A dash outside ASCII is an FTS5 bareword: a query, of no token.
    assert search(archive, "—")["results"] == []


def test_verbose_prints_the_reading_on_the_terminal(archive):
    config, db = archive
    result = run_cli("-v", "search", "Venezuela's new president", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert 'reading: plain words: "Venezuela\'s" AND "new" AND "president"' in result.stderr
    assert "syntax error" in result.stderr  # why it is not read as a query
    assert "Venezuela's new president has aces" in result.stdout
    quiet = run_cli("search", "Venezuela's new president", config=config, db=db)
    assert "reading:" not in quiet.output
    query = run_cli("-v", "search", "title:kazakhstan", config=config, db=db)
    assert "reading: query: title:kazakhstan" in query.stderr


def test_an_undefined_name_standing_alone_is_still_an_error(archive):
    config, db = archive
    result = run_cli("search", "@kazakstan protests", config=config, db=db)
    assert result.exit_code == 2
    assert "undefined term list @kazakstan" in result.output
    assert '"@kazakstan"' in result.output  # how to search for the word itself
    # An @ inside a word (an address) is a word, not a list.
    assert search(archive, "desk@example.org")["reading"] == "plain words"


# --- the query language, unchanged ----------------------------------------------------------

LANGUAGE = [
    "Venezuela OR Zambia",
    "NEAR(Russia Ukraine, 2)",
    "title:kazakhstan",
    "summary:tokayev NOT title:tokayev",
    '"state of emergency"',
    "protest* NOT Almaty",
    "@kazakhstan AND protest*",
]


@pytest.mark.parametrize("query", LANGUAGE)
def test_the_query_language_is_read_as_a_query(archive, query):
    _, db = archive
    found = search(archive, query)
    assert found["reading"] == "query" and found["reason"] is None
    expanded = expand_query(query, shipped_lexicon())
    assert found["fts_query"] == expanded
    got = {r["story_key"] for r in found["results"]}
    assert got and got == fts_stories(db, expanded)


def test_column_filter_keeps_its_meaning(archive):
    # Plain words would also find Kazakhstan in summaries only.
    _, db = archive
    in_title = {r["story_key"] for r in search(archive, "title:kazakhstan")["results"]}
    anywhere = fts_stories(db, "kazakhstan")
    assert in_title < anywhere


# --- property: any text is a search, never a syntax error -----------------------------------

_PIECES = st.sampled_from([
    "AND", "OR", "NOT", "NEAR(", "NEAR", ")", "(", '"', "'", "-", ":", "title:", "summary:",
    "*", "^", "+", ",", ".", "{", "}", "@kazakhstan", "Kazakhstan", "strike", "Putin's",
    "U.S.", "Russia-Ukraine", "’", "«", "»", "\x00", "[[", "]]", "@", "\\", "%", "_",
])
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=6)), min_size=1, max_size=8).flatmap(
    lambda parts: st.sampled_from([" ".join(parts), "".join(parts)]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_any_text_is_a_search_never_a_syntax_error(archive, text):
    config, db = archive
    result = run_cli("search", "--json", "--", text, config=config, db=db)
    words = text.split()
    undefined = [w for w in words if re.fullmatch(r"@[A-Za-z0-9_-]+", w)
                 and w != "@kazakhstan"]
    if not words or undefined:
        assert result.exit_code == 2, (text, result.output)
        assert ("empty" if not words else "undefined term list") in result.output
        return
    assert result.exit_code == 0, (text, result.output)
    found = json.loads(result.stdout)
    assert found["reading"] in ("query", "plain words")
    assert isinstance(found["results"], list)


# --- size limits ----------------------------------------------------------------------------

def test_search_with_8000_terms_exits_2_naming_the_limit(archive):
    config, db = archive
    query = " OR ".join(f"w{i}" for i in range(8000))
    result = run_cli("search", query, config=config, db=db)
    assert result.exit_code == 2
    assert "query too long" in result.output and f"{MAX_QUERY_CHARS:,}" in result.output
    assert len(result.output) < 500  # the query is not echoed whole


def test_search_over_the_term_limit_after_expansion_exits_2(archive):
    config, db = archive
    query = " OR ".join(["@rights"] * 20)  # short as written, 1,360 terms expanded
    assert len(query) < MAX_QUERY_CHARS
    for args in (["search", query], ["search", "--json", query]):
        result = run_cli(*args, config=config, db=db)
        assert result.exit_code == 2
        assert "too many terms" in result.output and f"{MAX_QUERY_TERMS:,}" in result.output


def test_search_with_a_phrase_of_100_words_exits_2(archive):
    config, db = archive
    result = run_cli("search", '"' + "war " * 100 + '"', config=config, db=db)
    assert result.exit_code == 2 and "phrase too long" in result.output


def with_topic(path: Path, **topic: object) -> Path:
    data = shipped()
    data["settings"] = {"allow_private": True, "article_text": "never"}
    data["feeds"] = data["feeds"][:1]
    data["topics"].append({"id": "huge", "name": "huge", **topic})
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("topic", "field", "words"), [
    ({"query": " OR ".join(f"word{i}" for i in range(1000))}, "query",
     ("query too long", f"{MAX_QUERY_CHARS:,} characters")),
    ({"query": "strike", "exclude": "x" * 100_000}, "exclude",
     ("query too long", "100,000 characters", f"{MAX_QUERY_CHARS:,}")),
    ({"query": " AND ".join(["(@kazakhstan OR @rights OR @punished)"] * 8)}, "query",
     ("too many terms", f"{MAX_QUERY_TERMS:,}")),
    ({"query": '"' + " ".join(["strike"] * 65) + '"'}, "query", ("phrase too long", "64")),
])
def test_topic_over_a_limit_fails_check_naming_topic_and_limit(tmp_path, topic, field, words):
    config = with_topic(tmp_path / "feeds.yaml", **topic)
    result = run_cli("check", config=config)
    assert result.exit_code == 2, result.output
    assert "topic huge" in result.output and f"field {field}" in result.output
    for word in words:
        assert word in result.output, result.output
    # The same config stops a poll before anything is fetched or stored.
    db = tmp_path / "m.db"
    assert run_cli("poll", "--force", config=config, db=db).exit_code == 2
    assert not db.exists()


def test_shipped_feeds_yaml_is_within_the_limits():
    result = run_cli("check", config=SHIPPED_CONFIG)
    assert result.exit_code == 0, result.output
