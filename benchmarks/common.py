"""Shared parts of the benchmarks: the real-feed corpus, the local feed server,
measured subprocesses, machine facts and plain-text tables.

Everything here is for ``benchmarks/`` only: nothing in ``monitor`` imports it.
The feed server is the tests' one (tests/feedserver.py, imported from the
checkout: the benchmarks run from it); it listens on 127.0.0.x loopback
addresses only and is started and stopped by the benchmark that uses it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from tests.feedserver import FeedServer, http_date, serve

ROOT = Path(__file__).resolve().parent.parent
SHARED_FEEDS = Path(os.environ.get("MONITOR_BENCH_FEEDS")
                    or ROOT.parent / "shared" / "data" / "real-feeds")
TEST_FEEDS = ROOT / "tests" / "data" / "feeds"
PACKAGES = ("feedparser", "lxml", "httpx", "sqlite-utils", "reader", "requests", "psutil",
            "monitor")


def shipped_topics() -> dict[str, object]:
    """feeds.yaml's terms, entities and topics: whatever the shipped topics
    refer to comes along (digests stay out: their outputs are files of the
    shipped setup)."""
    import yaml

    shipped = yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))
    return {k: shipped[k] for k in ("terms", "entities", "topics") if k in shipped}


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CorpusFeed:
    name: str  # path relative to the corpus folder
    body: bytes
    items: int  # as feedparser counted them in INDEX.tsv (0 when unknown)


def load_corpus(folder: Path = SHARED_FEEDS) -> list[CorpusFeed]:
    """The XML feeds of the shared corpus that feedparser finds items in,
    sorted by name (JSON Feeds are left out: feedparser, hence monitor and
    reader's default parser path, do not read them)."""
    index = folder / "INDEX.tsv"
    if not index.exists():
        return []
    out = []
    with index.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            items = int(row.get("items") or 0)
            path = folder / row["file"]
            if items <= 0 or not row.get("feedparser_version") or not path.exists():
                continue
            out.append(CorpusFeed(row["file"], path.read_bytes(), items))
    return sorted(out, key=lambda c: c.name)


# Identifiers of items (and of the feed itself, harmlessly): RSS guid and link,
# Atom id and link href, RSS 1.0 rdf:about. Group 2 is the identifier text.
_ID_PATTERNS = tuple(re.compile(p, re.S) for p in (
    rb"(<guid\b[^>]*>\s*)(.*?)(\s*</guid>)",
    rb"(<id>\s*)(.*?)(\s*</id>)",
    rb"(<link>\s*)(.*?)(\s*</link>)",
    rb"(<link\b[^>]*?\bhref=\")([^\"]*)(\")",
    rb"(\brdf:about=\")([^\"]*)(\")",
))


_WIDE_DECL = re.compile(rb"<\?xml[^>]*encoding=[\"']utf-(16|32)", re.I)


def retag(body: bytes, tag: str, *, count: int = 0) -> tuple[bytes, int]:
    """``body`` with ``/tag`` appended to item identifiers (the first ``count``
    of each kind, all if 0), so copies of one feed hold distinct items.
    Returns the new body and how many identifiers changed; a body in (or
    declared in) an encoding that is not ASCII-compatible comes back unchanged."""
    if _WIDE_DECL.match(body):
        # A UTF-8 body declared as UTF-16 (one corpus file) parses only while
        # its length is odd (an even one "decodes" as UTF-16 garbage): leave it.
        return body, 0
    suffix = b"/" + tag.encode("ascii")
    total = 0
    for pattern in _ID_PATTERNS:
        body, n = pattern.subn(lambda m: m.group(1) + m.group(2) + suffix + m.group(3),
                               body, count=count)
        total += n
    return body, total


# ---------------------------------------------------------------- feed server


def put_feed(host: FeedServer, path: str, body: bytes) -> None:
    """Serve ``body`` as XML with validators derived from the body alone: putting
    the same bytes back restores the same ETag, so every tool starts from the same
    state. No charset: the XML prolog (or BOM) decides, as RFC 7303 says."""
    digest = hashlib.sha256(body).hexdigest()[:20]
    stamp = 1_700_000_000 + int(digest[:6], 16)
    host.put(path, body, "application/xml", etag=f'"{digest}"', last_modified=http_date(stamp))


@contextmanager
def serve_feeds(n_addresses: int = 10) -> Iterator[FeedServer]:
    """The tests' feed server (tests/feedserver.py) on 127.0.0.1 .. 127.0.0.n, one
    threaded server per address standing in for a site, so a per-host limit applies
    as it would on real feeds; no request log. Stopped on exit."""
    addresses = tuple(f"127.0.0.{i}" for i in range(1, max(1, n_addresses) + 1))
    with serve(addresses, log_requests=False) as host:
        yield host


# ---------------------------------------------------------------- measured runs


@dataclass(frozen=True)
class Measured:
    """One child process and everything it started (monitor's parser
    workers): wall seconds, CPU seconds (user + system) of the whole tree, and
    its peak memory: the child's own exact peak RSS, or the largest sum of the
    tree's PSS seen in samples 20 ms apart when that is more (only a tree of
    several processes gets there)."""

    wall: float
    cpu: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


# A small launcher between us and the measured command: a forked child starts
# with its parent's peak RSS (Linux carries the old high-water mark across
# fork and exec), so the command must be forked from a small process, not
# from this one, which holds every feed body in memory. The launcher is a
# child subreaper, so processes the command starts are reaped here however
# they end, and their CPU time is counted; it samples the memory of the
# whole process tree while it runs.
_LAUNCHER = """
import ctypes, json, os, sys, time
out = sys.argv[1]
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])

def tree(root):
    found, todo = [], [root]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            todo += kids
    return found

def pss_kb(p):
    # PSS: a page shared by n processes counts 1/n in each, so the sum over
    # the tree is the memory it really holds (RSS would count the libraries
    # the parser workers share with their forkserver once per process).
    try:
        with open(f"/proc/{p}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

me = os.getpid()
cpu, own_peak, tree_peak, status = 0.0, 0, 0, None
while True:
    tree_peak = max(tree_peak, sum(pss_kb(p) for p in tree(me)))
    try:
        got, st, ru = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if got == 0:
        time.sleep(0.02)
        continue
    cpu += ru.ru_utime + ru.ru_stime
    if got == pid:
        status, own_peak = st, ru.ru_maxrss
with open(out, "w") as f:
    json.dump({"cpu": cpu, "maxrss_kb": max(own_peak, tree_peak)}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: Sequence[str], *, timeout: float = 3600.0,
                 env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` from the repository root and measure it (through the
    launcher above); output goes through temporary files so a chatty child
    never blocks on a full pipe. On timeout its whole process group is killed."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        usage = Path(tmp) / "rusage.json"
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(usage), *cmd],
                                    stdout=out, stderr=err, env=env, cwd=ROOT,
                                    start_new_session=True)
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                returncode = proc.wait()
            wall = time.perf_counter() - started
        cpu, rss = float("nan"), float("nan")
        if usage.exists():
            data = json.loads(usage.read_text())
            cpu, rss = float(data["cpu"]), data["maxrss_kb"] / 1024  # Linux: KiB
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_text("utf-8", "replace")
    return Measured(wall, cpu, rss, returncode, stdout, stderr)


# ---------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus (nproc)": str(os.cpu_count() or "?"),
        "cpu model": _cpu_model(),
        "ram": _ram(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    info["monitor code"] = _code_state()
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _code_state() -> str:
    """The commit measured, and which files of monitor/ differed from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "monitor"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    changed = sorted(line[3:].strip() for line in dirty.splitlines() if line.strip())
    return f"git {head}" + (f" + uncommitted: {', '.join(changed)}" if changed else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


# ---------------------------------------------------------------- tables


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (reads fine in a terminal too)."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *[line(r) for r in cells[1:]]])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
