"""The measuring helpers of issue 18's benchmark: the floor script on real
local feeds, newsboat's cache count, the bulk-filled archive in monitor's
schema, the per-feed costs and the pruned-space reading. No timings asserted."""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import floor  # noqa: E402
from benchmarks import intake as bi  # noqa: E402
from benchmarks import poll as bp  # noqa: E402
from benchmarks.__main__ import pruned_space  # noqa: E402
from benchmarks.common import put_feed  # noqa: E402
from monitor.parse import parse_feed  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.types import FeedConfig  # noqa: E402
from tests.feedserver import serve  # noqa: E402

FEEDS = ROOT / "tests" / "data" / "feeds"
THREE = ("bbc-world.xml", "aljazeera.xml", "dw-en.rdf")  # RSS 2.0 twice, RSS 1.0


def test_floor_stores_every_item_with_its_fts_row_and_repolls_by_validators(
        tmp_path: Path) -> None:
    db = str(tmp_path / "floor.db")
    with serve() as host:
        for name in THREE:
            put_feed(host, f"/{name}", (FEEDS / name).read_bytes())
        urls = [host.url(f"/{name}") for name in THREE]
        first = floor.poll(db, urls)
        again = floor.poll(db, urls)
    expected = sum(len(floor.items_of((FEEDS / n).read_bytes())) for n in THREE)
    assert expected > 0 and all(floor.items_of((FEEDS / n).read_bytes()) for n in THREE)
    assert (first["new_items"], first["errors"], first["not_modified"]) == (expected, 0, 0)
    assert (again["new_items"], again["not_modified"]) == (0, 3)
    conn = sqlite3.connect(db)
    word = conn.execute("SELECT title FROM items LIMIT 1").fetchone()[0].split()[0]
    found = conn.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH ?",
                         [f'"{word}"']).fetchone()[0]
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == expected
    assert found >= 1


def test_newsboat_counts_reads_items_and_feeds_of_its_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    assert bp.newsboat_counts(cache) == (0, 0)
    conn = sqlite3.connect(cache)
    # newsboat 2.21's own tables, reduced to the columns counted.
    conn.execute("CREATE TABLE rss_feed (rssurl VARCHAR(1024) PRIMARY KEY NOT NULL)")
    conn.execute("CREATE TABLE rss_item (id INTEGER PRIMARY KEY, guid VARCHAR(64) NOT NULL, "
                 "feedurl VARCHAR(1024) NOT NULL)")
    conn.executemany("INSERT INTO rss_feed VALUES (?)", [("a",), ("b",)])
    conn.executemany("INSERT INTO rss_item (guid, feedurl) VALUES (?, ?)",
                     [(f"g{i}", "a") for i in range(5)])
    conn.commit()
    conn.close()
    assert bp.newsboat_counts(cache) == (5, 2)


def test_bulk_archive_is_distinct_indexed_and_keeps_the_stores_schema(tmp_path: Path) -> None:
    base = []
    for name in THREE:
        base += parse_feed((FEEDS / name).read_bytes(), url=f"https://example.org/{name}",
                           headers=(), fetched_at=datetime.now(UTC)).entries
    path = tmp_path / "archive.db"
    now = datetime.now(UTC)
    with Store(path, check=False) as s:
        s.sync_feeds([FeedConfig(id="f0", url="https://example.org/0", name="F0"),
                      FeedConfig(id="f1", url="https://example.org/1", name="F1")], now)
    n = len(base) * 3 + 7
    bi.fill_archive(path, base, n, ["f0", "f1"], log=lambda _: None)
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT count(*), count(DISTINCT key), count(DISTINCT url), "
                        "count(DISTINCT title || summary) FROM items").fetchone()
    assert rows[:3] == (n, n, n)
    assert rows[3] > len(base)  # titles paired with other entries' summaries
    word = base[0].title.split()[0]
    direct = conn.execute("SELECT count(*) FROM items WHERE title LIKE ?",
                          [f"%{word}%"]).fetchone()[0]
    indexed = conn.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH ?",
                           [f'"{word}"']).fetchone()[0]
    assert indexed >= direct // 2 > 0
    # The triggers the store has (since m011 no insert trigger: the store
    # indexes its new items itself), none lost or added by the bulk fill.
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                           "'trigger'")}
    assert triggers == {"items_ad", "items_au"}
    assert conn.execute("SELECT count(*) FROM items_fts_docsize").fetchone()[0] == n
    conn.close()


def _run(scenario: str, feeds: int, seconds: float) -> bp.Run:
    return bp.Run("monitor", scenario, feeds, seconds, seconds + 1, 1.0, 50.0, 0, 0, 0)


def test_per_feed_costs_split_the_changed_poll_by_the_repolls_rate() -> None:
    feeds = bp.FeedSet(tuple(f"/f{i}" for i in range(100)), (), {i: b"" for i in range(10)},
                       1, 1, 1)
    runs = [_run("first", 100, 9.0), _run("repoll", 100, 0.1), _run("changed", 100, 0.29)]
    costs = bp.per_feed_costs(runs, feeds)
    assert costs is not None
    unchanged, changed = costs
    assert round(unchanged, 6) == 1.0 and round(changed, 6) == 20.0
    # 900 s over (0.1 x 20 + 0.9 x 1) ms per feed
    assert bp.feeds_per_machine(unchanged, changed) == 310_344
    assert bp.feeds_per_machine(unchanged, changed, changed_share=1.0) == 45_000


def test_pruned_space_reads_the_batch_maintenance_uses() -> None:
    from monitor.store.maintenance import VACUUM_PAGES

    out = ("| pages per batch | free pages | median ms | max ms |\n|--|--|--|--|\n"
           f"| {VACUUM_PAGES:,} | 90,000 | 150 | 1,400 |\n| 99999 | 90000 | 1 | 2 |\n")
    target, measured, verdict, _ = pruned_space(out, 200_000)
    assert str(VACUUM_PAGES) in target and "worst batch 1400 ms" in measured
    assert verdict.startswith("not met")


def test_startup_figures_read_both_outputs_of_benchmarks_startup() -> None:
    from benchmarks.__main__ import startup_figures

    table_out = ("command                     target  compiled      recompiled\n"
                 "monitor --help               0.15s  0.092 (min 0.087) cpu 0.092  0.084 (min "
                 "0.079) cpu 0.084\n"
                 "monitor poll (nothing due)   0.30s  0.334 (min 0.332) cpu 0.330  0.366 (min "
                 "0.306) cpu 0.323\n")
    assert startup_figures(table_out) == {"help": (0.092, 0.087), "poll": (0.334, 0.332)}
    line_out = "nothing due: median 0.412s wall, min 0.398s; CPU median 0.4s over 10 runs\n"
    assert startup_figures(line_out) == {"poll": (0.412, 0.398)}
    assert startup_figures("first poll (300 feeds refused): 0.83s, exit 2\n") == {}


def test_peer_targets_compare_whole_processes_and_skip_a_missing_newsboat() -> None:
    def run(tool: str, wall: float) -> bp.Run:
        return bp.Run(tool, "first", 300, wall - 1, wall, 1.0, 50.0, 10, 0, 0)

    runs = [run("monitor", 4.0), run("reader", 30.0), run("reader8", 25.0),
            run("newsboat", 3.5), run("floor", 1.0)]
    reader, newsboat = bp.peer_targets(runs, 300)
    assert "reader update_feeds(workers=8) 25.0s = 6.25x" in reader[1]
    assert reader[2] == "met"
    assert "= 0.88x" in newsboat[1] and newsboat[2] == "not met (gap 1.14x)"
    assert "monitor 4.0x it" in newsboat[1]
    without = bp.peer_targets(runs[:3], 300)
    assert without[1][1] == "-" and without[1][2] != "met"


def test_every_benchmark_config_is_a_valid_monitor_config(tmp_path: Path) -> None:
    """The soak's config once lacked the entities the shipped topics use, and
    its daemon exited with code 2 inside a full benchmark run."""
    from benchmarks import soak, startup
    from monitor.config import load_config

    soak_yaml, startup_yaml, poll_yaml = (tmp_path / f"{n}.yaml" for n in ("s", "t", "p"))
    soak.write_config(soak_yaml, soak.make_farm(3, 60.0, 1), 60.0)
    startup.write_config(startup_yaml, 3)
    bp.write_monitor_config(poll_yaml, ["http://127.0.0.1:9/a.xml"])
    shipped = load_config(ROOT / "feeds.yaml")
    for path in (soak_yaml, startup_yaml, poll_yaml):
        config = load_config(path)
        assert [t.id for t in config.topics] == [t.id for t in shipped.topics]
        assert [t.fts_query for t in config.topics] == [t.fts_query for t in shipped.topics]
