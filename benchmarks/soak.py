"""Soak test of the daemon: many local feeds with changing content, for minutes.

Starts a feed server on 127.0.0.1 with ``--feeds`` RSS feeds (default 200). Each
feed gains a new item every 1.5-4 poll intervals (its own period, seeded), and
honours ETag/If-None-Match with 304. Then runs the real daemon
(``python -m monitor run``) on them for ``--minutes`` (default 30), samples the
daemon's memory every 10 s, stops adding items a settling time before the end
(so every feed is polled once more), sends SIGTERM and checks:

- memory stays flat: peak RSS (VmHWM) at the end within 10 % of the peak at
  ``--baseline`` minutes (default 5, or a third of a shorter run);
- every change was ingested: each item the server ever published is in the
  database;
- no feed was polled early: the gap between two requests for a feed, as the
  server saw them, is never shorter than the feed's interval (less ``--slack``,
  default 0.5 s: the server times a request on arrival, the daemon when it
  starts it, and connecting takes a moment);
- a clean stop: exit code 0 within 10 s of SIGTERM, ``PRAGMA integrity_check``
  ok.

    python -m benchmarks.soak [--minutes 30] [--feeds 200] [--interval 60] [--json]

Exit status 0 when every check passes, 1 otherwise. Needs nothing beyond the
project; psutil (the bench extra) is used only where /proc is missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

from benchmarks.common import shipped_topics
from tests.feedserver import Route, respond
from tests.feedserver import serve as serve_routes

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 20  # items per feed document
INITIAL = 10  # items each feed has before the run starts
STOP_BOUND = 10.0
SAMPLE_EVERY = 10.0
# Some items match the shipped topics, so hits are written too.
TOPICAL = (
    "Kazakhstan: miners strike in Karaganda over unpaid wages",
    "Almaty court jails journalist for two years",
    "OSCE chairmanship: Kazakhstan urged to free political prisoners",
    "Нурсултан Назарбаев и коррупция: новое расследование",
    "Tenge devaluation hits mortgage holders in Kazakhstan",
)


# --- the feed server -----------------------------------------------------------------------

@dataclass
class SoakFeed:
    n: int
    period: float  # seconds between new items
    offset: float  # first new item at t0 + offset

    def count(self, elapsed: float) -> int:
        """Items published ``elapsed`` seconds after the start (initial ones included)."""
        if elapsed < self.offset:
            return INITIAL
        return INITIAL + 1 + int((elapsed - self.offset) // self.period)


@dataclass
class FeedFarm:
    feeds: list[SoakFeed]
    started: float  # monotonic
    wall: datetime
    frozen_at: float | None = None  # elapsed seconds after which nothing new appears
    requests: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def elapsed(self) -> float:
        e = time.monotonic() - self.started
        return min(e, self.frozen_at) if self.frozen_at is not None else e

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{n}"

    def published_at(self, feed: SoakFeed, j: int) -> datetime:
        seconds = feed.offset + (j - INITIAL) * feed.period if j >= INITIAL else -3600.0 * (
            INITIAL - j)
        return self.wall + timedelta(seconds=seconds)

    def document(self, feed: SoakFeed, count: int) -> bytes:
        items = []
        for j in range(count - 1, max(count - WINDOW, 0) - 1, -1):
            title = (TOPICAL[(feed.n + j) % len(TOPICAL)] if (feed.n + j) % 6 == 0
                     else f"Feed {feed.n} routine report number {j}")
            items.append(
                f"<item><title>{escape(title)}</title><guid>soak-{feed.n}-{j}</guid>"
                f"<link>http://example.org/{feed.n}/{j}</link>"
                f"<description>{escape(title)}: item {j} of feed {feed.n}.</description>"
                f"<pubDate>{format_datetime(self.published_at(feed, j))}</pubDate></item>")
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Soak feed {feed.n}</title><link>http://example.org/{feed.n}</link>"
                f"<description>soak</description>{''.join(items)}</channel></rss>").encode()

    def record(self, n: int, status: int) -> None:
        with self.lock:
            self.requests.setdefault(n, []).append((time.monotonic(), status))


def _route(farm: FeedFarm, feed: SoakFeed) -> Route:
    """Feed ``feed.n``'s document as of now, with an ETag that changes with its count."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        count = feed.count(farm.elapsed())
        etag = f'"{feed.n}-{count}"'
        if h.headers.get("If-None-Match") == etag:
            farm.record(feed.n, 304)
            respond(h, 304, b"", {"ETag": etag})
            return
        farm.record(feed.n, 200)
        respond(h, 200, farm.document(feed, count),
                {"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"})
    return answer


@contextmanager
def serve(farm: FeedFarm) -> Iterator[FeedFarm]:
    """The farm on the tests' feed server (no request log: the farm keeps its own)."""
    with serve_routes(log_requests=False) as server:
        server.routes.update({f"/feed/{f.n}": _route(farm, f) for f in farm.feeds})
        farm.port = server.port
        yield farm


def make_farm(n_feeds: int, interval: float, seed: int) -> FeedFarm:
    rng = random.Random(seed)
    feeds = []
    for n in range(n_feeds):
        period = interval * rng.uniform(1.5, 4.0)
        feeds.append(SoakFeed(n, period, rng.uniform(0, period)))
    return FeedFarm(feeds, time.monotonic(), datetime.now(UTC))


# --- memory --------------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (the daemon's parser workers and their
    forkserver), from /proc's children lists; [] where there are none."""
    out: list[int] = []
    todo = [pid]
    while todo:  # bounded: a process tree is finite and /proc lists each child once
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except (OSError, ValueError):
                continue
            out += kids
            todo += kids
    return out


def _own_memory(pid: int) -> tuple[int, int | None]:
    status = Path(f"/proc/{pid}/status")
    try:
        text = status.read_text()
    except FileNotFoundError:
        if Path("/proc/self/status").exists():
            return 0, 0  # exited meanwhile
        import psutil

        return int(psutil.Process(pid).memory_info().rss), None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM")


def memory(pid: int) -> tuple[int, int | None]:
    """(RSS, peak RSS) in bytes of ``pid`` and every process below it (the
    daemon's parser workers): /proc VmRSS/VmHWM summed over the processes, so
    the peak is an upper bound (each process's own peak, counted as if they
    coincided, and library pages shared after a fork counted in each); else
    psutil (current RSS only; the peak is then the largest sample)."""
    rss, peak = 0, 0
    for p in [pid, *descendants(pid)]:
        own, own_peak = _own_memory(p)
        if own_peak is None:
            return own, None
        rss, peak = rss + own, peak + own_peak
    return rss, peak


def tree_pss(pid: int) -> int | None:
    """The PSS of ``pid`` and every process below it, in bytes: a page shared
    by n processes counts 1/n in each, so the sum is what the tree holds (the
    parser workers share the model and libraries with their forkserver);
    None where /proc has no smaps_rollup."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except FileNotFoundError:
            if not Path("/proc/self/smaps_rollup").exists():
                return None
            continue  # exited meanwhile
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in text.splitlines()
                       if line.startswith("Pss:")), 0)
    return total


@dataclass
class Sample:
    t: float  # seconds since the daemon started
    rss: int
    peak: int
    pss: int = 0  # the tree's PSS sum at the sample (0: not known)
    own_peak: int = 0  # the daemon process's own VmHWM then


def _sample(pid: int, t: float, samples: Sequence[Sample]) -> Sample:
    rss, peak = memory(pid)
    peak = peak if peak is not None else max([rss, *(s.peak for s in samples)])
    return Sample(t, rss, peak, tree_pss(pid) or 0, _own_memory(pid)[1] or 0)


# --- the run -------------------------------------------------------------------------------

@dataclass
class Report:
    feeds: int
    minutes: float
    interval: float
    tick: float
    baseline_minutes: float
    peak_at_baseline_mb: float
    peak_at_end_mb: float
    rss_at_baseline_mb: float
    rss_at_end_mb: float
    peak_growth: float  # (end - baseline) / baseline
    # The largest sampled PSS sum of the tree: what it held, shared pages once
    # (the peaks above count them in each process that maps them).
    pss_peak_mb: float
    daemon_peak_mb: float  # the daemon process's own VmHWM
    items_published: int
    items_missing: int
    items_stored: int
    hits: int
    requests: int
    not_modified: int
    min_gap_ratio: float  # shortest gap between two requests of a feed / its interval
    early_polls: int  # gaps shorter than the interval less the slack
    gaps_under_interval: int  # gaps shorter than the interval at all (to-the-second rounding)
    exit_code: int | None
    stop_seconds: float
    integrity: str
    cycles: int
    errors_logged: int
    samples: list[dict[str, float]] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def write_config(path: Path, farm: FeedFarm, interval: float) -> None:
    data = {
        "settings": {"interval": f"{interval:g}s", "min_interval": f"{min(interval, 60):g}s",
                     "timeout": "10s", "connect_timeout": "5s", "concurrency": 20,
                     "per_host": 10, "allow_private": True,
                     "article_text": "never"},
        "feeds": [{"id": f"soak-{f.n}", "name": f"Soak feed {f.n}", "url": farm.url(f.n)}
                  for f in farm.feeds],
        **shipped_topics(),
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def run(args: argparse.Namespace) -> Report:
    total = args.minutes * 60
    baseline = min(args.baseline * 60, total / 3)
    settle = args.interval * 1.1 + 2 * args.tick + 15  # every feed polled after the last change
    if settle >= total - baseline:
        raise SystemExit(f"--minutes too short for --interval {args.interval:g}: need more than "
                         f"{(settle + baseline) / 60:.1f} minutes")
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="monitor-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "monitor.db"
    for leftover in work.glob("monitor.db*"):
        leftover.unlink()
    farm = make_farm(args.feeds, args.interval, args.seed)
    samples: list[Sample] = []
    with serve(farm):
        config = work / "feeds.yaml"
        write_config(config, farm, args.interval)
        log_path = work / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db),
                 "run", "--tick", f"{args.tick:g}"],
                stdout=subprocess.DEVNULL, stderr=log, cwd=work, env=env)
            started = time.monotonic()
            try:
                samples = _watch(proc, started, total, settle, farm, args.quiet)
                exit_code, stop_seconds = _stop(proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
        report = _report(args, farm, db, log_path, samples, baseline, exit_code, stop_seconds)
    if not args.dir and report.ok:
        shutil.rmtree(work, ignore_errors=True)
    elif not args.quiet:
        print(f"files kept in {work}", file=sys.stderr)
    return report


def _watch(proc: subprocess.Popen[bytes], started: float, total: float, settle: float,
           farm: FeedFarm, quiet: bool) -> list[Sample]:
    samples: list[Sample] = []
    next_sample = started
    while (now := time.monotonic()) - started < total:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited early with code {proc.returncode}")
        if farm.frozen_at is None and now - started >= total - settle:
            farm.frozen_at = farm.elapsed()
        if now >= next_sample:
            sample = _sample(proc.pid, round(now - started, 1), samples)
            samples.append(sample)
            next_sample += SAMPLE_EVERY
            if not quiet:
                print(f"{now - started:7.0f}s  rss {sample.rss / 1e6:6.1f} MB  peak "
                      f"{sample.peak / 1e6:6.1f} MB  pss {sample.pss / 1e6:6.1f} MB",
                      file=sys.stderr)
        time.sleep(min(1.0, max(0.05, next_sample - time.monotonic())))
    samples.append(_sample(proc.pid, round(time.monotonic() - started, 1), samples))
    return samples


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_BOUND + 5), time.monotonic() - t0
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0


def _at(samples: Sequence[Sample], t: float) -> Sample:
    return min(samples, key=lambda s: abs(s.t - t))


def _report(args: argparse.Namespace, farm: FeedFarm, db: Path, log_path: Path,
            samples: list[Sample], baseline: float, exit_code: int | None,
            stop_seconds: float) -> Report:
    base, end = _at(samples, baseline), samples[-1]
    published = {(f"soak-{f.n}", f"soak-{f.n}-{j}") for f in farm.feeds
                 for j in range(f.count(farm.frozen_at or farm.elapsed()))}
    conn = sqlite3.connect(db)
    try:
        # items store the entry's stable key; with a <guid> it is the guid itself
        stored = set(conn.execute("SELECT feed_id, key FROM items").fetchall())
        hits = conn.execute("SELECT count(*) FROM hits").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    missing = published - stored
    gaps = [b[0] - a[0] for reqs in farm.requests.values() for a, b in itertools.pairwise(reqs)]
    all_requests = [r for reqs in farm.requests.values() for r in reqs]
    log = log_path.read_text(encoding="utf-8", errors="replace")
    growth = (end.peak - base.peak) / base.peak if base.peak else 0.0
    report = Report(
        feeds=args.feeds, minutes=args.minutes, interval=args.interval, tick=args.tick,
        baseline_minutes=round(baseline / 60, 2),
        peak_at_baseline_mb=round(base.peak / 1e6, 1), peak_at_end_mb=round(end.peak / 1e6, 1),
        rss_at_baseline_mb=round(base.rss / 1e6, 1), rss_at_end_mb=round(end.rss / 1e6, 1),
        peak_growth=round(growth, 4),
        pss_peak_mb=round(max(s.pss for s in samples) / 1e6, 1),
        daemon_peak_mb=round(max(s.own_peak for s in samples) / 1e6, 1),
        items_published=len(published),
        items_missing=len(missing), items_stored=len(stored), hits=int(hits),
        requests=len(all_requests), not_modified=sum(1 for r in all_requests if r[1] == 304),
        min_gap_ratio=round(min(gaps) / args.interval, 3) if gaps else 0.0,
        early_polls=sum(1 for g in gaps if g < args.interval - args.slack),
        gaps_under_interval=sum(1 for g in gaps if g < args.interval),
        exit_code=exit_code, stop_seconds=round(stop_seconds, 2), integrity=str(integrity),
        cycles=log.count("monitor.daemon: cycle:"), errors_logged=log.count(" ERROR "),
        samples=[{"t": s.t, "rss_mb": round(s.rss / 1e6, 1), "peak_mb": round(s.peak / 1e6, 1),
                  "pss_mb": round(s.pss / 1e6, 1)} for s in samples],
    )
    report.checks = {
        "memory flat (peak within 10 % of baseline)": growth <= 0.10,
        "every change ingested": not missing,
        "no feed polled early": report.early_polls == 0,
        "every feed polled": len(farm.requests) == args.feeds,
        "clean stop (exit 0 within 10 s)": exit_code == 0 and stop_seconds <= STOP_BOUND,
        "database intact": integrity == "ok",
    }
    return report


def render(r: Report) -> str:
    lines = [
        f"soak: {r.feeds} feeds, {r.minutes:g} min, interval {r.interval:g} s, tick {r.tick:g} s",
        f"memory: peak {r.peak_at_baseline_mb} MB at {r.baseline_minutes:g} min -> "
        f"{r.peak_at_end_mb} MB at the end ({r.peak_growth:+.1%}); RSS {r.rss_at_baseline_mb} -> "
        f"{r.rss_at_end_mb} MB; the tree's largest PSS sum {r.pss_peak_mb} MB, the daemon's own "
        f"peak {r.daemon_peak_mb} MB",
        f"items: {r.items_published} published, {r.items_stored} stored, {r.items_missing} "
        f"missing; {r.hits} hits",
        f"requests: {r.requests} ({r.not_modified} answered 304) in {r.cycles} poll cycles; "
        f"shortest gap between two polls of a feed {r.min_gap_ratio:.3f} x interval; "
        f"{r.early_polls} early (by more than the slack), {r.gaps_under_interval} under the "
        f"interval",
        f"stop: exit {r.exit_code} after {r.stop_seconds} s; integrity {r.integrity}; "
        f"{r.errors_logged} errors logged",
    ]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in r.checks.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval, seconds")
    parser.add_argument("--tick", type=float, default=5.0, help="daemon --tick, seconds")
    parser.add_argument("--baseline", type=float, default=5.0,
                        help="minutes at which memory is first measured")
    parser.add_argument("--slack", type=float, default=0.5,
                        help="seconds a poll may seem early: the server times requests on "
                             "arrival, the daemon when it starts them")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="keep the database, config and log here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2) if args.json
          else render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
