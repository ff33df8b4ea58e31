"""`monitor poll` start-up with nothing due: config and database warm.

    python -m benchmarks.startup [--feeds 300] [--runs 10] [--archive 50000]

Writes a feeds.yaml with the shipped terms and topics (their examples are
checked on every poll) and ``--feeds`` feeds on a closed local port, polls once
so each feed fails and is not due again for a while, then times ``--runs``
whole processes of ``python -m monitor poll`` (each finds nothing due) and
prints every run, the median and the minimum. No hyperfine on this machine: a
plain loop of subprocesses. Shared machines are noisy: compare figures of runs
made back to back.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks.common import ROOT

CLOSED = "http://127.0.0.1:9"  # discard port: refused at once


def write_config(path: Path, feeds: int) -> None:
    shipped = yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))
    data = {
        "settings": {"allow_private": True, "timeout": "2s", "connect_timeout": "1s"},
        "feeds": [{"id": f"f{i}", "name": f"F{i}", "url": f"{CLOSED}/feed{i}"}
                  for i in range(feeds)],
        "terms": shipped.get("terms", {}),
        "entities": shipped.get("entities", {}),
        "topics": shipped.get("topics", []),
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def poll(config: Path, db: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, *extra, "-m", "monitor", "--config", str(config), "--db", str(db),
           "poll"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    return time.perf_counter() - t0, done


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup")
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--archive", type=int, default=0,
                    help="first fill the database with this many real-size items")
    ap.add_argument("--importtime", action="store_true",
                    help="print the 15 slowest imports of one run")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-startup-") as tmp:
        config, db = Path(tmp) / "feeds.yaml", Path(tmp) / "m.db"
        write_config(config, args.feeds)
        if args.archive:
            from benchmarks.storage import build, real_entries

            build(db, real_entries(), args.archive, args.feeds)
            print(f"archive: {args.archive} items, {db.stat().st_size / 1e6:.0f} MB")
        first, done = poll(config, db)
        print(f"first poll ({args.feeds} feeds refused): {first:.2f}s, exit {done.returncode}")
        times, cpus = [], []
        for _ in range(args.runs):
            cpu = cpu_of_children()
            seconds, done = poll(config, db)
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)
                return 1
            times.append(seconds)
            cpus.append(cpu_of_children() - cpu)
        print("runs: " + " ".join(f"{t:.3f}" for t in times))
        # CPU time moves less than wall time with the other load on the machine.
        print(f"nothing due: median {statistics.median(times):.3f}s wall, min {min(times):.3f}s; "
              f"CPU median {statistics.median(cpus):.3f}s, min {min(cpus):.3f}s "
              f"over {args.runs} runs")
        if args.importtime:
            _, done = poll(config, db, "-X", "importtime")
            rows = [line.split("|") for line in done.stderr.splitlines()
                    if line.startswith("import time:") and "cumulative" not in line]
            top = sorted(rows, key=lambda r: -int(r[1]))[:15]
            for r in top:
                print(f"{int(r[1]) / 1000:8.1f} ms cumulative  {r[2].rstrip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
