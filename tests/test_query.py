"""monitor.query: the one reading of highlight markers, and the phrase limit
and plain-words reading counted without the matcher's tokenizer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import QueryTooLarge
from monitor.query import (
    FTS_SCHEMA,
    MAX_PHRASE_TOKENS,
    _most_tokens,
    marked,
    plain_words,
    scrub,
    segments,
    validate_query,
)


def _sqlite_count(text: str) -> int:
    db = sqlite3.connect(":memory:")
    try:
        db.execute(FTS_SCHEMA.format(name="t"))
        db.execute("CREATE VIRTUAL TABLE tv USING fts5vocab(t, instance)")
        db.execute("INSERT INTO t(rowid, title) VALUES (1, ?)", (text,))
        return int(db.execute("SELECT count(*) FROM tv").fetchone()[0])
    finally:
        db.close()


# ---------------------------------------------------------------- markers


@pytest.mark.parametrize(("text", "runs"), [
    ("a [[b]] c", [("a ", False), ("b", True), (" c", False)]),
    ("[[a]][[b]]", [("a", True), ("b", True)]),
    ("an [[air\nstrike]] here", [("an ", False), ("air\nstrike", True), (" here", False)]),
    ("x [[]] y", [("x ", False), (" y", False)]),
    ("stray ]] and [[ only", [("stray ]] and [[ only", False)]),
    ("", []),
])
def test_segments_split_marked_text_into_runs(text: str, runs: list[tuple[str, bool]]) -> None:
    assert segments(text) == runs
    assert [t for t, m in segments(text) if m] == [r for r in marked(text) if r]


def test_topics_test_shows_a_phrase_marked_across_a_line_break_in_bold(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n  - id: f\n    url: https://example.org/feed\n"
        "topics:\n  - id: air\n    name: Air strikes\n    query: '\"air strike\"'\n",
        encoding="utf-8")
    result = run_cli("topics", "test", "Reports of an air\nstrike near the border",
                     config=config)
    assert result.exit_code == 0, result.output
    assert "1 of 1 topics match" in result.output
    assert "[[" not in result.output and "]]" not in result.output


# ---------------------------------------------------------------- counting tokens


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_the_token_bound_is_never_below_sqlites_count(text: str) -> None:
    clean = scrub(text)
    count = _sqlite_count(clean)
    assert _most_tokens(clean) >= count
    if clean.isascii():
        assert _most_tokens(clean) == count


@pytest.mark.parametrize("sep", [" ", "—", "\u3000"])
def test_phrase_limit_counts_non_ascii_words_and_separators(sep: str) -> None:
    validate_query('"' + sep.join(["слово"] * MAX_PHRASE_TOKENS) + '"')
    with pytest.raises(QueryTooLarge, match=f"{MAX_PHRASE_TOKENS + 1} words in"):
        validate_query('"' + sep.join(["слово"] * (MAX_PHRASE_TOKENS + 1)) + '"')


def test_a_long_word_with_diacritics_is_one_word_of_a_phrase() -> None:
    validate_query('"' + "é" * 200 + '"')


def test_plain_words_keep_only_words_with_tokens() -> None:
    assert plain_words("— é' Kazakh's", {}) == '"é\'" AND "Kazakh\'s"'
    assert plain_words("— …", {}) == '""'
