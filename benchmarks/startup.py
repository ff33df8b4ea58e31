"""Start-up of three commands, whole processes: `monitor --help`, `monitor poll`
with nothing due (config and database warm) and `monitor feeds`.

    python -m benchmarks.startup [--feeds 300] [--runs 10] [--root DIR] [--importtime]

Writes a feeds.yaml with the shipped terms, entities and topics (their examples
are checked at a poll's start) and ``--feeds`` feeds on a closed local port,
polls once so each feed fails and is not due again for a while, then times
``--runs`` processes of each command and prints, side by side with the issue's
targets, the median and minimum wall time and the median CPU time:

- "compiled": the modules' .pyc files are there, as a user has them: `pip
  install` compiles an installed package's modules, and a checkout installed
  with `pip install -e .` (`make run`) writes them on its first start;
- "recompiled": no .pyc of the monitor's own modules and PYTHONDONTWRITEBYTECODE=1
  (as in some sandboxes and containers), so every start compiles them again.

``--root`` times another checkout's ``monitor`` package (e.g. an export of
main, for before/after figures) with this venv's libraries. No hyperfine on
this machine: a plain loop of subprocesses. Shared machines are noisy: compare
figures of runs made back to back; CPU time moves less than wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.common import ROOT, shipped_topics

CLOSED = "http://127.0.0.1:9"  # discard port: refused at once

# Issue 18's targets, wall seconds (None: no target, shown for comparison).
TARGETS: dict[str, float | None] = {"--help": 0.15, "poll": 0.30, "feeds": None}
MODES = ("compiled", "recompiled")


@dataclass(frozen=True)
class Timing:
    wall: list[float]
    cpu: list[float]

    def cell(self) -> str:
        return (f"{statistics.median(self.wall):.3f} (min {min(self.wall):.3f}) "
                f"cpu {statistics.median(self.cpu):.3f}")


def write_config(path: Path, feeds: int) -> None:
    data = {
        "settings": {"allow_private": True, "timeout": "2s", "connect_timeout": "1s"},
        "feeds": [{"id": f"f{i}", "name": f"F{i}", "url": f"{CLOSED}/feed{i}"}
                  for i in range(feeds)],
        **shipped_topics(),
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(name: str, config: Path, db: Path) -> list[str]:
    if name == "--help":
        return ["--help"]
    return ["--config", str(config), "--db", str(db), name]


def run(root: Path, args: Sequence[str], *, mode: str, extra: Sequence[str] = (),
        ) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if mode == "recompiled":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, *extra, "-m", "monitor", *args]
    t0 = time.perf_counter()
    # Run from root: `python -m` puts the working directory before PYTHONPATH.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd=root)
    return time.perf_counter() - t0, done


def drop_bytecode(root: Path) -> None:
    for cache in (root / "monitor").rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def measure(root: Path, args: Sequence[str], *, mode: str, runs: int) -> Timing:
    if mode == "recompiled":
        drop_bytecode(root)
    else:
        run(root, args, mode=mode)  # writes the .pyc files, as a user's first start does
    wall, cpu = [], []
    for _ in range(runs):
        before = cpu_of_children()
        seconds, done = run(root, args, mode=mode)
        if done.returncode != 0:
            raise SystemExit(f"monitor {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}{done.stderr}")
        wall.append(seconds)
        cpu.append(cpu_of_children() - before)
    return Timing(wall, cpu)


def print_table(results: dict[tuple[str, str], Timing]) -> None:
    head = f"{'command':<26}{'target':>8}  " + "  ".join(f"{m:<34}" for m in MODES)
    print(head)
    print("-" * len(head))
    for name, target in TARGETS.items():
        label = "monitor --help" if name == "--help" else f"monitor {name}"
        if name == "poll":
            label += " (nothing due)"
        shown = f"{target:.2f}s" if target else "-"
        cells = "  ".join(f"{results[name, m].cell():<34}" for m in MODES)
        print(f"{label:<26}{shown:>8}  {cells}")
    print("(wall seconds: median (min) over the runs, and the median CPU seconds)")


def print_importtime(root: Path, args: Sequence[str]) -> None:
    _, done = run(root, args, mode="compiled", extra=("-X", "importtime"))
    rows = [line.split("|") for line in done.stderr.splitlines()
            if line.startswith("import time:") and "cumulative" not in line]
    for r in sorted(rows, key=lambda r: -int(r[1]))[:15]:
        print(f"{int(r[1]) / 1000:8.1f} ms cumulative  {r[2].rstrip()}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup")
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="the checkout whose monitor package is timed (default: this one)")
    ap.add_argument("--archive", type=int, default=0,
                    help="first fill the database with this many real-size items")
    ap.add_argument("--importtime", action="store_true",
                    help="print the 15 slowest imports of one nothing-due poll")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="monitor-startup-") as tmp:
        config, db = Path(tmp) / "feeds.yaml", Path(tmp) / "m.db"
        write_config(config, args.feeds)
        if args.archive:
            from benchmarks.storage import build, real_entries

            build(db, real_entries(), args.archive, args.feeds)
            print(f"archive: {args.archive} items, {db.stat().st_size / 1e6:.0f} MB")
        first, done = run(root, command("poll", config, db), mode="compiled")
        print(f"monitor from {root}; first poll ({args.feeds} feeds refused): {first:.2f}s, "
              f"exit {done.returncode}")
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        results = {(name, mode): measure(root, command(name, config, db), mode=mode,
                                         runs=args.runs)
                   for mode in MODES for name in TARGETS}
        print(f"{args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
        print_table(results)
        if args.importtime:
            print_importtime(root, command("poll", config, db))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
