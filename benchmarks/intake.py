"""The archive must not slow the intake: a first poll of the same real feeds
into an empty archive and into one already holding a large number of
real-size items (1M by default).

    python -m benchmarks.intake [--items 1000000] [--feeds 200]

The large archive is written in bulk, straight into monitor's own schema
(the Store creates the file and runs every migration; the items then go in
by one multi-row INSERT per chunk with the FTS trigger set aside, and the
FTS index is rebuilt in one pass, exactly as the migrations rebuild it).
Its items are the entries of the shared real-feed corpus, parsed by
monitor's parser, varied so no two are alike: each title is paired with
another entry's summary, every item has its own key, URL, story and
content hash, and their dates spread over the year before the poll. They
belong to the feeds the poll then fetches, as a year of history would.

The poll itself is a whole `monitor poll --force` process (topics on), run
(after one uncounted warm-up) into an empty archive, then into the large
one, then into an empty one again (the two empty runs bracket the large one, so a change of load on a
shared machine shows as their difference). Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import poll as bp
from benchmarks.common import load_corpus, run_measured, serve_feeds, table
from monitor.types import Entry

CHUNK = 20_000  # rows per INSERT batch (and per progress line's step)
YEAR = 365 * 86400
TARGET = 0.80  # ingest at the large archive >= 80 % of the empty one's rate


@dataclass(frozen=True)
class IntakeRun:
    archive: int  # items in the archive before the poll
    seconds: float  # the poll cycle
    wall: float  # the whole process
    cpu: float
    peak_rss_mb: float
    new_items: int
    errors: int

    @property
    def items_per_s(self) -> float:
        return self.new_items / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- the archive


def archive_rows(base: Sequence[Entry], columns: Sequence[str], n: int, feed_ids: Sequence[str],
                 now: datetime) -> Iterator[tuple[Any, ...]]:
    """``n`` distinct real-size rows of ``items`` (in ``columns`` order): entry
    i's title with another entry's summary, its own key, URL and story, dated
    over the year before ``now``."""
    from monitor import stories
    from monitor.store.db import to_iso

    size = len(base)
    norm = _norm_parts(base) if "norm" in columns else None
    canon = [stories.canonical_url(e.url) or f"https://archive.invalid/{i}"
             for i, e in enumerate(base)]
    tkeys = [stories.title_key(e.title) for e in base]
    for i in range(n):
        t = i % size
        s = (t * 7 + i // size + 1) % size  # a different summary on each round
        title, other = base[t], base[s]
        when = to_iso(now - timedelta(seconds=YEAR * (n - i) / n))
        url = f"{canon[t].rstrip('/')}/a{i}"
        values = {
            "feed_id": feed_ids[i % len(feed_ids)], "key": f"a{i}", "url": url,
            "canonical_url": url, "story_key": f"a:{i}", "title_key": tkeys[t],
            "title": title.title, "summary": other.summary, "author": title.author,
            "published_at": when, "updated_at": None, "fetched_at": when,
            "language": title.language, "content_hash": f"a{i}", "article": None,
        }
        if norm is not None:
            values["norm"] = " ".join(x for x in (norm[0][t], norm[1][s]) if x)
        yield tuple(values.get(c) for c in columns)


def _norm_parts(base: Sequence[Entry]) -> tuple[list[str], list[str]]:
    """Each entry's normal title and summary, once: norm_document joins its
    fields' normal forms with spaces, so a pairing's value is their join
    (checked on a few below against norm_document itself)."""
    from monitor.normalize import norm_document, normalize_text

    titles = [normalize_text(e.title) for e in base]
    summaries = [normalize_text(e.summary) for e in base]
    for t, s in ((0, 1), (len(base) - 1, 0)):
        joined = " ".join(x for x in (titles[t], summaries[s]) if x)
        if joined != norm_document(base[t].title, base[s].summary):
            raise SystemExit("norm_document is no longer a join of its fields' normal forms: "
                             "benchmarks/intake.py must call it per item")
    return titles, summaries


def fill_archive(path: Path, base: Sequence[Entry], n: int, feed_ids: Sequence[str],
                 log: Callable[[str], None] = print) -> float:
    """Write ``n`` items into the (migrated, feeds synced) database at ``path``;
    the seconds it took."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(items)") if r[1] != "id"]
        trigger = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                               "AND name = 'items_ai'").fetchone()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")  # a benchmark's scratch file
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("BEGIN")
        if trigger:
            conn.execute("DROP TRIGGER items_ai")
        insert = (f"INSERT INTO items ({', '.join(columns)}) "
                  f"VALUES ({', '.join('?' * len(columns))})")
        rows = archive_rows(base, columns, n, feed_ids, datetime.now(UTC))
        done = 0
        while done < n:
            chunk = [next(rows) for _ in range(min(CHUNK, n - done))]
            conn.executemany(insert, chunk)
            done += len(chunk)
            if done % (CHUNK * 10) == 0 or done == n:
                log(f"  archive: {done:,} / {n:,} items written "
                    f"({time.perf_counter() - t0:.0f}s)")
        log("  archive: indexing (FTS5 rebuild)")
        conn.execute("INSERT INTO items_fts (items_fts) VALUES ('rebuild')")
        if trigger:
            conn.execute(trigger[0])
        conn.execute("COMMIT")
        conn.execute("PRAGMA optimize")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - t0


def _empty_db(path: Path, config: Path) -> None:
    """Migrated, with the config's feeds, as `monitor poll` leaves it."""
    from monitor.config import load_config
    from monitor.store import Store

    cfg = load_config(config)
    with Store(path, check=False) as store:
        store.sync_feeds(cfg.feeds, datetime.now(UTC))
        store.sync_topics(cfg.topics, datetime.now(UTC))


# ---------------------------------------------------------------- the polls


def poll_into(db: Path, config: Path, archive: int, log: Callable[[str], None]) -> IntakeRun:
    m = run_measured(bp.monitor_cmd(config, db), timeout=bp.CHILD_TIMEOUT)
    run = bp.monitor_run("monitor", "first", m)
    out = IntakeRun(archive, run.seconds, m.wall, m.cpu, m.peak_rss_mb, run.new_items,
                    run.errors)
    log(f"  poll into {archive:,} items: {out.new_items:,} new in {out.seconds:.2f}s "
        f"({out.items_per_s:,.0f} items/s), process {out.wall:.2f}s, CPU {out.cpu:.1f}s "
        f"{run.note}")
    return out


def measure(n_items: int, n_feeds: int = 200, log: Callable[[str], None] = print
            ) -> tuple[list[IntakeRun], dict[str, float]]:
    """(the three polls: empty, archive, empty; facts about the archive)."""
    from benchmarks.storage import real_entries

    corpus = load_corpus()
    feeds = bp.build_feeds(corpus, n_feeds)
    base = real_entries()
    with serve_feeds(bp.HOSTS) as host, tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        work = Path(tmp)
        bp.publish(host, feeds, changed=False)
        config = work / "feeds.yaml"
        bp.write_monitor_config(config, bp.urls_of(host, feeds))
        template = work / "template.db"
        _empty_db(template, config)
        feed_ids = [f"f{i:05d}" for i in range(n_feeds)]
        archive = work / "archive.db"
        shutil.copy(template, archive)
        log(f"  archive: {n_items:,} real-size items from {len(base):,} corpus entries")
        fill = fill_archive(archive, base, n_items, feed_ids, log)
        facts = {"fill_s": fill, "size_mb": archive.stat().st_size / 1e6,
                 "base_entries": float(len(base)),
                 "mean_chars": statistics.mean(len(e.title) + len(e.summary) for e in base)}
        # A first process warms the interpreter's files and the corpus in the OS cache,
        # so the first timed run is not the only cold one.
        warm = work / "warm.db"
        shutil.copy(template, warm)
        poll_into(warm, config, 0, lambda line: log(line + " (warm-up, not counted)"))
        runs = []
        for archived, label in ((0, "empty-1"), (n_items, "archive"), (0, "empty-2")):
            db = archive if archived else work / f"{label}.db"
            if not archived:
                shutil.copy(template, db)
            runs.append(poll_into(db, config, archived, log))
            for f in work.glob(f"{label}.db*"):
                f.unlink()
    return runs, facts


def render(runs: Sequence[IntakeRun], facts: dict[str, float]) -> str:
    rows = [[f"{r.archive:,}", r.new_items, r.seconds, r.items_per_s, r.wall, r.cpu,
             r.peak_rss_mb, r.errors] for r in runs]
    ratio = intake_ratio(runs)
    lines = [f"Archive: {runs[1].archive:,} real-size items ({facts['size_mb']:,.0f} MB, written "
             f"in bulk in {facts['fill_s']:.0f}s) from {facts['base_entries']:,.0f} entries of "
             f"the real corpus ({facts['mean_chars']:.0f} characters of title and summary on "
             "average), each title paired with another entry's summary.", "",
             table(["archive items", "new items", "poll s", "items/s", "process s", "CPU s",
                    "peak RSS MB", "errors"], rows)]
    if ratio is not None:
        lines += ["", f"Rate into the large archive / mean of the two empty runs: {ratio:.0%} "
                  f"(target >= {TARGET:.0%})."]
    return "\n".join(lines)


def intake_ratio(runs: Sequence[IntakeRun]) -> float | None:
    empty = [r.items_per_s for r in runs if r.archive == 0 and r.items_per_s > 0]
    full = [r.items_per_s for r in runs if r.archive > 0]
    if not empty or not full:
        return None
    return full[0] / statistics.mean(empty)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.intake", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000, help="items in the large archive")
    ap.add_argument("--feeds", type=int, default=200)
    args = ap.parse_args(argv)
    if not load_corpus():
        print("intake benchmark skipped: no real feeds (see benchmarks.common.SHARED_FEEDS)")
        return 0
    runs, facts = measure(args.items, args.feeds)
    print(render(runs, facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
