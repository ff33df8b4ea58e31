"""Entities in feeds.yaml: a person, place or body with all its names, used in
topics as ``@name`` exactly like a term list. Config errors name the file, the
entity and the field; a topic using an entity matches each of its names,
through `monitor topics test` and through a real poll of a feed served from
127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import yaml
from feedserver import FeedServer
from helpers import SHIPPED_CONFIG, run_cli, shipped

from monitor.config import load_config, parse_config
from monitor.errors import ConfigErrors

BASE = """
terms:
  protest: [protest*, strike]
entities:
  astana:
    kind: place
    note: "the capital, renamed twice"
    names: [Astana*, "Nur-Sultan", Астан*, "Нұр-Сұлтан*", Akmola, "Leader of the Nation"]
topics:
  - id: capital
    name: Capital
    query: "@astana"
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        parse_config(text, "feeds.yaml")
    return [str(e) for e in info.value.errors]


def test_entity_expands_like_a_term_list_with_phrases() -> None:
    config = parse_config(BASE)
    assert config.topics[0].fts_query == (
        '(Astana* OR "Nur-Sultan" OR Астан* OR "Нұр-Сұлтан"* OR Akmola'
        ' OR "Leader of the Nation")')
    entity = config.entities["astana"]
    assert (entity.kind, entity.note) == ("place", "the capital, renamed twice")
    assert config.lexicon["protest"] == ("protest*", "strike")
    assert config.lexicon["astana"][1] == "Nur-Sultan"


def test_entities_and_terms_combine_in_one_query() -> None:
    config = parse_config(BASE.replace('query: "@astana"', 'query: "@astana AND @protest"'))
    assert config.topics[0].fts_query.endswith(' AND (protest* OR strike)')


def test_a_name_both_term_list_and_entity_is_an_error_naming_both() -> None:
    text = BASE.replace("  protest: [protest*, strike]", "  astana: [Astana]")
    [error] = _errors(text)
    assert "file feeds.yaml" in error and "entity astana" in error
    assert "terms.astana" in error and "entities.astana" in error


@pytest.mark.parametrize(("change", "field", "words"), [
    (("kind: place", "kind: planet"), "entities.astana.kind", "'person'"),
    (('names: [Astana*, "Nur-Sultan", Астан*, "Нұр-Сұлтан*", Akmola, "Leader of the Nation"]',
      "names: []"), "entities.astana.names", "at least 1"),
    (('names: [Astana*, "Nur-Sultan", Астан*, "Нұр-Сұлтан*", Akmola, "Leader of the Nation"]',
      'names: [Astana, " "]'), "entities.astana.names", "empty"),
    (("kind: place", "kind: place\n    aliases: [x]"), "entities.astana.aliases", "unknown key"),
])
def test_entity_errors_name_file_entity_and_field(change: tuple[str, str], field: str,
                                                  words: str) -> None:
    errors = _errors(BASE.replace(*change))
    assert any("file feeds.yaml" in e and "entity astana" in e and f"field {field}" in e
               and words in e for e in errors), errors
    # The topic using the broken entity is not reported again for it.
    assert not any("undefined" in e for e in errors), errors


def test_an_undefined_entity_names_the_topic() -> None:
    [error] = _errors(BASE.replace('query: "@astana"', 'query: "@astanaa"'))
    assert "topic capital" in error and "@astanaa" in error


def test_the_shipped_entities_load_and_check() -> None:
    config = load_config(SHIPPED_CONFIG)
    assert {"tokayev", "nazarbayev", "astana", "almaty", "mazhilis", "akorda", "knb",
            "amanat", "osce", "odihr"} <= set(config.entities)
    assert not set(config.entities) & set(config.terms)
    assert "Nur-Sultan*" in config.entities["astana"].names
    assert {"ОБСЕ", "ЕҚЫҰ"} <= set(config.entities["osce"].names)
    assert "БДИПЧ" in config.entities["odihr"].names
    result = run_cli("check", config=SHIPPED_CONFIG)
    assert result.exit_code == 0, result.output


def _forms(name: str) -> str:
    """A headline with ``name`` in it, inflected when the name is a prefix."""
    if name.endswith("*"):
        stem = name.rstrip("*")
        return f"Протест в {stem}е" if not stem.isascii() else f"Protest in {stem}da"
    return f"Protest in {name}"


ASTANA = shipped()["entities"]["astana"]["names"]


def _config(path: Path, feeds: list[dict[str, Any]] | None = None) -> Path:
    data = shipped()
    data["settings"] = {"allow_private": True, "timeout": "5s", "connect_timeout": "2s"}
    data["feeds"] = feeds or []
    data["topics"] = [{"id": "capital", "name": "Capital", "query": "@astana"}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ASTANA)
def test_topics_test_matches_each_name_of_the_entity(tmp_path: Path, name: str) -> None:
    config = _config(tmp_path / "feeds.yaml")
    result = run_cli("topics", "test", "--json", _forms(name), config=config)
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["matched"], (name, row)


def test_a_poll_hits_every_item_naming_the_entity(tmp_path: Path, server: FeedServer) -> None:
    items = "".join(
        f"<item><title>{escape(_forms(name))}</title><guid>https://example.org/{n}</guid>"
        "<pubDate>Mon, 03 Jan 2022 10:00:00 GMT</pubDate></item>"
        for n, name in enumerate(ASTANA))
    other = ("<item><title>Protest in Bishkek</title><guid>https://example.org/x</guid>"
             "<pubDate>Mon, 03 Jan 2022 10:00:00 GMT</pubDate></item>")
    server.put("/kz", ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                       f"<title>t</title><language>en</language>{items}{other}"
                       "</channel></rss>").encode())
    config = _config(tmp_path / "feeds.yaml", [{"id": "kz", "url": server.url("/kz")}])
    db = tmp_path / "monitor.db"
    result = run_cli("poll", "--force", config=config, db=db)
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    try:
        hit = {t for (t,) in conn.execute(
            "SELECT i.title FROM hits h JOIN items i ON i.id = h.item_id")}
    finally:
        conn.close()
    assert hit == {_forms(name) for name in ASTANA}


def test_search_reads_an_entity_name(tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                       b"<title>t</title><language>en</language><item><title>Rally in "
                       b"Nur-Sultan</title><guid>https://example.org/1</guid></item>"
                       b"</channel></rss>"))
    config = _config(tmp_path / "feeds.yaml", [{"id": "kz", "url": server.url("/kz")}])
    db = tmp_path / "monitor.db"
    assert run_cli("poll", "--force", config=config, db=db).exit_code == 0
    result = run_cli("search", "--json", "@astana", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert "Rally in Nur-Sultan" in result.output
