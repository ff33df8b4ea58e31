"""The archive side of issue 14: the ``norm`` column of items (migration
m010), its backfill, the write path that fills it, and `monitor search`
through it. Real SQLite files in tmp_path, the real CLI, and plain
/usr/bin/sqlite3 on the result; the old archive is an m009 database filled
with the items of a real poll of the real feeds in tests/data/feeds/ plus
the word forms of test_normalize.PARADIGMS."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import polled_archive, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database
from test_normalize import PARADIGMS

from monitor.daemon import Daemon
from monitor.errors import StorageError
from monitor.migrations import m010_norm, migrations
from monitor.normalize import norm_document
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from monitor.store import PollWrite, Store
from monitor.types import Entry, FeedUpdate

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
FEEDS = {"kz-news": "kz-news.xml", "moscow-times": "moscowtimes.xml"}
_FILLER = ["погода", "weather", "футбол", "концерт", "market", "выставка"]
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"


def paradigm_rows() -> list[tuple[str, str, str | None]]:
    """(title, summary, article): every form of every paradigm in a row of its
    own, some of them only in the article text."""
    rows: list[tuple[str, str, str | None]] = []
    for i, (base, forms) in enumerate(PARADIGMS):
        for j, form in enumerate([base, *forms]):
            filler = _FILLER[(i + j) % len(_FILLER)]
            if j % 4 == 3:
                rows.append((f"{filler} {i}-{j}", "без слов", f"Текст статьи: {form} сегодня."))
            else:
                rows.append((f"{filler} {form} {i}-{j}", f"summary {i}-{j}", None))
    return rows


@pytest.fixture(scope="module")
def real_rows(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str | None]]:
    """The items of a real poll of real feeds, as (title, summary, article)."""
    with polled_archive(tmp_path_factory.mktemp("real"), FEEDS) as (_, db):
        conn = sqlite3.connect(db)
        try:
            return [(t, s, a) for t, s, a in conn.execute(
                "SELECT title, summary, article FROM items ORDER BY id")]
        finally:
            conn.close()


def old_archive(path: Path, rows: list[tuple[str, str, str | None]]) -> Path:
    """An archive as monitor left it before m010 (schema of m009), its items
    written as that version wrote them (the FTS triggers index them)."""
    db = Database(path)
    migrations.apply(db, stop_before=m010_norm.__name__)
    db.execute("INSERT INTO feeds (id, url, config_url, name) VALUES ('f', 'https://e.org/f', "
               "'https://e.org/f', 'f')")
    for i, (title, summary, article) in enumerate(rows):
        published = (NOW - timedelta(minutes=i)).isoformat()
        db.execute(
            "INSERT INTO items (feed_id, key, url, story_key, title, summary, published_at, "
            "fetched_at, content_hash, article) VALUES ('f', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [f"k{i}", f"https://e.org/{i}", f"s{i}", title, summary, published, published,
             f"h{i}", article])
    db.conn.commit()
    db.close()
    return path


def fts_ids(path: Path, query: str) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [query])}
    finally:
        conn.close()


def found(store: Store, query: str) -> set[int]:
    return {r.id for r in store.search(query, limit=1000)}


def unmarked(snippet: str) -> str:
    return snippet.replace(HIGHLIGHT_OPEN, "").replace(HIGHLIGHT_CLOSE, "").strip("…")


# --- the migration and its backfill ------------------------------------------------------


def test_migrated_archive_keeps_every_item_searchable_and_backfills(
        tmp_path: Path, real_rows: list[tuple[str, str, str | None]]) -> None:
    rows = real_rows + paradigm_rows()
    path = old_archive(tmp_path / "old.db", rows)
    words = sorted({w for t, s, a in rows for w in re.findall(r"[^\W\d_]{4,}", f"{t} {s} {a}")})
    probes = words[:: max(1, len(words) // 150)]
    before = {w: fts_ids(path, f'"{w}"') for w in probes}
    assert all(before.values())
    with Store(path) as store:  # migrates
        assert store.norm_backlog() == len(rows)
        # Not backfilled yet: nothing that matched stops matching.
        for w, ids in before.items():
            assert fts_ids(path, f'"{w}"') == ids, w
            assert ids <= found(store, w), w
        assert store.backfill_norm(batch=50) == len(rows)
        assert store.norm_backlog() == 0
        for item_id, title, summary, article, norm in store.conn.execute(
                "SELECT id, title, summary, article, norm FROM items"):
            assert norm == norm_document(title, summary, article or ""), item_id
        for w, ids in before.items():
            assert ids <= found(store, w), w
        # ...and a word now finds its other forms, in the article text too.
        almaty = found(store, "Алматы")
        assert {i for i, (t, _, a) in enumerate(rows, 1)
                if "Алматыдағы" in t or "Алматыдағы" in (a or "")} <= almaty
        store.conn.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")


def test_backfill_resumes_after_interruption_and_is_idempotent(tmp_path: Path) -> None:
    rows = paradigm_rows()
    path = old_archive(tmp_path / "old.db", rows)
    with Store(path) as store:
        # Stopped after its first batch: that batch is kept, the rest waits.
        assert store.backfill_norm(batch=10, should_stop=lambda: True) == 10
        assert store.norm_backlog() == len(rows) - 10
        # A crash in the middle of a batch: that batch is rolled back whole.
        victim = store.conn.execute("SELECT max(id) FROM items WHERE norm IS NULL").fetchone()[0]
        store.conn.execute(f"CREATE TRIGGER crash BEFORE UPDATE OF norm ON items "
                           f"WHEN new.id = {victim - 3} BEGIN SELECT RAISE(ABORT, 'crash'); END")
        with pytest.raises(StorageError):
            store.backfill_norm(batch=10)
        assert store.norm_backlog() == len(rows) - 10
        store.conn.execute("DROP TRIGGER crash")
        first = dict(store.conn.execute("SELECT id, norm FROM items WHERE norm IS NOT NULL"))
    with Store(path) as store:  # the next run carries on
        assert store.backfill_norm(batch=10) == len(rows) - 10
        assert store.backfill_norm(batch=10) == 0
        norms = dict(store.conn.execute("SELECT id, norm FROM items"))
        assert all(norms[i] == n for i, n in first.items())
        assert None not in norms.values()


def test_reindex_command_fills_the_backlog_then_has_nothing_to_do(tmp_path: Path) -> None:
    path = old_archive(tmp_path / "old.db", paradigm_rows())
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds: []\n", encoding="utf-8")
    n = len(paradigm_rows())
    exact = found_cli(config, path, "Алматыдағы")  # only the word as written, until then
    result = run_cli("reindex", "--json", config=config, db=path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"normalised": n, "left": 0}
    assert set(exact) < set(found_cli(config, path, "Алматыдағы"))
    result = run_cli("reindex", config=config, db=path)
    assert result.exit_code == 0 and "0 items normalised" in result.stdout


def found_cli(config: Path, db: Path, query: str) -> list[str]:
    result = run_cli("search", "--json", "--limit", "1000", "--", query, config=config, db=db)
    assert result.exit_code == 0, result.output
    return [r["title"] for r in json.loads(result.stdout)["results"]]


# --- the write path ----------------------------------------------------------------------


def _update(when: datetime) -> FeedUpdate:
    return FeedUpdate(feed_id="f", fetched_at=when, outcome="new", next_due_at=when,
                      http_status=200)


def test_every_write_sets_norm_from_the_stored_text(tmp_path: Path) -> None:
    path = old_archive(tmp_path / "m.db", [])
    entry = Entry(key="n1", title="Токаев приехал", summary="В Алматы", url="https://e.org/n1",
                  published_at=NOW, content_hash="a")
    with Store(path) as store:
        store.commit_polls([PollWrite(_update(NOW), new=[entry])])
        item_id, = store.conn.execute("SELECT id FROM items").fetchone()
        store.store_article(item_id, "Забастовка нефтяников в Жанаозене", "t", NOW, [])
        changed = Entry(key="n1", title="Тоқаев келді", summary="Астанада", url=entry.url,
                        published_at=NOW, content_hash="b")
        store.commit_polls([PollWrite(_update(NOW), changed=[changed])])
        norm, = store.conn.execute("SELECT norm FROM items").fetchone()
        assert norm == norm_document("Тоқаев келді", "Астанада",
                                     "Забастовка нефтяников в Жанаозене")
        assert store.norm_backlog() == 0
        for form in ("Токаев", "Астана", "нефтяники", "Tokayev"):
            assert found(store, form) == {item_id}, form


# --- search through the normal forms -----------------------------------------------------


@pytest.fixture(scope="module")
def paradigm_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("paradigms")
    path = old_archive(folder / "m.db", paradigm_rows())
    with Store(path) as store:
        store.backfill_norm()
    config = folder / "feeds.yaml"
    config.write_text("feeds: []\n", encoding="utf-8")
    yield config, path


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PARADIGMS).flatmap(
    lambda p: st.tuples(st.just(p), st.sampled_from(p[1]))))
def test_term_and_its_forms_find_the_same_items(
        paradigm_archive: tuple[Path, Path], case: tuple[tuple[str, list[str]], str]) -> None:
    (base, forms), form = case
    with Store(paradigm_archive[1]) as store:
        expected = found(store, base)
        assert found(store, form) == expected
    own = {i for i, (t, _, a) in enumerate(paradigm_rows(), 1)
           if {base, *forms} & set(re.findall(r"[^\W_]+", f"{t} {a or ''}"))}
    assert own <= expected


@pytest.mark.parametrize(("term", "form"), [
    ("Алматы", "Алматыдағы"), ("Тоқаев", "Toqaev"), ("Қазақстан", "Qazaqstanda"),
    ("увольнение", "уволили"),
])
def test_monitor_search_finds_a_term_by_any_of_its_forms(
        paradigm_archive: tuple[Path, Path], term: str, form: str) -> None:
    config, db = paradigm_archive
    titles = found_cli(config, db, term)
    assert titles and sorted(titles) == sorted(found_cli(config, db, form))


def test_a_quoted_term_stays_exact(paradigm_archive: tuple[Path, Path]) -> None:
    config, db = paradigm_archive
    written = [t for t, _, _ in paradigm_rows() if "Алматыда" in t.split()]
    assert len(written) == 1 and found_cli(config, db, '"Алматыда"') == written
    assert len(found_cli(config, db, "Алматыда")) > 1


def test_snippets_show_the_text_never_its_normal_forms(
        paradigm_archive: tuple[Path, Path]) -> None:
    _, db = paradigm_archive
    with Store(db) as store:
        texts = {i: f"{t} {s} {a or ''}" for i, t, s, a in store.conn.execute(
            "SELECT id, title, summary, article FROM items")}
        # The prefix queries take each page's snippets in one pass over a
        # rowid range (Store._snippets): still each item's own words.
        for query in ("Алматы", "Toqaev", "уволили", "голодовка", "Almaty", '"Алмат"*',
                      '"увол"* OR "Toqa"*'):
            results = store.search(query, limit=1000)
            assert results
            for r in results:
                snippet = r.snippet or ""
                assert HIGHLIGHT_OPEN in snippet, (query, snippet)
                assert unmarked(snippet).strip() in texts[r.id], (query, snippet)
                for word in re.findall(r"\[\[(.*?)\]\]", snippet):
                    assert word in texts[r.id], (query, word)


# --- plain sqlite3 -----------------------------------------------------------------------


@pytest.mark.skipif(not Path(SQLITE3).exists(), reason="no sqlite3 command-line shell")
def test_plain_sqlite3_opens_and_searches_the_archive(
        paradigm_archive: tuple[Path, Path]) -> None:
    _, db = paradigm_archive

    def shell(sql: str) -> set[int]:
        out = subprocess.run([SQLITE3, "-readonly", str(db), sql], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        return {int(x) for x in out.split()}

    by_norm = shell("SELECT rowid FROM items_fts WHERE items_fts MATCH 'norm:алмат'")
    with Store(db) as store:
        assert by_norm == found(store, "Алматы")
    exact = shell("SELECT rowid FROM items_fts WHERE items_fts MATCH 'Алматыда'")
    assert len(exact) == 1 and exact < by_norm


def test_daemon_backfills_in_the_background(tmp_path: Path) -> None:
    path = old_archive(tmp_path / "old.db", paradigm_rows())
    config = tmp_path / "feeds.yaml"
    config.write_text("feeds: []\n", encoding="utf-8")
    daemon = Daemon(str(config), str(path))
    daemon.backfill_norm()  # what its norm-backfill job runs every minute
    with Store(path) as store:
        assert store.norm_backlog() == 0
        assert len(found(store, "Алматы")) > 1


def test_a_query_the_rewrite_cannot_carry_is_read_as_written(
        paradigm_archive: tuple[Path, Path]) -> None:
    # SQLite accepts "1 *" (a word, then a lone star); its rewrite does not parse.
    config, db = paradigm_archive
    assert found_cli(config, db, "1 *")
    with Store(db) as store:
        assert found(store, "1 *") == fts_ids(db, "1 *")
