"""An unknown topic or feed id is an exit-2 error naming it, in every command
that takes one; and `topics apply --json`. Real feeds served on 127.0.0.1,
polled by the real CLI into a SQLite file in tmp_path."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import polled_archive, run_cli, write_config

FEEDS = {"kz-news": "kz-news.xml", "bbc-world": "bbc-world.xml"}
TOPIC = "kz-labour-protests"


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Polled once for the module: no test here changes what is stored."""
    with polled_archive(tmp_path_factory.mktemp("ids"), FEEDS, "monitor.db") as archive:
        yield archive


@pytest.mark.parametrize(("args", "kind"), [
    (["hits", "--topic", "nope"], "topic"),
    (["hits", "--topic", TOPIC, "--topic", "nope", "--json"], "topic"),
    (["digest", "--topic", "nope"], "topic"),
    (["topics", "apply", "--topic", "nope"], "topic"),
    (["poll", "--feed", "nope"], "feed"),
])
def test_unknown_id_exits_2_naming_it(polled: tuple[Path, Path], args: list[str],
                                      kind: str) -> None:
    config, db = polled
    result = run_cli(*args, config=config, db=db)
    assert result.exit_code == 2, result.output
    assert f"{kind} nope: no such {kind}" in result.output
    assert "known: " in result.output  # and which ids there are
    assert "No hits" not in result.output


def test_hits_accept_a_topic_of_the_archive_or_the_config_only(polled: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    config, db = polled
    result = run_cli("hits", "--topic", TOPIC, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(TOPIC in r["matched"] for r in rows)
    # A topic removed from feeds.yaml keeps its stored hits readable.
    empty = write_config(tmp_path / "other.yaml", [], topics=False)
    result = run_cli("hits", "--topic", TOPIC, config=empty, db=db)
    assert result.exit_code == 0 and "stories" in result.output, result.output
    result = run_cli("hits", "--topic", "nope", config=empty, db=db)
    assert result.exit_code == 2 and "topic nope: no such topic" in result.output


def test_topics_apply_json(polled: tuple[Path, Path]) -> None:
    config, db = polled
    result = run_cli("topics", "apply", "--topic", TOPIC, "--json", config=config, db=db)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    items = sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0]
    assert data["since"] is None
    assert data["topics"] == [{"topic": TOPIC, "items": items, "added": 0, "removed": 0}]
