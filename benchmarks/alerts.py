"""Alerts (issue 16): how long a story takes from its feed to the webhook, and
what one alert costs a large poll.

* Latency: `monitor run` (a subprocess, its default tick) at a 1-minute
  interval polls a few feeds served on 127.0.0.1 by tests/feedserver.py. After
  every feed's first poll (its backlog, which never alerts), N stories
  (100 by default) appear on them at random offsets over a few minutes; a
  webhook receiver on 127.0.0.1 notes when each arrives. Latency is from the
  moment the server starts serving the item to the receiver's request, so it
  is mostly the interval (where in it the item appeared) plus the tick, the
  poll and the delivery job.
* Cost: `monitor poll --force` of the 1,000 feeds benchmarks/poll.py builds
  (real corpus feeds, 8 topics of feeds.yaml and a wide one), from an empty database, then the
  changed poll (10 % of the feeds with a few new items: the only poll whose
  hits alert, the first being every feed's backlog), without alerts and with
  one alert on every topic, side by side (wall and CPU of the whole process).

Servers and the daemon are started and stopped here; every wait is bounded.

    python -m benchmarks.alerts [--stories 100] [--feeds 1000] [--only latency,cost]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from benchmarks import poll as bp
from benchmarks.common import ROOT, load_corpus, run_measured, serve_feeds, table
from tests.feedserver import FeedServer, post_server

SECRET_ENV = "MONITOR_BENCH_ALERT_SECRET"
LATENCY_FEEDS = 10
TOPIC = {"id": "zhanaozen", "name": "Zhanaozen", "query": "zhanaozen"}
# Beside feeds.yaml's 8 topics (3 hits in the corpus's ~28,000 items), a topic
# most English items match, so the changed poll's new items do enqueue alerts.
WIDE_TOPIC = {"id": "bench-wide", "name": "Bench wide", "query": "the OR and OR of"}


# ---------------------------------------------------------------- receiver


@dataclass
class Receiver:
    """A webhook target on 127.0.0.1: the perf_counter at which each story URL
    first arrived."""

    arrived: dict[str, float] = field(default_factory=dict)
    posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        now = time.perf_counter()
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        stories = json.loads(body or b"{}").get("stories") or []
        with self.lock:
            self.posts += 1
            for s in stories:
                self.arrived.setdefault(str(s.get("url")), now)
        h.send_response(200)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    with post_server(rec.handle) as url:
        rec.url = url
        yield rec


def alert_config(url: str) -> dict[str, Any]:
    """One alert on every topic, with no cap that would fold stories into a summary."""
    return {"id": "bench", "to": url, "secret_env": SECRET_ENV, "allow_private": True,
            "max_per_hour": 100_000}


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[SECRET_ENV] = "bench-secret"
    return env


# ---------------------------------------------------------------- latency


@dataclass(frozen=True)
class Latency:
    stories: int
    received: int
    seconds: list[float]
    span: float
    posts: int
    error: str = ""


def _rss(items: Sequence[tuple[str, str, str]]) -> bytes:
    when = format_datetime(datetime.now(UTC), usegmt=True)
    body = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>{u}</link>"
                   f"<description>{t}</description><pubDate>{when}</pubDate></item>"
                   for g, t, u in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>'
            f"<link>http://example.org/</link>{body}</channel></rss>").encode()


def _polled_all(db: Path, n: int) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            row = conn.execute("SELECT count(*) FROM feeds WHERE last_success_at IS NOT NULL"
                               ).fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0] >= n)


def _wait(cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return bool(cond())


def measure_latency(stories: int, span: float, seed: int = 16) -> Latency:
    """``stories`` items appear at random offsets in [0, span) seconds over
    LATENCY_FEEDS feeds polled by the daemon every minute."""
    rng = random.Random(seed)
    offsets = sorted(rng.uniform(0, span) for _ in range(stories))
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp, \
            serve_feeds(1) as host, receiver() as rec:
        config, db = Path(tmp) / "feeds.yaml", Path(tmp) / "m.db"
        backlog = {f: [(f"old-{f}", "Zhanaozen backlog", f"http://example.org/old-{f}")]
                   for f in range(LATENCY_FEEDS)}
        for f, items in backlog.items():
            host.put(f"/l{f}", _rss(items))
        config.write_text(yaml.safe_dump({
            "settings": {"allow_private": True, "article_text": "never", "interval": "1m",
                         "min_interval": "1m", "timeout": "10s"},
            "feeds": [{"id": f"l{f}", "name": f"Feed {f}", "url": host.url(f"/l{f}")}
                      for f in range(LATENCY_FEEDS)],
            "topics": [TOPIC], "alerts": [alert_config(rec.url)]}, sort_keys=False))
        log_path = Path(tmp) / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config),
                                     "--db", str(db), "run"], stdout=subprocess.DEVNULL,
                                    stderr=log, cwd=tmp, env=child_env())
            try:
                if not _wait(lambda: _polled_all(db, LATENCY_FEEDS), 120):
                    return Latency(stories, 0, [], span, 0, "first polls not done in 120 s")
                appeared = _publish(host, backlog, offsets)
                _wait(lambda: len(rec.arrived) >= stories, 300)
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        with rec.lock:
            got = {u: t - appeared[u] for u, t in rec.arrived.items() if u in appeared}
            posts = rec.posts
    return Latency(stories, len(got), sorted(got.values()), span, posts)


def _publish(host: FeedServer, feeds: dict[int, list[tuple[str, str, str]]],
             offsets: Sequence[float]) -> dict[str, float]:
    """Each story added to its feed at its offset; returns when each appeared."""
    appeared: dict[str, float] = {}
    start = time.perf_counter()
    for k, offset in enumerate(offsets):
        time.sleep(max(0.0, start + offset - time.perf_counter()))
        f = k % len(feeds)
        url = f"http://example.org/story-{k}"
        feeds[f].insert(0, (f"story-{k}", f"Strike number {k} in Zhanaozen", url))
        host.put(f"/l{f}", _rss(feeds[f]))
        appeared[url] = time.perf_counter()
    return appeared


def render_latency(lat: Latency) -> str:
    if not lat.seconds:
        return f"Not measured: {lat.error or 'no alert arrived'}."
    s = lat.seconds
    rows = [["stories published", lat.stories], ["alerts received", lat.received],
            ["webhook requests", lat.posts],
            ["median s", statistics.median(s)],
            ["p90 s", s[min(len(s) - 1, int(0.9 * len(s)))]],
            ["worst s", s[-1]], ["best s", s[0]]]
    return (table(["latency, feed item to webhook", "value"], rows) + "\n\n" +
            f"`monitor run` (default tick 10 s), interval and min_interval 1m, "
            f"{LATENCY_FEEDS} feeds, stories at random offsets over {lat.span:.0f} s "
            f"(seed 16), one alert on the one topic; the alert job runs after each poll "
            f"that enqueued rows and every 30 s.")


# ---------------------------------------------------------------- cost


@dataclass(frozen=True)
class Cost:
    variant: str
    scenario: str
    run: bp.Run
    outbox: int


def measure_cost(n_feeds: int) -> list[Cost]:
    corpus = load_corpus()
    if not corpus:
        return []
    feeds = bp.build_feeds(corpus, n_feeds)
    out: list[Cost] = []
    with serve_feeds(bp.HOSTS) as host, receiver() as rec:
        urls = bp.urls_of(host, feeds)
        for variant in ("no alerts", "one alert, all topics"):
            with tempfile.TemporaryDirectory(prefix="bench-alerts-cost-") as tmp:
                config, db = Path(tmp) / "feeds.yaml", Path(tmp) / "m.db"
                bp.write_monitor_config(config, urls)
                data = yaml.safe_load(config.read_text(encoding="utf-8"))
                data["topics"].append(WIDE_TOPIC)
                if variant != "no alerts":
                    # The corpus's items are years old: a window wide enough for them.
                    data["alerts"] = [{**alert_config(rec.url), "window": "5000w"}]
                config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                  encoding="utf-8")
                for scenario in ("first", "changed"):
                    bp.publish(host, feeds, changed=scenario == "changed")
                    print(f"alerts cost: {variant}, {scenario} poll", flush=True)
                    m = run_measured(bp.monitor_cmd(config, db), env=child_env(),
                                     timeout=bp.CHILD_TIMEOUT)
                    out.append(Cost(variant, scenario, bp.monitor_run("monitor", scenario, m),
                                    _outbox(db)))
    return out


def _outbox(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM alert_outbox").fetchone()[0])
    except sqlite3.Error:
        return -1


COST_NOTES = """\
Cost: `monitor poll --force` processes (wall and CPU of the whole process tree, start-up
included; `poll s` is the cycle itself), each variant from its own empty database over the
same 1,000 served feeds, with feeds.yaml's 8 topics and one wide topic (`the OR and OR of`)
so that many items hit, and the alert's window at 5000w (the corpus's items are years
old, and the default 24 h window would drop every one). The first poll is every feed's backlog: it enqueues nothing by
design, so the alert's cost there is only the check that skips it; the changed poll is
where hits are enqueued (in the poll's own transaction). `monitor poll` does not deliver
(the daemon's alert job does), so no webhook request is in these figures."""


def render_cost(costs: Sequence[Cost]) -> str:
    if not costs:
        return "Skipped: no real feeds in the shared corpus."
    rows = [[c.variant, c.scenario, c.run.feeds, c.run.new_items, c.run.hits, c.outbox,
             c.run.seconds, c.run.wall, c.run.cpu, c.run.errors] for c in costs]
    return table(["config", "poll", "feeds", "new items", "hits", "outbox rows (total)",
                  "poll s", "process wall s", "CPU s", "errors"], rows)


# ---------------------------------------------------------------- main


def default_span(stories: int) -> float:
    """Seconds over which the stories appear: several intervals, not too long a run."""
    return min(240.0, max(120.0, 2.0 * stories))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--span", type=float, help="seconds over which stories appear "
                        "(default: 2 s per story, at least 120, at most 240)")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--only", default="latency,cost")
    args = parser.parse_args(argv)
    parts = args.only.split(",")
    load = [f"start {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}"]
    if "latency" in parts:
        span = args.span or default_span(args.stories)
        print(f"alerts latency: {args.stories} stories over {span:.0f} s", flush=True)
        print(render_latency(measure_latency(args.stories, span)), flush=True)
        load.append(f"after latency {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}")
    if "cost" in parts:
        print(render_cost(measure_cost(args.feeds)), flush=True)
        load.append(f"after cost {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}")
    print("load average (1 / 5 min): " + "; ".join(load), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
