"""Topic evaluation: precision and recall of the shipped topics on labelled news.

Runs the topics of ``feeds.yaml`` (through monitor.match.Matcher, exactly as a
poll would) over a labelled set of real news items and scores item-topic pairs
as the set's GUIDE.md says: items marked ``unsure`` are left out of the scores
and listed separately; precision = correct pairs / pairs produced, recall =
correct pairs / labelled pairs, per topic and micro-averaged.

The set is split in two by a fixed seed (SPLIT_SEED): topics are tuned on the
"tune" half only, and the "held-out" half, looked at only for this report, is
the honest figure. Both halves and the whole set are reported; the items
behind the held-out figures (its misses, false hits and unsure items) are
listed only with ``--show-held-out``, so that tuning never reads them.

Two matchers are scored side by side in one run (``--matcher``):

- ``exact``: the live matcher without normal forms (``Matcher(normalise=False)``,
  the matching before issue 14), over title, summary and article;
- ``normalised``: the live matcher as a poll runs it, with the matching of
  DESIGN.md "Matching every form of a word" (issue 14): every unquoted word of
  a topic also matches its normal form in a ``norm`` column filled by
  monitor.normalize.norm_document. ``reference_hits`` is that semantics by
  its definition (a scratch FTS5 table of title, summary, article, norm and
  ``normalised_query(topic.fts_query)``), on which the topics were tuned; a
  test holds the live matcher equal to it on the labelled set.

``--examples`` also runs every topic's examples through each matcher, as
``monitor topics check`` does; ``--unrelated`` runs the topics over the items
of the shared real-feeds corpus (``../shared/data/real-feeds``), which are not
about these topics, and lists every hit.

    python -m benchmarks.topics [--items F --labels F] [--config feeds.yaml] [--seed N]
        [--matcher exact,normalised] [--tune | --show-held-out] [--examples] [--unrelated]

Default data: tests/data/topic-eval/, else ../shared/data/topic-eval/ beside the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.language import primary
from monitor.match import Matcher, entry_from_text
from monitor.normalize import norm_document
from monitor.normquery import NORM_COLUMN, normalised_query
from monitor.query import TOKENIZER, memory_db, scrub
from monitor.types import Entry, Topic

ROOT = Path(__file__).resolve().parent.parent
DATA_DIRS = (ROOT / "tests" / "data" / "topic-eval", ROOT.parent / "shared" / "data" / "topic-eval")
DEFAULT_CONFIG = ROOT / "feeds.yaml"
# Fixed so that the held-out half stays the same items from run to run; change
# it only to start a fresh held-out half (and then tune on the new tune half).
SPLIT_SEED = 14
HELD_OUT = "held-out"
TUNE = "tune"

log = logging.getLogger("benchmarks.topics")


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


# ---------------------------------------------------------------- the matchers
#
# A matcher here is a function from topics and entries to the (topic id,
# entry key) pairs that hit. These two functions are the whole boundary
# between the benchmark and the matching it scores.

Pairs = set[tuple[str, str]]
HitFunction = Callable[[Sequence[Topic], Sequence[Entry]], Pairs]


def exact_hits(topics: Sequence[Topic], entries: Sequence[Entry]) -> Pairs:
    """The live matcher without normal forms: the matching before issue 14."""
    return {(h.topic_id, h.entry_key) for h in Matcher(topics, normalise=False).match(entries)}


def normalised_hits(topics: Sequence[Topic], entries: Sequence[Entry]) -> Pairs:
    """The live matcher as a poll runs it (normal forms on)."""
    return {(h.topic_id, h.entry_key) for h in Matcher(topics).match(entries)}


# The columns of the live matcher's batch table once it normalises
# (CONTRACTS.md, "The norm column"): title, summary, article, norm.
_NORM_SCHEMA = (f"CREATE VIRTUAL TABLE p USING fts5(title, summary, article, {NORM_COLUMN}, "
                f"tokenize='{TOKENIZER}')")


def reference_hits(topics: Sequence[Topic], entries: Sequence[Entry]) -> Pairs:
    """The normalised matching (issue 14) by its definition: Matcher(Q) hits
    I <=> I is returned by ``MATCH normalised_query(expand(Q))`` on a table of
    (title, summary, article, norm), norm = norm_document(title, summary,
    article). The tuning was done on this; a test holds the live matcher
    equal to it on the whole labelled set."""
    db = memory_db()
    try:
        db.execute(_NORM_SCHEMA)
        keys: dict[int, Entry] = {}
        db.execute("BEGIN")
        for rowid, e in enumerate(entries, start=1):
            db.execute("INSERT INTO p(rowid, title, summary, article, norm) VALUES (?, ?, ?, ?, ?)",
                       (rowid, scrub(e.title), scrub(e.summary), scrub(e.article) or None,
                        norm_document(e.title, e.summary, e.article or "")))
            keys[rowid] = e
        db.execute("COMMIT")
        out: Pairs = set()
        for topic in topics:
            langs = frozenset(filter(None, map(primary, topic.languages)))
            try:
                rows = db.execute("SELECT rowid FROM p WHERE p MATCH ?",
                                  (normalised_query(topic.fts_query),)).fetchall()
            except sqlite3.Error as exc:  # as the Matcher: a bad topic is skipped, logged
                log.warning("topic %s skipped: invalid query: %s", topic.id, exc)
                continue
            for (rowid,) in rows:
                entry = keys[int(rowid)]
                if not langs or primary(entry.language) in langs:
                    out.add((topic.id, entry.key))
        return out
    finally:
        db.close()


MATCHERS: dict[str, HitFunction] = {"exact": exact_hits, "normalised": normalised_hits}


def example_failures(topics: Sequence[Topic], hits: HitFunction = exact_hits
                     ) -> list[tuple[str, bool, str]]:
    """Every topic's examples that misbehave under ``hits``, as (topic id,
    expected, text); each example is indexed as ``monitor topics test``
    indexes a text (entry_from_text: first line as title, all as summary)."""
    out = []
    for topic in topics:
        for expected, texts in ((True, topic.examples.match), (False, topic.examples.no_match)):
            for text in texts:
                got = bool(hits([topic], [entry_from_text(text)]))
                if got != expected:
                    out.append((topic.id, expected, text))
    return out


# ---------------------------------------------------------------- scoring


def evaluate(topics: Sequence[Topic], items: Sequence[Item],
             hits_of: HitFunction = exact_hits) -> Report:
    hits: dict[str, set[str]] = {i.id: set() for i in items}
    entries = _entries(items)
    started = time.perf_counter()
    found = hits_of(topics, entries)
    elapsed = time.perf_counter() - started
    for topic_id, key in found:
        hits[key].add(topic_id)
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


_COLUMNS = f"{'P':>6} {'R':>6} {'F1':>6} {'TP':>4} {'FP':>4} {'FN':>4}"


def _cells(s: Score) -> str:
    return f"{s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {s.tp:4d} {s.fp:4d} {s.fn:4d}"


def _table(reports: Sequence[Report]) -> list[str]:
    """One row per topic, one block of columns per matcher, left to right."""
    lines = [f"{'topic':<24} " + "  | ".join(_COLUMNS for _ in reports)]
    names = [*reports[0].per_topic, "micro"]
    for name in names:
        scores = [r.micro if name == "micro" else r.per_topic[name] for r in reports]
        lines.append(f"{name:<24} " + "  | ".join(_cells(s) for s in scores))
    return lines


def _legend(matchers: Sequence[str]) -> str:
    return "(columns, left to right: " + ", ".join(matchers) + ")"


def render_tune(topics: Sequence[Topic], items: Sequence[Item], seed: int = SPLIT_SEED,
                matchers: Sequence[str] = tuple(MATCHERS)) -> str:
    """The tune half alone, table and details: what tuning may look at."""
    half = split(items, seed)
    part = [i for i in items if half[i.id] == TUNE]
    reports = [evaluate(topics, part, MATCHERS[m]) for m in matchers]
    lines = [*_table(reports), f"(tune half: {len(part)} items, {len(reports[0].unsure)} unsure, "
             f"split seed {seed}) {_legend(matchers)}"]
    for m, report in zip(matchers, reports, strict=True):
        lines.append(f"\n{m}:")
        lines.append(render(report, half, table=False))
    return "\n".join(lines)


def render_split(topics: Sequence[Topic], items: Sequence[Item], seed: int = SPLIT_SEED,
                 matchers: Sequence[str] = tuple(MATCHERS), *,
                 show_held_out: bool = False) -> str:
    """The held-out half's table first (the figure to quote), then the tune
    half's, then the whole set's with its misses, false hits and unsure
    items, each marked with its half (those of the held-out half only when
    ``show_held_out``). Each table has a block of columns per matcher."""
    half = split(items, seed)
    lines: list[str] = []
    for name in (HELD_OUT, TUNE):
        part = [i for i in items if half[i.id] == name]
        reports = [evaluate(topics, part, MATCHERS[m]) for m in matchers]
        lines += _table(reports)
        lines.append(f"({name} half: {len(part)} items, {len(reports[0].unsure)} unsure, "
                     f"split seed {seed}) {_legend(matchers)}")
        lines.append("")
    whole = [evaluate(topics, items, MATCHERS[m]) for m in matchers]
    lines.append("whole set:")
    lines += _table(whole)
    lines.append(_legend(matchers))
    for m, report in zip(matchers, whole, strict=True):
        lines.append(f"\n{m}:")
        lines.append(render(report, half, show_held_out=show_held_out, table=False))
    return "\n".join(lines)


def render(report: Report, half: dict[str, str] | None = None, *,
           show_held_out: bool = True, table: bool = True) -> str:
    def tag(item_id: str) -> str:
        return f"[{half.get(item_id, '?')}] " if half else ""

    def shown(item_id: str) -> bool:
        return show_held_out or half is None or half.get(item_id) != HELD_OUT

    lines = _table([report]) if table else []
    for heading, rows3 in (("misses", report.misses), ("false hits", report.false_hits)):
        rows = [r for r in sorted(rows3) if shown(r[1])]
        lines.append(f"\n{heading} ({len(rows3)}):{_hidden(len(rows3) - len(rows))}")
        lines += [f"  {t:<22} {i:<18} {tag(i)}{title[:90]}" for t, i, title in rows]
    lines.append(f"\nmatching took {report.match_seconds * 1000:.1f} ms"
                 f" ({len(report.per_topic)} topics, one batch of every item)")
    unsure = [u for u in report.unsure if shown(u[0])]
    lines.append(f"\nunsure items, not scored ({len(report.unsure)}):"
                 f"{_hidden(len(report.unsure) - len(unsure))}")
    for item_id, title, labelled, got in unsure:
        lines.append(f"  {item_id:<18} labels={','.join(labelled) or '-'}"
                     f"  matched={','.join(got) or '-'}  {tag(item_id)}{title[:70]}")
    return "\n".join(lines)


def _hidden(n: int) -> str:
    return f" {n} held out, not shown (--show-held-out lists them)" if n else ""


# ---------------------------------------------------------------- examples, unrelated items


def render_examples(topics: Sequence[Topic], matchers: Sequence[str]) -> str:
    lines = []
    for m in matchers:
        failures = example_failures(topics, MATCHERS[m])
        total = sum(len(t.examples.match) + len(t.examples.no_match) for t in topics)
        lines.append(f"examples, {m}: {total - len(failures)} of {total} behave")
        lines += [f"  {t:<22} {'does not match' if expected else 'matches'}: {text}"
                  for t, expected, text in failures]
    return "\n".join(lines)


def unrelated_entries() -> tuple[list[Entry], str]:
    """The items of the shared real-feeds corpus, parsed as a poll parses
    them (benchmarks.matching's batches), and where they came from."""
    from benchmarks.matching import load_batches

    batches, source = load_batches()
    return [e for b in batches for e in b], source


def render_unrelated(topics: Sequence[Topic], matchers: Sequence[str]) -> str:
    entries, source = unrelated_entries()
    by_key = {e.key: e for e in entries}
    lines = []
    for m in matchers:
        found = sorted(MATCHERS[m](topics, entries))
        lines.append(f"unrelated items, {m}: {len(found)} hits on {len(entries)} items ({source})")
        lines += [f"  {t:<22} {by_key[k].title[:100]}" for t, k in found]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.topics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=Path)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--seed", type=int, default=SPLIT_SEED,
                        help=f"split seed (default {SPLIT_SEED}: the held-out half of record)")
    parser.add_argument("--matcher", default=",".join(MATCHERS),
                        help="matchers to score, comma-separated, side by side "
                             f"(default: {','.join(MATCHERS)})")
    parser.add_argument("--tune", action="store_true",
                        help="only the tune half (no held-out or whole-set figures): for tuning")
    parser.add_argument("--show-held-out", action="store_true",
                        help="also list the held-out half's misses, false hits and unsure items")
    parser.add_argument("--examples", action="store_true",
                        help="run every topic's examples through each matcher")
    parser.add_argument("--unrelated", action="store_true",
                        help="run the topics over the shared real-feeds corpus, list every hit")
    args = parser.parse_args(argv)
    matchers = [m.strip() for m in args.matcher.split(",") if m.strip()]
    unknown = [m for m in matchers if m not in MATCHERS]
    if unknown or not matchers:
        parser.error(f"--matcher: one or more of {', '.join(MATCHERS)}")
    items_path, labels_path = args.items, args.labels
    if items_path is None or labels_path is None:
        d_items, d_labels = default_paths()
        items_path, labels_path = items_path or d_items, labels_path or d_labels
    topics = load_topics(args.config)
    items = load_items(items_path, labels_path)
    print(render_tune(topics, items, args.seed, matchers) if args.tune else
          render_split(topics, items, args.seed, matchers, show_held_out=args.show_held_out))
    if args.examples:
        print("\n" + render_examples(topics, matchers))
    if args.unrelated:
        print("\n" + render_unrelated(topics, matchers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
