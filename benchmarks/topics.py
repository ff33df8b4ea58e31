"""Topic evaluation: precision and recall of the shipped topics on labelled news.

Runs the topics of ``feeds.yaml`` (through monitor.match.Matcher, exactly as a
poll would) over a labelled set of real news items and scores item-topic pairs
as the set's GUIDE.md says: items marked ``unsure`` are left out of the scores
and listed separately; precision = correct pairs / pairs produced, recall =
correct pairs / labelled pairs, per topic and micro-averaged.

The set is split in two by a fixed seed (SPLIT_SEED): topics are tuned on the
"tune" half only, and the "held-out" half, looked at only for this report, is
the honest figure. Both halves and the whole set are reported.

    python -m benchmarks.topics [--items F --labels F] [--config feeds.yaml] [--seed N]

Default data: tests/data/topic-eval/, else ../shared/data/topic-eval/ beside the repository.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.match import Matcher
from monitor.types import Entry, Topic

ROOT = Path(__file__).resolve().parent.parent
DATA_DIRS = (ROOT / "tests" / "data" / "topic-eval", ROOT.parent / "shared" / "data" / "topic-eval")
DEFAULT_CONFIG = ROOT / "feeds.yaml"
# Fixed so that the held-out half stays the same items from run to run; change
# it only to start a fresh held-out half (and then tune on the new tune half).
SPLIT_SEED = 14
HELD_OUT = "held-out"
TUNE = "tune"


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    summary: str
    topics: frozenset[str]
    unsure: bool


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Report:
    per_topic: dict[str, Score]
    micro: Score
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # topic, id, title
    false_hits: list[tuple[str, str, str]] = field(default_factory=list)
    unsure: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    match_seconds: float = 0.0  # Matcher.match over the whole set, one batch


def default_paths() -> tuple[Path, Path]:
    for d in DATA_DIRS:
        if (d / "items.jsonl").exists() and (d / "labels.jsonl").exists():
            return d / "items.jsonl", d / "labels.jsonl"
    raise FileNotFoundError("no topic-eval data in " + ", ".join(map(str, DATA_DIRS)))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_items(items_path: Path, labels_path: Path) -> list[Item]:
    labels = {row["id"]: row for row in _jsonl(labels_path)}
    out = []
    for row in _jsonl(items_path):
        label = labels.get(row["id"])
        if label is None:
            continue
        out.append(Item(id=row["id"], title=row.get("title") or "",
                        summary=row.get("summary") or "",
                        topics=frozenset(label.get("topics") or ()),
                        unsure=bool(label.get("unsure"))))
    return out


def load_topics(config_path: Path) -> tuple[Topic, ...]:
    """The topics of a feeds.yaml, loaded and validated as `monitor` does."""
    return tuple(load_config(config_path).topics)


def _entries(items: Iterable[Item]) -> list[Entry]:
    epoch = datetime.fromtimestamp(0, UTC)
    return [Entry(key=i.id, title=i.title, summary=i.summary, url=None, published_at=epoch)
            for i in items]


def evaluate(topics: Sequence[Topic], items: Sequence[Item]) -> Report:
    hits: dict[str, set[str]] = {i.id: set() for i in items}
    matcher, entries = Matcher(topics), _entries(items)
    started = time.perf_counter()
    found = matcher.match(entries)
    elapsed = time.perf_counter() - started
    for hit in found:
        hits[hit.entry_key].add(hit.topic_id)
    topic_ids = [t.id for t in topics]
    report = Report(per_topic={t: Score() for t in topic_ids}, micro=Score(),
                    match_seconds=elapsed)
    for item in items:
        got = hits[item.id]
        if item.unsure:
            report.unsure.append((item.id, item.title, tuple(sorted(item.topics)),
                                  tuple(sorted(got))))
            continue
        for t in topic_ids:
            expected, produced = t in item.topics, t in got
            score = report.per_topic[t]
            if expected and produced:
                score.tp += 1
            elif produced:
                score.fp += 1
                report.false_hits.append((t, item.id, item.title))
            elif expected:
                score.fn += 1
                report.misses.append((t, item.id, item.title))
    for s in report.per_topic.values():
        report.micro.tp += s.tp
        report.micro.fp += s.fp
        report.micro.fn += s.fn
    return report


def split(items: Sequence[Item], seed: int = SPLIT_SEED) -> dict[str, str]:
    """Each item's half (HELD_OUT or TUNE), by id: the ids sorted, shuffled
    with ``seed``, the first half held out. Unsure items are split too, so
    either half is a fair sample of the set."""
    ids = sorted(i.id for i in items)
    random.Random(seed).shuffle(ids)
    held = len(ids) // 2
    return {item_id: HELD_OUT if n < held else TUNE for n, item_id in enumerate(ids)}


def _table(report: Report) -> list[str]:
    lines = [f"{'topic':<24} {'P':>6} {'R':>6} {'F1':>6} {'TP':>4} {'FP':>4} {'FN':>4}"]
    rows = [*report.per_topic.items(), ("micro", report.micro)]
    for name, s in rows:
        lines.append(f"{name:<24} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f}"
                     f" {s.tp:4d} {s.fp:4d} {s.fn:4d}")
    return lines


def render_split(topics: Sequence[Topic], items: Sequence[Item], seed: int = SPLIT_SEED) -> str:
    """The held-out half's table first (the figure to quote), then the tune
    half's, then the whole set's in full (misses, false hits, unsure items),
    each row of those marked with its half."""
    half = split(items, seed)
    lines: list[str] = []
    for name in (HELD_OUT, TUNE):
        part = [i for i in items if half[i.id] == name]
        report = evaluate(topics, part)
        lines += _table(report)
        lines.append(f"({name} half: {len(part)} items, {len(report.unsure)} unsure, "
                     f"split seed {seed})")
        lines.append("")
    lines.append("whole set:")
    lines.append(render(evaluate(topics, items), half))
    return "\n".join(lines)


def render(report: Report, half: dict[str, str] | None = None) -> str:
    def tag(item_id: str) -> str:
        return f"[{half.get(item_id, '?')}] " if half else ""

    lines = _table(report)
    for heading, rows3 in (("misses", report.misses), ("false hits", report.false_hits)):
        lines.append(f"\n{heading} ({len(rows3)}):")
        lines += [f"  {t:<22} {i:<18} {tag(i)}{title[:90]}" for t, i, title in sorted(rows3)]
    lines.append(f"\nmatching took {report.match_seconds * 1000:.1f} ms"
                 f" ({len(report.per_topic)} topics, one batch of every item)")
    lines.append(f"\nunsure items, not scored ({len(report.unsure)}):")
    for item_id, title, labelled, got in report.unsure:
        lines.append(f"  {item_id:<18} labels={','.join(labelled) or '-'}"
                     f"  matched={','.join(got) or '-'}  {tag(item_id)}{title[:70]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.topics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=Path)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--seed", type=int, default=SPLIT_SEED,
                        help=f"split seed (default {SPLIT_SEED}: the held-out half of record)")
    args = parser.parse_args(argv)
    items_path, labels_path = args.items, args.labels
    if items_path is None or labels_path is None:
        d_items, d_labels = default_paths()
        items_path, labels_path = items_path or d_items, labels_path or d_labels
    print(render_split(load_topics(args.config), load_items(items_path, labels_path), args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
