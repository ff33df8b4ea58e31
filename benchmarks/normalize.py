"""Throughput of monitor.normalize.normalize_text on real text (issue 14).

    python -m benchmarks.normalize [--feeds 400]

Text: the topic-eval items (tests/data) and the first ``--feeds`` documents of
../shared/data/real-feeds, tags stripped, cut into 600-character pieces (about
one item's title and summary). Reports tokens per second on a first pass with
an empty cache (every distinct word stemmed once) and on a second pass (cached),
and how many distinct words the cache held. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import time
from pathlib import Path

from monitor.normalize import cached_forms, clear_cache, normalize_text, tokens

ROOT = Path(__file__).resolve().parent.parent
FEEDS = ROOT.parent / "shared" / "data" / "real-feeds"
ITEMS = ROOT / "tests" / "data" / "topic-eval" / "items.jsonl"
_TAG_RE = re.compile(r"<[^>]+>")


def texts(feeds: int) -> list[str]:
    out = []
    for line in ITEMS.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out.append(d["title"] + " " + d.get("summary", ""))
    files = sorted(p for p in FEEDS.glob("*/*") if p.is_file())[:feeds] if FEEDS.is_dir() else []
    for path in files:
        raw = html.unescape(_TAG_RE.sub(" ", path.read_text(encoding="utf-8", errors="replace")))
        out.extend(raw[i:i + 600] for i in range(0, min(len(raw), 200_000), 600))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=400)
    args = parser.parse_args()
    corpus = texts(args.feeds)
    n = sum(len(tokens(t)) for t in corpus)
    clear_cache()
    t0 = time.perf_counter()
    for t in corpus:
        normalize_text(t)
    t1 = time.perf_counter()
    for t in corpus:
        normalize_text(t)
    t2 = time.perf_counter()
    distinct = cached_forms()
    print(f"{len(corpus):,} texts, {n:,} tokens, {distinct:,} distinct words")
    print(f"first pass (empty cache): {n / (t1 - t0):,.0f} tokens/s, "
          f"{(t1 - t0) / len(corpus) * 1e6:,.0f} µs per text")
    print(f"second pass (cached):     {n / (t2 - t1):,.0f} tokens/s, "
          f"{(t2 - t1) / len(corpus) * 1e6:,.0f} µs per text")


if __name__ == "__main__":
    main()
