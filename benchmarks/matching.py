"""Matching throughput: items/s percolated by monitor.match.Matcher against
8, 100, 1,000 and 10,000 topics, and how its cost grows with the topic count.

Items are real: every feed of the shared corpus (else tests/data/feeds) parsed
by monitor.parse.parse_feed, matched one feed per batch as a poll does. The
8 topics are those of feeds.yaml; larger sets add generated topics built the
way the shipped ones are, from their own vocabulary: a subject group (places,
people, organisations: @kazakhstan, @tokayev, @osce, @russia...) AND an aspect
group (@rights, @protest, @economy, @media-law...), each a random sub-list of
the shipped term list (or the whole list), sometimes title-scoped, sometimes
with a third AND clause or an exclusion taken from the shipped queries' words.

Each topic count runs over the same shuffled sequence of feed batches until a
time budget is spent (always at least one batch), so the large sets may see
fewer items; twice, side by side, batch by batch in turn: the matcher as
shipped (normalised matching, issue 14) and ``Matcher(normalise=False)``, the
exact matcher of before, so the cost of normalisation is measured in the same
run under the same load of a shared machine.
The process-wide caches of the tokenizer are warmed by one pass first, so
neither run pays them for the other. When 1,000 topics fall short of 20,000
items/s, a cProfile of the matcher at 1,000 topics says where the time goes.

    python -m benchmarks.matching [--counts 8,100,1000,10000] [--budget 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import ROOT, SHARED_FEEDS, TEST_FEEDS, load_corpus, table
from monitor.config import Config, load_config
from monitor.errors import ParseError
from monitor.match import Matcher, build_fts_query
from monitor.match.tokens import _entry_text
from monitor.parse import parse_feed
from monitor.types import Entry, Topic

COUNTS = (8, 100, 1000, 10000)
BATCH_SIZES = (200, 1000)
TARGET_ITEMS_PER_S = 20_000  # at 1,000 topics (issue 8)
TARGET_GROWTH = 20.0  # cost at 10,000 topics / cost at 100
MAX_NORM_COST = 0.30  # normalisation may cost at most 30 % (issue 14), at 8 and 1,000
SEED = 8

SUBJECT_LISTS = ("kazakhstan", "tokayev", "nazarbayev", "nazarbayev-institutions", "osce",
                 "russia", "russia-conflicts", "european-security", "cwi", "kurmanov")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
_WORD_RE = re.compile(r'"[^"]+"\*?|[^\s()"]+')


# ---------------------------------------------------------------- items


def load_batches() -> tuple[list[list[Entry]], str]:
    """Entries per feed, and where they came from."""
    corpus = load_corpus()
    fetched_at = datetime(2026, 3, 10, tzinfo=UTC)
    if corpus:
        named = [(c.name, c.body) for c in corpus]
        source = f"{len(corpus)} feeds of {SHARED_FEEDS}"
    else:
        files = sorted(p for p in TEST_FEEDS.iterdir() if p.suffix in (".xml", ".rdf", ".atom"))
        named = [(p.name, p.read_bytes()) for p in files]
        source = f"{len(files)} feeds of {TEST_FEEDS} (shared corpus missing)"
    batches = []
    for name, body in named:
        try:
            parsed = parse_feed(body, url=f"http://bench.invalid/{name}",
                                headers={"content-type": "application/xml"},
                                fetched_at=fetched_at)
        except ParseError:
            continue
        if parsed.entries:
            batches.append(list(parsed.entries))
    random.Random(SEED).shuffle(batches)
    return batches, source


# ---------------------------------------------------------------- topics


def _free_words(topics: Sequence[Topic]) -> list[str]:
    """Words and phrases the shipped queries use outside @lists (tenge,
    devalu*, "air strike*"...): material for extra clauses and exclusions."""
    words: dict[str, None] = {}
    for t in topics:
        for text in (t.query, t.exclude or ""):
            for w in _WORD_RE.findall(text):
                # A NEAR group's words come with its commas and its distance.
                w = w.removeprefix("title:").removeprefix("summary:").rstrip(",")
                if (w and not w.startswith("@") and w not in _OPERATORS and ":" not in w
                        and not w.isdigit() and "," not in w):
                    words[w] = None
    return list(words)


def _subject_terms(config: Config) -> dict[str, Sequence[str]]:
    """The term lists, and the entities standing for the subject lists (the
    country, its presidents and the OSCE moved from terms to entities)."""
    lexicon = config.lexicon
    return {**config.terms, **{k: lexicon[k] for k in SUBJECT_LISTS if k in lexicon}}


def generate_topics(base: Sequence[Topic], terms: Mapping[str, Sequence[str]], n: int,
                    seed: int = SEED) -> list[Topic]:
    """The shipped topics, then generated ones up to ``n``."""
    rng = random.Random(seed)
    subjects = [s for s in SUBJECT_LISTS if s in terms]
    aspects = [a for a in terms if a not in SUBJECT_LISTS]
    words = _free_words(base) or ["tenge"]
    out = list(base[:n])
    all_terms: dict[str, Sequence[str]] = dict(terms)
    i = 0
    while len(out) < n:
        i += 1
        tid = f"gen-{i:05d}"

        def group(lists: Sequence[str], k: int, tid: str = tid) -> str:
            parts = []
            for j, name in enumerate(rng.sample(lists, k)):
                values = list(terms[name])
                if rng.random() < 0.3 or len(values) <= 3:
                    parts.append(f"@{name}")
                    continue
                sub = f"{tid}-{name}-{j}"
                all_terms[sub] = rng.sample(values, rng.randint(3, min(25, len(values))))
                parts.append(f"@{sub}")
            return "(" + " OR ".join(parts) + ")"

        subject = group(subjects, rng.choice((1, 1, 2)))
        aspect = group(aspects, rng.choice((1, 1, 2, 3)))
        shape = rng.random()
        if shape < 0.2:
            query = f"title:{subject} AND {aspect}"
        elif shape < 0.35:
            extra = " OR ".join(rng.sample(words, min(len(words), rng.randint(1, 4))))
            query = f"{subject} AND {aspect} AND ({extra})"
        else:
            query = f"{subject} AND {aspect}"
        exclude = None
        if rng.random() < 0.2:
            exclude = " OR ".join(rng.sample(words, min(len(words), rng.randint(1, 5))))
        fts = build_fts_query(query, exclude, all_terms, topic_id=tid)
        out.append(Topic(id=tid, name=f"generated topic {i}", query=query, fts_query=fts,
                         exclude=exclude))
    return out


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class MatchRun:
    topics: int
    build_seconds: float
    batches: int
    items: int
    seconds: float
    hits: int
    normalise: bool = True

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def us_per_item(self) -> float:
        return self.seconds / self.items * 1e6 if self.items else 0.0


def measure(topics: Sequence[Topic], batches: Sequence[Sequence[Entry]],
            budget: float, normalise: bool = True) -> MatchRun:
    t0 = time.perf_counter()
    matcher = Matcher(topics, normalise=normalise)
    build = time.perf_counter() - t0
    items = hits = done = 0
    spent = 0.0
    for batch in batches:  # bounded: one pass at most
        t0 = time.perf_counter()
        hits += len(matcher.match(batch))
        spent += time.perf_counter() - t0
        items += len(batch)
        done += 1
        if spent >= budget:
            break
    return MatchRun(len(topics), build, done, items, spent, hits, normalise)


def measure_pair(topics: Sequence[Topic], batches: Sequence[Sequence[Entry]],
                 budget: float) -> tuple[MatchRun, MatchRun]:
    """The exact matcher and the normalised one, batch by batch in turn, so
    that on a shared machine both see the same load: (exact, normalised)."""
    matchers, builds = [], []
    for normalise in (False, True):
        t0 = time.perf_counter()
        matchers.append(Matcher(topics, normalise=normalise))
        builds.append(time.perf_counter() - t0)
    spent, hits = [0.0, 0.0], [0, 0]
    items = done = 0
    for batch in batches:  # bounded: one pass at most
        for k, matcher in enumerate(matchers):
            t0 = time.perf_counter()
            hits[k] += len(matcher.match(batch))
            spent[k] += time.perf_counter() - t0
        items += len(batch)
        done += 1
        if spent[1] >= budget:
            break
    exact, norm = (MatchRun(len(topics), builds[k], done, items, spent[k], hits[k], k == 1)
                   for k in (0, 1))
    return exact, norm


# Matcher's phases, by the function that does each (monitor/match/).
PHASES = (
    ("_entry_text", "_entry_text", "first stage: each item's token text (C calls, word by word for odd text)"),
    ("_Index.candidates", "candidates", "first stage: (topic, item) pairs that could match"),
    ("entry_norm", "entry_norm", "norm column of the items a normal-form topic still wants"),
    ("_Batch.__init__", "__init__", "index the candidate items (FTS5 inserts)"),
    ("_Vocab.render", "render", "render pruned queries"),
    ("_Batch.hits", "hits", "run topic queries (SQLite MATCH + highlight)"),
    ("_evidence", "_evidence", "hit evidence: per-clause highlight + snippet"),
)


@dataclass(frozen=True)
class Profile:
    total: float  # seconds in Matcher.match
    phases: list[tuple[str, float, int]]  # (phase, cumulative seconds, calls)
    top: str  # the top functions by own time, one per line


def profile(topics: Sequence[Topic], batches: Sequence[Sequence[Entry]],
            max_batches: int = 60) -> Profile:
    """cProfile of Matcher.match over the first batches: total seconds, time
    per phase (cumulative seconds, calls) and the top functions by own time."""
    matcher = Matcher(topics, normalise=True)
    prof = cProfile.Profile()
    chosen = list(batches[:max_batches])
    prof.enable()
    for batch in chosen:
        matcher.match(batch)
    prof.disable()
    stats = pstats.Stats(prof)
    raw = stats.stats  # type: ignore[attr-defined]
    total = 0.0
    phases: dict[str, tuple[float, int]] = {}
    for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in raw.items():
        if filename.endswith("monitor/match/batch.py") and func == "match":
            total += ct
        if "monitor/match/" not in filename:
            continue
        for label, name, _ in PHASES:
            if func == name and (name != "__init__" or _is_batch_init(raw, filename, _line)):
                old = phases.get(label, (0.0, 0))
                phases[label] = (old[0] + ct, old[1] + nc)
    rows = [(f"{label}: {what}", phases.get(label, (0.0, 0))[0],
             phases.get(label, (0.0, 0))[1]) for label, _, what in PHASES]
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    lines = [f"{tt:8.3f}s own {ct:8.3f}s cum {nc:9d} calls  "
             f"{Path(fn).name}:{ln}({func})"
             for (fn, ln, func), (_cc, nc, tt, ct, _c) in top]
    return Profile(total, rows, "\n".join(lines))


def _is_batch_init(raw: Mapping[tuple[str, int, str], object], filename: str, line: int) -> bool:
    """Only _Batch's __init__ (the package has other classes with one)."""
    try:
        source = Path(filename).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for text in reversed(source[: max(0, line - 1)]):
        if text.startswith("class "):
            return text.startswith("class _Batch")
    return False


def run(counts: Sequence[int], budget: float, do_profile: bool | None = None,
        log: object = print) -> dict[str, object]:
    config = load_config(ROOT / "feeds.yaml")
    batches, source = load_batches()
    n_items = sum(map(len, batches))
    say = log if callable(log) else print
    say(f"  {n_items:,} items in {len(batches)} batches from {source}")
    for b in batches:  # the tokenizer's process-wide caches, for both runs alike
        for e in b:
            _entry_text(e)
    runs: list[MatchRun] = []
    exact_runs: list[MatchRun] = []
    for n in counts:
        topics = generate_topics(config.topics, _subject_terms(config), n)
        for r in measure_pair(topics, batches, budget):
            (runs if r.normalise else exact_runs).append(r)
            say(f"  {n:>6} topics{'' if r.normalise else ' (without norm)'}: "
                f"{r.items_per_s:9.0f} items/s over {r.items:,} items "
                f"({r.batches} batches, {r.seconds:.1f}s), {r.hits} hits, "
                f"matcher built in {r.build_seconds:.2f}s")
    result: dict[str, object] = {"source": source, "items": n_items, "runs": runs,
                                 "exact_runs": exact_runs}
    # What batching across feeds would buy: same items, re-cut into larger batches.
    if 1000 in counts:
        topics = generate_topics(config.topics, _subject_terms(config), 1000)
        flat = [e for b in batches for e in b]
        sized = []
        for size in BATCH_SIZES:
            r = measure(topics, [flat[i:i + size] for i in range(0, len(flat), size)], budget)
            sized.append((size, r))
            say(f"  1000 topics, {size}-item batches: {r.items_per_s:9.0f} items/s")
        result["by_batch_size"] = sized
    at_1000 = next((r for r in runs if r.topics == 1000), None)
    if do_profile or (do_profile is None and at_1000 is not None
                      and at_1000.items_per_s < TARGET_ITEMS_PER_S):
        topics = generate_topics(config.topics, _subject_terms(config), 1000)
        result["profile"] = profile(topics, batches)
    return result


def render(result: Mapping[str, object]) -> str:
    runs: list[MatchRun] = list(result["runs"])  # type: ignore[call-overload]
    by_n = {r.topics: r for r in runs}
    base = by_n.get(100)
    rows = []
    for r in runs:
        growth = f"{r.us_per_item / base.us_per_item:.1f}x" if base and base.us_per_item else "-"
        rows.append([r.topics, r.items_per_s, r.us_per_item, growth, r.items, r.batches,
                     r.hits, r.build_seconds])
    text = [f"Items: {result['items']:,} from {result['source']}, one batch per feed; "
            "normalised matching (as shipped).", "",
            table(["topics", "items/s", "µs/item", "cost vs 100 topics", "items matched",
                   "batches", "hits", "Matcher() s"], rows)]
    exact: list[MatchRun] = list(result.get("exact_runs") or [])  # type: ignore[call-overload]
    if exact:
        by_exact = {r.topics: r for r in exact}
        rows3 = []
        for r in runs:
            e = by_exact.get(r.topics)
            if e is None:
                continue
            cost = (r.us_per_item / e.us_per_item - 1) if e.us_per_item else 0.0
            rows3.append([r.topics, e.items_per_s, r.items_per_s, e.us_per_item, r.us_per_item,
                          f"{cost:+.0%}", e.hits, r.hits, e.build_seconds, r.build_seconds])
        text += ["", "Normalisation side by side (same run, same batches; without norm: "
                 "`Matcher(normalise=False)`, the exact matcher):", "",
                 table(["topics", "items/s without norm", "items/s with norm",
                        "µs/item without", "µs/item with", "norm cost", "hits without",
                        "hits with", "Matcher() s without", "Matcher() s with"], rows3)]
    if "by_batch_size" in result:
        sized: list[tuple[int, MatchRun]] = list(result["by_batch_size"])  # type: ignore[call-overload]
        per_feed = by_n.get(1000)
        rows2: list[list[object]] = []
        if per_feed:
            rows2.append([f"one per feed (~{per_feed.items / max(1, per_feed.batches):.0f})",
                          per_feed.items_per_s, per_feed.us_per_item, per_feed.hits])
        rows2 += [[size, r.items_per_s, r.us_per_item, r.hits] for size, r in sized]
        text += ["", "1,000 topics by batch size (items per Matcher.match call):", "",
                 table(["batch", "items/s", "µs/item", "hits"], rows2)]
    if "profile" in result:
        prof = result["profile"]
        assert isinstance(prof, Profile)
        total = prof.total
        text += ["", f"Profile at 1,000 topics, one batch per feed (cProfile, {total:.2f}s "
                 "in Matcher.match):", "",
                 table(["phase", "cumulative s", "calls", "share"],
                       [[p, s, c, f"{s / total:.0%}" if total else "-"]
                        for p, s, c in prof.phases]),
                 "", "Top functions by own time:", "", "```", prof.top, "```"]
    return "\n".join(text)


def targets(result: Mapping[str, object]) -> list[tuple[str, str, str]]:
    runs: list[MatchRun] = list(result["runs"])  # type: ignore[call-overload]
    by_n = {r.topics: r for r in runs}
    out = []
    r1k = by_n.get(1000)
    if r1k:
        ok = r1k.items_per_s >= TARGET_ITEMS_PER_S
        out.append(("matching at 1,000 topics >= 20,000 items/s",
                    f"{r1k.items_per_s:,.0f} items/s",
                    "met" if ok else f"not met (gap {TARGET_ITEMS_PER_S / r1k.items_per_s:.1f}x)"
                    if r1k.items_per_s else "not met"))
    by_exact = {r.topics: r for r in result.get("exact_runs") or []}  # type: ignore[attr-defined]
    for n in (8, 1000):
        r, e = by_n.get(n), by_exact.get(n)
        if r and e and e.us_per_item:
            cost = r.us_per_item / e.us_per_item - 1
            out.append((f"normalisation costs <= 30 % at {n:,} topics",
                        f"{r.us_per_item:.0f} vs {e.us_per_item:.0f} µs/item = {cost:+.0%}",
                        "met" if cost <= MAX_NORM_COST else "not met"))
    r100, r10k = by_n.get(100), by_n.get(10000)
    if r100 and r10k and r100.us_per_item:
        growth = r10k.us_per_item / r100.us_per_item
        out.append(("cost at 10,000 topics <= 20x cost at 100",
                    f"{r10k.us_per_item:.0f} vs {r100.us_per_item:.0f} µs/item = {growth:.1f}x",
                    "met" if growth <= TARGET_GROWTH
                    else f"not met (gap {growth / TARGET_GROWTH:.1f}x)"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matching", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds of matching per topic count (at least one batch)")
    parser.add_argument("--profile", action="store_true", default=None,
                        help="profile at 1,000 topics even when the target is met")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    result = run(counts, args.budget, args.profile)
    print(render(result))
    for target, measured, verdict in targets(result):
        print(f"- {target}: {measured}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
