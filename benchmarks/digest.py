"""Digest speed on a large archive: 1,000,000 items and 100,000 hits by default.

Builds a throwaway database with the real schema (Store's migrations), fills
it with executemany in one transaction (realistic English and Russian
headlines, stories carried by several feeds, a year of history, some failing,
disabled and silent feeds), then times ``digest.build`` and the rendering of
each format for a 24 h and a 7-day period, and the whole ``monitor digest``
command (which also opens the database and runs its quick integrity check).

    python -m benchmarks.digest [--items N --hits N --feeds N --days N] [--keep PATH] [--fts]

The items' full-text index is left empty unless ``--fts`` (the digest never
reads it, and filling it triples the build time); its triggers are dropped in
this throwaway copy for the bulk load. The goal (issue 6): under 2 s a digest.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from monitor import digest as dg
from monitor.cli import cli
from monitor.store import Store, to_iso
from monitor.types import Topic

NOW = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
GOAL = 2.0  # seconds

TOPICS = (
    ("kz-osce-chair", "Kazakhstan and the OSCE"),
    ("kz-human-rights", "Repression in Kazakhstan"),
    ("kz-labour-protests", "Labour protests in Kazakhstan"),
    ("kz-internet-freedom", "Internet and media freedom in Kazakhstan"),
    ("kz-regime", "Kazakhstan's ruling regime"),
    ("kz-economy-crisis", "Kazakhstan's economy under strain"),
    ("socialist-resistance", "Socialist Resistance Kazakhstan and the CWI"),
    ("osce-russia-security", "Russia, the OSCE and European security"),
)
SUBJECTS = ["Miners", "Oil workers", "Activists", "Journalists", "Opposition leaders",
            "Mortgage holders", "Teachers", "Bloggers", "The central bank", "Tokayev",
            "Nazarbayev's son-in-law", "OSCE observers", "Human rights defenders", "Lawyers",
            "Шахтёры", "Нефтяники", "Активисты", "Журналисты", "Ипотечники", "Блогеры"]
VERBS = ["strike over", "protest against", "are detained after", "condemn", "warn of",
         "sue the government over", "picket the akimat over", "face trial over",
         "call for an inquiry into", "report on", "бастуют из-за", "протестуют против",
         "задержаны после", "осуждают"]
OBJECTS = ["unpaid wages", "the new internet law", "tenge devaluation", "blocked websites",
           "the OSCE chairmanship", "rising food prices", "layoffs at the steel plant",
           "a ban on rallies", "election fraud", "mass evictions", "the security treaty",
           "невыплату зарплат", "закон об интернете", "девальвацию тенге", "блокировку сайтов"]
PLACES = ["in Almaty", "in Astana", "in Karaganda", "in Zhanaozen", "in Aktau", "in Temirtau",
          "in Shymkent", "in Vienna", "in Moscow", "в Алматы", "в Астане", "в Караганде"]
FILLER = ["the", "report", "said", "on", "Monday", "that", "officials", "had", "not",
          "responded", "to", "requests", "for", "comment", "while", "local", "residents",
          "described", "the", "situation", "as", "tense", "and", "several", "people", "were",
          "questioned", "by", "police", "according", "to", "witnesses", "and", "rights",
          "groups"]


def headline(rng: random.Random) -> str:
    return (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"{rng.choice(PLACES)}")


def summary(rng: random.Random, title: str) -> str:
    return title + ". " + " ".join(rng.choices(FILLER, k=rng.randint(15, 35))) + "."


def build(path: Path, *, items: int, hits: int, feeds: int, days: int, fts: bool,
          seed: int = 6) -> None:
    rng = random.Random(seed)
    with Store(path):
        pass  # the real schema, migrations applied
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    if not fts:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                    "AND tbl_name = 'items'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO topics (id, name, description, query, fts_query, position, active, "
        "updated_at) VALUES (?, ?, '', 'x', 'x', ?, 1, ?)",
        [(tid, name, i, to_iso(NOW)) for i, (tid, name) in enumerate(TOPICS)])
    conn.executemany(
        "INSERT INTO feeds (id, url, config_url, name, active, last_success_at, last_error, "
        "last_error_kind, failing_since, error_count, disabled_reason, created_at) "
        "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)", list(_feeds(rng, feeds)))
    span = days * 86400
    start = NOW - timedelta(days=days)
    conn.executemany(
        "INSERT INTO items (id, feed_id, key, url, canonical_url, story_key, title_key, title, "
        "summary, published_at, fetched_at, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?)", _items(rng, items, feeds, start, span))
    conn.executemany(
        "INSERT OR IGNORE INTO hits (item_id, topic_id, matched_at, terms, snippet) "
        "SELECT id, ?, fetched_at, ?, ? FROM items WHERE id = ?", _hits(rng, hits, items))
    conn.execute("COMMIT")
    if fts:
        conn.execute("INSERT INTO items_fts (items_fts) VALUES ('rebuild')")
    conn.close()


def _feeds(rng: random.Random, n: int) -> Iterator[tuple[object, ...]]:
    for i in range(n):
        failing = i % 50 == 7
        disabled = i % 100 == 13
        yield (f"feed-{i:04d}", f"https://news{i}.example/rss", f"https://news{i}.example/rss",
               f"News source {i}", to_iso(NOW - timedelta(minutes=rng.randint(1, 60))),
               "HTTP 503 Service Unavailable" if failing else None,
               "http-status" if failing else None,
               to_iso(NOW - timedelta(hours=rng.randint(1, 96))) if failing else None,
               rng.randint(1, 20) if failing else 0,
               "HTTP 410 Gone" if disabled else None, to_iso(NOW - timedelta(days=400)))


def _items(rng: random.Random, n: int, feeds: int, start: datetime,
           span: int) -> Iterator[tuple[object, ...]]:
    # Some feeds stop publishing a few weeks before the end: "silent" sources.
    silent = {i for i in range(feeds) if i % 40 == 3}
    recent: list[tuple[str, str]] = []  # (story_key, title) of the last stories, for syndication
    for i in range(1, n + 1):
        at = start + timedelta(seconds=span * i / n)
        feed = rng.randrange(feeds)
        if feed in silent and at > NOW - timedelta(days=20):
            feed = (feed + 1) % feeds
        if recent and rng.random() < 0.2:  # the same story from another feed
            story, title = rng.choice(recent)
        else:
            title = headline(rng)
            story = f"u:{i:024x}"
            recent = [*recent[-49:], (story, title)]
        url = f"https://news{feed}.example/{at:%Y/%m/%d}/story-{i}"
        published = to_iso(at - timedelta(minutes=rng.randint(0, 90)))
        yield (i, f"feed-{feed:04d}", f"k{i}", url, url, story, None, title,
               summary(rng, title), published, to_iso(at), f"h{i}")


def _hits(rng: random.Random, n: int, items: int) -> Iterator[tuple[object, ...]]:
    for _ in range(n):
        topic = rng.choice(TOPICS)[0]
        a, b = rng.sample(["Kazakhstan", "strike", "protest", "tenge", "OSCE", "detained",
                           "Алматы", "забастовка"], 2)
        snippet = f"…officials in [[{a}]] said the [[{b}]] continued on Monday as…"
        yield (topic, json.dumps([a, b], ensure_ascii=False), snippet, rng.randint(1, items))


def measure(path: Path) -> list[str]:
    topics = [Topic(id=tid, name=name, query="x", fts_query="x") for tid, name in TOPICS]
    lines = [f"{'period':>7} {'stories':>8} {'build':>7} " +
             " ".join(f"{f:>9}" for f in dg.FORMATS) + f" {'worst':>7}"]
    with Store(path, check=False) as store:
        for label, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
            t0 = time.perf_counter()
            d = dg.build(store, topics=topics, since=NOW - span, until=NOW, now=NOW)
            build_s = time.perf_counter() - t0
            renders = []
            for fmt in dg.FORMATS:
                t0 = time.perf_counter()
                dg.render(d, fmt)
                renders.append(time.perf_counter() - t0)
            worst = build_s + max(renders)
            lines.append(f"{label:>7} {d.story_count:>8} {build_s:>6.3f}s " +
                         " ".join(f"{r:>8.3f}s" for r in renders) +
                         f" {worst:>6.3f}s {'ok' if worst < GOAL else 'SLOW'}")
    return lines


def measure_cli(path: Path, config: Path) -> str:
    until = NOW.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, ["--config", str(config), "--db", str(path), "digest",
                                      "--until", until, "--since", "24h", "--format", "html",
                                      "--no-record"])
    elapsed = time.perf_counter() - t0
    if result.exit_code != 0:
        return f"monitor digest failed: {result.output.strip()}"
    return f"`monitor digest --format html` (open + quick_check + build + render): {elapsed:.3f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", type=Path, help="build the database here and keep it")
    parser.add_argument("--fts", action="store_true", help="fill the full-text index too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        path = args.keep or Path(tmp) / "bench.db"
        if not path.exists():
            t0 = time.perf_counter()
            build(path, items=args.items, hits=args.hits, feeds=args.feeds, days=args.days,
                  fts=args.fts)
            t = time.perf_counter() - t0
            print(f"built {args.items:,} items, {args.hits:,} hits, {args.feeds} feeds over "
                  f"{args.days} days in {t:.1f}s ({path.stat().st_size / 1e6:.0f} MB)")
        config = Path(tmp) / "feeds.yaml"
        config.write_text("topics:\n" + "".join(
            f"  - {{id: {tid}, name: \"{name}\", query: \"x\"}}\n" for tid, name in TOPICS),
            encoding="utf-8")
        for line in measure(path):
            print(line)
        print(measure_cli(path, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
