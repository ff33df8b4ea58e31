"""`monitor topics suggest`: near misses of a topic in an archive made by a real poll."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
import yaml
from feedserver import serve
from helpers import run_cli, write_config

TOPIC = {"id": "strikes", "name": "Oil strikes",
         "query": "(strike OR walkout) AND (oil OR oilfield) AND Zhanaozen"}

ITEMS = {
    # Every clause but the place: the one near miss, with "Kulsary" to offer.
    "near": ("Oil workers strike in Kulsary",
             "Kulsary oilfield workers walkout over wages; Kulsary drillers join the walkout."),
    "whole": ("Oil workers strike in Zhanaozen", "Zhanaozen oilfield workers stop work."),
    "fewer": ("Weather in Kulsary", "Rain expected over Kulsary, no strike news."),
    # Every clause, but only through normal forms: "striking" for strike and
    # the Cyrillic, inflected Жанаозене for Zhanaozen.
    "folded": ("Oilfields idle", "Drillers striking in Жанаозене since Monday."),
}


def rss() -> bytes:
    now = format_datetime(datetime.now(UTC))
    items = "".join(f"<item><guid>{k}</guid><title>{t}</title><description>{d}</description>"
                    f"<link>http://example.invalid/{k}</link><pubDate>{now}</pubDate></item>"
                    for k, (t, d) in ITEMS.items())
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>http://example.invalid/</link><description>d</description>{items}"
            f"</channel></rss>").encode()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("suggest")
    with serve() as server:
        server.put("/oil", rss(), "application/rss+xml")
        config = write_config(folder / "feeds.yaml",
                              [{"id": "oil", "name": "oil", "url": server.url("/oil")}],
                              topics=False)
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        config.write_text(yaml.safe_dump({**data, "topics": [TOPIC]}), encoding="utf-8")
        db = folder / "m.db"
        result = run_cli("poll", "--force", config=config, db=db)
        assert result.exit_code == 0, result.output
        yield config, db


def suggest(archive: tuple[Path, Path], *args: str) -> dict:
    config, db = archive
    result = run_cli("topics", "suggest", *args, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    found: dict = json.loads(result.stdout)
    return found


def test_an_item_missing_one_clause_is_listed_under_it_with_its_words(
        archive: tuple[Path, Path]) -> None:
    found = suggest(archive, "strikes")
    assert [g["missing"] for g in found["missing"]] == ["Zhanaozen"]
    group = found["missing"][0]
    assert group["count"] == 1
    assert [i["title"] for i in group["items"]] == [ITEMS["near"][0]]
    assert group["items"][0]["words"][0] == "kulsary"
    assert "kulsary" in group["words"]
    # Words the topic already has are no suggestion, nor are stopwords.
    assert not {"oil", "strike", "walkout", "over"} & set(group["items"][0]["words"])


def test_whole_matches_and_fewer_clauses_are_not_near_misses(archive: tuple[Path, Path]) -> None:
    titles = {i["title"] for g in suggest(archive, "strikes")["missing"] for i in g["items"]}
    assert ITEMS["whole"][0] not in titles
    assert ITEMS["fewer"][0] not in titles


def test_the_table_names_the_missing_clause(archive: tuple[Path, Path]) -> None:
    config, db = archive
    result = run_cli("topics", "suggest", "strikes", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert "missing: Zhanaozen" in result.output
    assert "kulsary" in result.output


def test_an_unknown_topic_exits_2_naming_it(archive: tuple[Path, Path]) -> None:
    config, db = archive
    result = run_cli("topics", "suggest", "no-such-topic", config=config, db=db)
    assert result.exit_code == 2
    assert "no-such-topic" in result.output


def test_an_item_matched_only_through_folded_forms_is_listed_with_its_words(
        archive: tuple[Path, Path]) -> None:
    found = suggest(archive, "strikes")["folded"]
    assert found["count"] == 1
    assert [i["title"] for i in found["items"]] == [ITEMS["folded"][0]]
    words = found["items"][0]["words"]
    assert {"striking", "жанаозене", "oilfields"} <= set(words)
    # Items the exact query matches are not "folded only".
    assert ITEMS["whole"][0] not in {i["title"] for i in found["items"]}
    assert "[[" in found["items"][0]["snippet"]


def test_suggest_prints_the_folded_only_matches(archive: tuple[Path, Path]) -> None:
    config, db = archive
    result = run_cli("topics", "suggest", "strikes", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert "only through stemmed or folded forms" in result.output
    assert ITEMS["folded"][0] in result.output
