"""Poll throughput of `monitor poll` beside the `reader` library and a naive loop.

N feeds (1,000 by default) are built from the real feeds of the shared corpus
(copies get their item identifiers rewritten, so every copy holds distinct
items) and served from 127.0.0.1..127.0.0.10 by threaded HTTP servers with
ETag/Last-Modified support, started and stopped here. Each tool runs in its
own subprocess, from an empty database, through three polls:

* first poll: every feed new;
* re-poll: nothing changed (ETag -> 304 for tools that send validators);
* changed: 10 % of the feeds carry a few new items.

Tools: ``monitor poll --force`` (topics of feeds.yaml on, concurrency 20,
2 per host); reader's ``update_feeds()`` (default: one worker) and
``update_feeds(workers=8)``, each with its own SQLite; a naive loop (httpx GET
each URL in turn, ``feedparser.parse`` on the bytes, insert with sqlite-utils);
Debian's ``newsboat -x reload`` (a native reader, C++ and Rust: 8 reload
threads, its own config, URL list and cache in a temporary folder; skipped
with a message where it is not installed, ``make bench-peers`` installs it);
and the floor (benchmarks/floor.py: fetch concurrently, lxml, SQLite + FTS5,
nothing else).

feeds/s and items/s use the time of the polling call itself (``monitor``'s own
cycle duration, the ``update_feeds`` call, the loop); CPU seconds and peak RSS
are the whole process tree's (monitor's parser workers included: CPU from
wait4 rusage of every process, reaped by a subreaper launcher; peak RSS the
child's own, or the largest sampled sum of the tree's PSS when more), start-up
included. The servers
keep HTTP/1.1 connections alive for every tool alike; ``connections`` counts
the TCP connections a tool opened (reader opened about one per request in its
re-polls: its connections are not reused after a 304).

    python -m benchmarks.poll [--feeds N] [--tools monitor,reader,reader8,naive]
                              [--profile] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    SHARED_FEEDS,
    CorpusFeed,
    Measured,
    load_corpus,
    put_feed,
    retag,
    run_measured,
    serve_feeds,
    shipped_topics,
    table,
)
from tests.feedserver import FeedServer

SCENARIOS = ("first", "repoll", "changed")
TOOLS = ("monitor", "monitor1", "reader", "reader8", "naive", "newsboat", "floor")
TOOL_LABELS = {
    "monitor": "monitor poll",
    "monitor1": "monitor poll, one process (parse_workers: 0)",
    "reader": "reader update_feeds()",
    "reader8": "reader update_feeds(workers=8)",
    "naive": "naive loop (httpx+feedparser+sqlite-utils)",
    "newsboat": "newsboat -x reload (8 threads)",
    "floor": "floor (urllib3+lxml+SQLite FTS5)",
}
NEWSBOAT_THREADS = 8
CHANGED_FRACTION = 0.10
CHANGED_IDS = 3  # identifiers of each kind rewritten in a changed feed
HOSTS = 10
CHILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class FeedSet:
    paths: tuple[str, ...]
    base: tuple[bytes, ...]
    changed: dict[int, bytes]
    corpus_files: int
    corpus_items: int
    bytes_total: int


@dataclass(frozen=True)
class Run:
    tool: str
    scenario: str
    feeds: int
    seconds: float  # the polling call
    wall: float  # the whole process
    cpu: float
    peak_rss_mb: float
    new_items: int
    not_modified: int
    errors: int
    hits: int | None = None
    note: str = ""
    download_span: float | None = None  # first to last 200 response, seen by the server
    connections: int | None = None  # TCP connections the server accepted

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.seconds if self.seconds > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return self.new_items / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- feeds


def build_feeds(corpus: Sequence[CorpusFeed], n: int) -> FeedSet:
    """``n`` feeds cycling over the corpus; feed i's items are tagged ``f<i>``
    and, for every tenth feed, its changed version has a few more tagged ``r1``."""
    paths, bodies, changed = [], [], {}
    every = max(1, round(1 / CHANGED_FRACTION))
    items = 0
    for i in range(n):
        src = corpus[i % len(corpus)]
        body, _ = retag(src.body, f"f{i}")
        paths.append(f"/feeds/f{i:05d}.xml")
        bodies.append(body)
        items += src.items
        if i % every == every // 2:
            changed[i], _ = retag(body, "r1", count=CHANGED_IDS)
    return FeedSet(tuple(paths), tuple(bodies), changed, len(corpus), items,
                   sum(map(len, bodies)))


def publish(host: FeedServer, feeds: FeedSet, *, changed: bool) -> None:
    for i, (path, body) in enumerate(zip(feeds.paths, feeds.base, strict=True)):
        put_feed(host, path, feeds.changed.get(i, body) if changed else body)


def urls_of(host: FeedServer, feeds: FeedSet) -> list[str]:
    return [host.url(p, i) for i, p in enumerate(feeds.paths)]


# ---------------------------------------------------------------- monitor


def write_monitor_config(path: Path, urls: Sequence[str], *,
                         parse_workers: int | str = "auto") -> None:
    """feeds.yaml's terms and topics (matching on) with the benchmark's feeds."""
    config = {
        "settings": {"allow_private": True, "article_text": "never", "concurrency": 20, "per_host": 2,
                     "timeout": "60s", "interval": "15m", "parse_workers": parse_workers},
        "feeds": [{"id": f"f{i:05d}", "name": f"bench feed {i}", "url": u}
                  for i, u in enumerate(urls)],
        **shipped_topics(),
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


def monitor_cmd(config: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db),
            "-q", "poll", "--force", "--json"]


def monitor_run(tool: str, scenario: str, m: Measured) -> Run:
    try:
        data = json.loads(m.stdout[m.stdout.index("{"):])
    except ValueError:
        return _failed_run(tool, scenario, m)
    statuses = [f["status"] for f in data.get("feeds", [])]
    errors = [f"{f['id']}: {f['error']['kind']}: {f['error']['reason']}"[:200]
              for f in data.get("feeds", []) if f.get("error")]
    return Run(tool, scenario, int(data["feeds_polled"]), float(data["duration"]), m.wall,
               m.cpu, m.peak_rss_mb, int(data["new_items"]),
               statuses.count("not-modified"), int(data["failed"]), hits=int(data["hits"]),
               note="; ".join(errors[:5]))


# ---------------------------------------------------------------- peers


def peer_cmd(tool: str, db: Path, urls_file: Path) -> list[str]:
    if tool == "floor":
        return [sys.executable, "-m", "benchmarks.floor", "--db", str(db),
                "--urls", str(urls_file)]
    return [sys.executable, "-m", "benchmarks.poll", "--peer", tool, "--db", str(db),
            "--urls", str(urls_file)]


def newsboat_missing() -> str | None:
    """Why the newsboat rows are skipped, or None when it can run."""
    if shutil.which("newsboat") is None:
        return ("newsboat is not installed (Debian package `newsboat`; `make bench-peers` "
                "installs it as root or with sudo): its rows are skipped")
    return None


def newsboat_version() -> str:
    exe = shutil.which("newsboat")
    if exe is None:
        return "not installed"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    first = (out.splitlines() or ["?"])[0]
    return first.split(" - ")[0].removeprefix("newsboat ").strip() or "?"


def newsboat_setup(work: Path, urls_file: Path) -> tuple[list[str], dict[str, str], Path]:
    """The command, environment and cache file of a newsboat run that touches
    nothing outside ``work``: its own config, URL list, cache and home."""
    home = work / "newsboat"
    home.mkdir(exist_ok=True)
    config = home / "config"
    config.write_text(f"reload-threads {NEWSBOAT_THREADS}\ndownload-timeout 60\n",
                      encoding="utf-8")
    cache = home / "cache.db"
    cmd = [shutil.which("newsboat") or "newsboat", "-x", "reload", "-u", str(urls_file),
           "-c", str(cache), "-C", str(config)]
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config.d"),
           "XDG_DATA_HOME": str(home / "data.d")}
    return cmd, env, cache


def newsboat_counts(cache: Path) -> tuple[int, int]:
    """(items, feeds) in newsboat's cache: rss_item rows (one per GUID and
    feed) and rss_feed rows (feeds it parsed at least once); (0, 0) before
    its first run."""
    if not cache.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        items = int(conn.execute("SELECT count(*) FROM rss_item").fetchone()[0])
        feeds = int(conn.execute("SELECT count(*) FROM rss_feed").fetchone()[0])
    except sqlite3.Error:
        return 0, 0
    finally:
        conn.close()
    return items, feeds


def newsboat_run(scenario: str, m: Measured, feeds: int, before: int, after: tuple[int, int],
                 not_modified: int) -> Run:
    """newsboat has no poll call of its own to time: its seconds are the process's."""
    if m.returncode != 0:
        return _failed_run("newsboat", scenario, m)
    items, known = after
    return Run("newsboat", scenario, feeds, m.wall, m.wall, m.cpu, m.peak_rss_mb,
               items - before, not_modified, max(0, feeds - known))


def peer_run(tool: str, scenario: str, m: Measured) -> Run:
    try:
        data = json.loads(m.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return _failed_run(tool, scenario, m)
    return Run(tool, scenario, int(data["feeds"]), float(data["seconds"]), m.wall, m.cpu,
               m.peak_rss_mb, int(data["new_items"]), int(data["not_modified"]),
               int(data["errors"]), note="; ".join(data.get("error_samples") or ()))


def _failed_run(tool: str, scenario: str, m: Measured) -> Run:
    tail = (m.stderr.strip().splitlines() or ["no output"])[-1][:200]
    return Run(tool, scenario, 0, m.wall, m.wall, m.cpu, m.peak_rss_mb, 0, 0, -1,
               note=f"exit {m.returncode}: {tail}")


def run_reader(db: str, urls: Sequence[str], workers: int) -> dict[str, Any]:
    from reader import make_reader

    reader = make_reader(db)
    try:
        for url in urls:
            reader.add_feed(url, exist_ok=True)
        new = not_modified = errors = feeds = 0
        samples: list[str] = []
        t0 = time.perf_counter()
        # scheduled=False: every feed, as `monitor poll --force` does (reader
        # 3.13+ otherwise skips feeds whose update interval has not passed).
        for result in reader.update_feeds_iter(workers=workers, scheduled=False):
            feeds += 1
            value = result.value
            if value is None:
                not_modified += 1
            elif isinstance(value, Exception):
                errors += 1
                if len(samples) < 5:
                    samples.append(f"{result.url.rsplit('/', 1)[-1]}: {value!r} "
                                   f"caused by {value.__cause__!r}"[:300])
            else:
                new += value.new
        seconds = time.perf_counter() - t0
    finally:
        reader.close()
    return {"feeds": feeds, "seconds": seconds, "new_items": new,
            "not_modified": not_modified, "errors": errors, "error_samples": samples}


def run_naive(db: str, urls: Sequence[str]) -> dict[str, Any]:
    import hashlib

    import feedparser
    import httpx
    import sqlite_utils

    database = sqlite_utils.Database(db)
    table_ = database.table("entries")
    before = table_.count if table_.exists() else 0
    errors = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for url in urls:
            try:
                body = client.get(url).content
            except httpx.HTTPError:
                errors += 1
                continue
            parsed = feedparser.parse(body)
            rows = []
            for e in parsed.entries:
                key = e.get("id") or e.get("link") or hashlib.sha256(
                    (e.get("title", "") + e.get("summary", "")).encode()).hexdigest()
                rows.append({"feed": url, "id": key, "title": e.get("title"),
                             "link": e.get("link"), "summary": e.get("summary"),
                             "published": e.get("published")})
            if rows:
                table_.insert_all(rows, pk=("feed", "id"), ignore=True)
    seconds = time.perf_counter() - t0
    after = table_.count
    return {"feeds": len(urls), "seconds": seconds, "new_items": after - before,
            "not_modified": 0, "errors": errors}


def peer_main(tool: str, db: str, urls_file: str) -> int:
    urls = Path(urls_file).read_text(encoding="utf-8").split()
    if tool == "naive":
        result = run_naive(db, urls)
    else:
        result = run_reader(db, urls, 8 if tool == "reader8" else 1)
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------- where time goes


# Functions whose cumulative time answers "where does the first poll go",
# as (label, file suffix, function name or names joined by "|").
PROFILE_POINTS = (
    # Parsing, matching (_prepare) and the grouped commits (_flush); not the
    # ingest thread's waits for work.
    ("ingest (the per-feed work, ingest thread)", "monitor/poll.py", "_prepare|_flush"),
    ("parse_feed (all of parsing)", "monitor/parse/document.py", "parse_feed"),
    ("  monitor.fastparse (lxml fast path)", "monitor/parse/fast.py", "extract"),
    ("  feedparser.parse", "feedparser/api.py", "parse"),
    ("  charset probe (feedparser convert_to_utf8)", "monitor/parse/document.py", "_to_utf8"),
    ("  entity guard + charrefs", "monitor/parse/entities.py", "_guard_entities"),
    ("  entries -> Entry (plain text, keys, dates)", "monitor/parse/entries.py", "_entries"),
    ("Matcher.match (topics on)", "monitor/match/batch.py", "match"),
    ("store: existing_hashes", "monitor/store/items.py", "existing_hashes"),
    ("store: commit_polls (feeds grouped per transaction)", "monitor/store/items.py",
     "commit_polls"),
    ("fetch (event loop, main thread)", "monitor/fetch/client.py", "fetch"),
)


@dataclass(frozen=True)
class PollProfile:
    name: str
    feeds: int
    wall: float
    points: list[tuple[str, float, int]]  # (label, cumulative s, calls)
    top: str


def profile_polls(feeds: FeedSet) -> list[PollProfile]:
    """A first poll, then an unchanged re-poll, run in this process under
    cProfile: the main thread (event loop, fetching) and the ingest thread
    (parsing, matching, storing); the feed server's threads are left out."""
    from datetime import UTC, datetime

    from monitor.config import load_config
    from monitor.store import Store

    out = []
    with serve_feeds(HOSTS) as host, tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        publish(host, feeds, changed=False)
        cfg_path = Path(tmp) / "feeds.yaml"
        write_monitor_config(cfg_path, urls_of(host, feeds))
        config = load_config(cfg_path)
        with Store(Path(tmp) / "monitor.db") as store:
            # As `monitor poll` prepares the store (cli._prepare): hits need their topics.
            store.sync_feeds(config.feeds, datetime.now(UTC))
            store.sync_topics(config.topics, datetime.now(UTC))
            for name in ("first poll", "unchanged re-poll"):
                out.append(_profile_one(name, config, store))
    return out


def _profile_one(name: str, config: Any, store: Any) -> PollProfile:
    import cProfile
    import pstats
    import threading

    from monitor.poll import run_poll

    profiles: list[cProfile.Profile] = []

    def start_in_thread(*_: object) -> None:
        if not threading.current_thread().name.startswith("monitor-ingest"):
            sys.setprofile(None)
            return
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()  # replaces this hook for the ingest thread

    main_prof = cProfile.Profile()
    threading.setprofile(start_in_thread)
    t0 = time.perf_counter()
    main_prof.enable()
    try:
        summary = run_poll(config, store, force=True)
    finally:
        main_prof.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    stats = pstats.Stats(main_prof)
    for prof in profiles:
        stats.add(prof)
    raw = stats.stats  # type: ignore[attr-defined]
    points: list[tuple[str, float, int]] = []
    for label, suffix, funcs in PROFILE_POINTS:
        names = funcs.split("|")
        ct, nc = 0.0, 0
        for (filename, _line, fname), (_cc, ncalls, _tt, cum, _callers) in raw.items():
            if fname in names and filename.endswith(suffix):
                ct, nc = ct + cum, nc + ncalls
        points.append((label, ct, nc))
    # The event loop's idle wait (epoll) is not work: left out of the top list.
    busy = [kv for kv in raw.items() if "epoll" not in kv[0][2]]
    top = sorted(busy, key=lambda kv: kv[1][2], reverse=True)[:15]
    lines = [f"{tt:8.2f}s own {ct:8.2f}s cum {nc:9d} calls  {_short_path(fn)}:{ln}({func})"
             for (fn, ln, func), (_cc, nc, tt, ct, _c) in top]
    return PollProfile(name, len(summary.results), wall, points, "\n".join(lines))


def _short_path(filename: str) -> str:
    parts = Path(filename).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else filename


@dataclass(frozen=True)
class ParserCost:
    name: str
    seconds: float
    failures: int


def parser_costs(corpus: Sequence[CorpusFeed]) -> tuple[int, int, list[ParserCost]]:
    """Time to parse every corpus feed once: monitor's parse_feed, feedparser
    alone (with monitor's options, and with its defaults), and bare XML
    parsers (what a fast path for well-formed feeds would start from)."""
    import io
    import xml.etree.ElementTree as ET
    from datetime import UTC, datetime

    import feedparser

    from monitor.errors import ParseError
    from monitor.parse import parse_feed

    now = datetime.now(UTC)

    def ours(body: bytes) -> object:
        return parse_feed(body, url="http://bench.invalid/", headers={}, fetched_at=now)

    def fp_monitor(body: bytes) -> object:
        return feedparser.parse(io.BytesIO(body), sanitize_html=False,
                                resolve_relative_uris=False)

    def fp_default(body: bytes) -> object:
        return feedparser.parse(io.BytesIO(body))

    candidates: list[tuple[str, Any]] = [
        ("monitor.parse.parse_feed", ours),
        ("feedparser.parse (monitor's options)", fp_monitor),
        ("feedparser.parse (defaults: sanitize, resolve URIs)", fp_default),
        ("xml.etree.ElementTree.fromstring (expat)", ET.fromstring),
    ]
    try:
        from lxml import etree as lxml_etree  # type: ignore[import-not-found,unused-ignore]

        candidates.append(("lxml.etree.fromstring", lxml_etree.fromstring))
    except ImportError:
        pass
    out = []
    for name, fn in candidates:
        failures = 0
        t0 = time.perf_counter()
        for feed in corpus:
            try:
                fn(feed.body)
            except (ParseError, ET.ParseError, ValueError, SyntaxError):
                failures += 1
        out.append(ParserCost(name, time.perf_counter() - t0, failures))
    return len(corpus), sum(c.items for c in corpus), out


def render_profile(prof: PollProfile) -> str:
    ingest = next((s for label, s, _ in prof.points if label.startswith("ingest")), 0.0)
    rows = [[label, s, n, f"{s / ingest:.0%}" if ingest and not label.startswith("fetch")
             else "-"] for label, s, n in prof.points]
    return "\n".join([
        f"{prof.name.capitalize()} of {prof.feeds:,} feeds in-process under cProfile: "
        f"{prof.wall:.1f}s wall (profiling slows Python code ~1.5-2x; shares matter, "
        "not seconds).", "",
        table(["where", "cumulative s", "calls", "share of ingest"], rows), "",
        "Top functions by own time (all threads):", "", "```", prof.top, "```"])


def render_parsers(n_feeds: int, n_items: int, costs: Sequence[ParserCost]) -> str:
    rows = [[c.name, c.seconds, c.seconds / n_items * 50 * 1000, c.failures] for c in costs]
    return "\n".join([f"Parsing each of the {n_feeds} corpus feeds once ({n_items:,} items):", "",
                      table(["parser", "total s", "ms per 50 items", "failed feeds"], rows)])


# ---------------------------------------------------------------- driver


def measure(feeds: FeedSet, tools: Sequence[str], log: Any = print) -> list[Run]:
    runs: list[Run] = []
    with serve_feeds(HOSTS) as host, tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        work = Path(tmp)
        urls = urls_of(host, feeds)
        (work / "urls.txt").write_text("\n".join(urls), encoding="utf-8")
        write_monitor_config(work / "feeds.yaml", urls)
        write_monitor_config(work / "feeds-1.yaml", urls, parse_workers=0)
        for tool in tools:
            if tool == "newsboat" and (why := newsboat_missing()):
                log(f"  {why}")
                continue
            db = work / f"{tool}.db"
            publish(host, feeds, changed=False)
            for scenario in SCENARIOS:
                if scenario == "changed":
                    publish(host, feeds, changed=True)
                host.reset_counts()
                if tool.startswith("monitor"):
                    config = work / ("feeds.yaml" if tool == "monitor" else "feeds-1.yaml")
                    m = run_measured(monitor_cmd(config, db), timeout=CHILD_TIMEOUT)
                    run = monitor_run(tool, scenario, m)
                elif tool == "newsboat":
                    cmd, env, cache = newsboat_setup(work, work / "urls.txt")
                    before = newsboat_counts(cache)[0]
                    m = run_measured(cmd, timeout=CHILD_TIMEOUT, env=env)
                    run = newsboat_run(scenario, m, len(urls), before, newsboat_counts(cache),
                                       host.not_modified)
                else:
                    m = run_measured(peer_cmd(tool, db, work / "urls.txt"),
                                     timeout=CHILD_TIMEOUT)
                    run = peer_run(tool, scenario, m)
                run = replace(run, download_span=host.body_span(),
                              connections=host.counts()[0])
                runs.append(run)
                log(f"  {TOOL_LABELS[tool]:<44} {scenario:<8} {run.seconds:7.2f}s "
                    f"{run.feeds_per_s:8.1f} feeds/s {run.new_items:7d} new "
                    f"cpu {run.cpu:6.1f}s rss {run.peak_rss_mb:5.0f} MB "
                    f"{run.connections} conns process {run.wall:.2f}s {run.note}")
    return runs


def best_peer(runs: Sequence[Run], scenario: str) -> Run | None:
    peers = [r for r in runs if r.tool.startswith("reader") and r.scenario == scenario
             and r.errors >= 0]
    return max(peers, key=lambda r: r.feeds_per_s, default=None)


def render(runs: Sequence[Run], feeds: FeedSet) -> str:
    lines = [f"{len(feeds.paths):,} feeds ({feeds.bytes_total / 1e6:.0f} MB, ~{feeds.corpus_items:,}"
             f" items) built from {feeds.corpus_files} real feeds; "
             f"{len(feeds.changed)} feeds changed in the 'changed' poll.", ""]
    rows = []
    for scenario in SCENARIOS:
        base = best_peer(runs, scenario)
        for r in (x for x in runs if x.scenario == scenario):
            ratio = (f"{r.feeds_per_s / base.feeds_per_s:.2f}x"
                     if base and base.feeds_per_s > 0 else "-")
            rows.append([scenario, TOOL_LABELS[r.tool], r.feeds, r.seconds, r.feeds_per_s,
                         r.items_per_s, r.new_items, r.not_modified, r.cpu, r.peak_rss_mb,
                         r.wall, "-" if r.download_span is None else r.download_span,
                         "-" if r.connections is None else r.connections, ratio,
                         "-" if r.hits is None else r.hits,
                         r.errors if r.errors >= 0 else r.note])
    lines.append(table(["poll", "tool", "feeds", "poll s", "feeds/s", "items/s", "new items",
                        "304", "CPU s", "peak RSS MB", "process s", "bodies served in s",
                        "connections", "vs best reader", "hits", "errors"], rows))
    return "\n".join(lines)


def _wall_of(runs: Sequence[Run], scenario: str, *tools: str) -> Run | None:
    """The fastest whole process among ``tools`` for ``scenario`` (failed runs left out)."""
    ok = [r for r in runs if r.tool in tools and r.scenario == scenario and r.errors >= 0
          and r.feeds > 0]
    return min(ok, key=lambda r: r.wall, default=None)


def _x(num: Run | None, den: Run | None) -> str:
    return f"{num.wall / den.wall:.2f}x" if num and den and den.wall > 0 else "-"


def render_ratios(runs: Sequence[Run]) -> str:
    """Whole processes side by side: how many times faster monitor is than each
    peer (peer's seconds / monitor's), and how far it is from the floor
    (monitor's seconds / the floor's)."""
    rows = []
    for scenario in SCENARIOS:
        mon = _wall_of(runs, scenario, "monitor")
        reader = _wall_of(runs, scenario, "reader", "reader8")
        news = _wall_of(runs, scenario, "newsboat")
        floor = _wall_of(runs, scenario, "floor")

        def secs(r: Run | None) -> object:
            return "-" if r is None else r.wall

        rows.append([scenario, secs(mon), secs(reader), _x(reader, mon), secs(news),
                     _x(news, mon), secs(floor), _x(mon, floor)])
    return table(["poll", "monitor process s", "best reader process s", "reader / monitor",
                  "newsboat process s", "newsboat / monitor", "floor process s",
                  "monitor / floor"], rows)


def peer_targets(runs: Sequence[Run], n_feeds: int) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for issue 18's first-poll targets at one size:
    whole processes, >= 5x the best reader and faster than newsboat."""
    out = []
    mon = _wall_of(runs, "first", "monitor")
    reader = _wall_of(runs, "first", "reader", "reader8")
    news = _wall_of(runs, "first", "newsboat")
    floor = _wall_of(runs, "first", "floor")
    far = f"; floor {floor.wall:.1f}s (monitor {mon.wall / floor.wall:.1f}x it)" \
        if mon and floor and floor.wall > 0 else ""
    if mon and reader:
        ratio = reader.wall / mon.wall
        out.append((f"first poll >= 5x reader at {n_feeds:,} feeds (whole processes)",
                    f"monitor {mon.wall:.1f}s vs {TOOL_LABELS[reader.tool]} {reader.wall:.1f}s "
                    f"= {ratio:.2f}x{far}",
                    "met" if ratio >= 5 else f"not met (gap {5 / ratio:.2f}x)"))
    if mon:
        if news is None:
            out.append((f"first poll faster than newsboat at {n_feeds:,} feeds (wall)", "-",
                        newsboat_missing() or "newsboat failed: see Poll throughput"))
        else:
            ratio = news.wall / mon.wall
            out.append((f"first poll faster than newsboat at {n_feeds:,} feeds (wall)",
                        f"monitor {mon.wall:.2f}s vs newsboat {news.wall:.2f}s = {ratio:.2f}x"
                        f"{far}", "met" if ratio > 1 else f"not met (gap {1 / ratio:.2f}x)"))
    return out


def per_feed_costs(runs: Sequence[Run], feeds: FeedSet) -> tuple[float, float] | None:
    """(ms per unchanged feed, ms per changed feed) of monitor's poll cycle: the
    re-poll's seconds over its feeds; the changed poll's seconds less its
    unchanged feeds' share, over the changed feeds."""
    again = next((r for r in runs if r.tool == "monitor" and r.scenario == "repoll"), None)
    changed = next((r for r in runs if r.tool == "monitor" and r.scenario == "changed"), None)
    n_changed = len(feeds.changed)
    if not again or not changed or again.feeds <= 0 or n_changed <= 0 or again.errors < 0:
        return None
    unchanged = again.seconds / again.feeds
    rest = changed.seconds - unchanged * (changed.feeds - n_changed)
    return unchanged * 1000, max(rest, 0.0) / n_changed * 1000


def feeds_per_machine(unchanged_ms: float, changed_ms: float, *, interval_s: float = 900.0,
                      changed_share: float = CHANGED_FRACTION) -> int:
    """Feeds whose poll cycle fits in ``interval_s`` when ``changed_share`` of
    them changed since the last one."""
    per_feed = changed_share * changed_ms + (1 - changed_share) * unchanged_ms
    return int(interval_s * 1000 / per_feed) if per_feed > 0 else 0


def targets(runs: Sequence[Run]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the poll targets of issue 8."""
    out = []
    mon = {r.scenario: r for r in runs if r.tool == "monitor"}
    best = best_peer(runs, "first")
    first = mon.get("first")
    if first and best and best.feeds_per_s > 0:
        ratio = first.feeds_per_s / best.feeds_per_s
        out.append(("first poll >= 5x reader's best feeds/s (matching on)",
                    f"{first.feeds_per_s:.1f} vs {best.feeds_per_s:.1f} feeds/s "
                    f"({TOOL_LABELS[best.tool]}) = {ratio:.2f}x",
                    "met" if ratio >= 5 else f"not met (gap {5 / ratio:.1f}x)"))
    again = mon.get("repoll")
    if first and again and again.seconds > 0:
        ratio = first.seconds / again.seconds
        proc = first.wall / again.wall if again.wall > 0 else 0.0
        out.append(("unchanged re-poll >= 20x faster than first poll",
                    f"{first.seconds:.2f}s -> {again.seconds:.2f}s = {ratio:.1f}x "
                    f"(whole process {first.wall:.1f}s -> {again.wall:.1f}s = {proc:.1f}x)",
                    "met" if ratio >= 20 else f"not met (gap {20 / ratio:.1f}x)"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poll", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", type=Path, help="write the runs as JSON here")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a first poll in-process and time the parsers")
    parser.add_argument("--peer", choices=("reader", "reader8", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        return peer_main(args.peer, args.db, args.urls)
    corpus = load_corpus()
    if not corpus:
        print(f"poll benchmark skipped: no real feeds in {SHARED_FEEDS} "
              "(set MONITOR_BENCH_FEEDS to a folder with INDEX.tsv)")
        return 0
    feeds = build_feeds(corpus, args.feeds)
    tools = [t for t in args.tools.split(",") if t in TOOLS]
    runs = measure(feeds, tools)
    print(render(runs, feeds))
    print(render_ratios(runs))
    for target, measured, verdict in [*peer_targets(runs, len(feeds.paths)), *targets(runs)]:
        print(f"- {target}: {measured}: {verdict}")
    if args.profile:
        print()
        for prof in profile_polls(feeds):
            print(render_profile(prof))
            print()
        print()
        print(render_parsers(*parser_costs(corpus)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
