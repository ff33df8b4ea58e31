"""The floor issue 4 asks for: the shipped topics reach micro precision >= 0.85
and recall >= 0.80 on the shared labelled set (tests/data/topic-eval/, scored
as its GUIDE.md says). And the benchmark's two matchers (issue 14): exact, and
the normalised stand-in, which must behave as the norm column's definition says."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks.topics import (  # noqa: E402
    HELD_OUT,
    TUNE,
    Report,
    _entries,
    evaluate,
    exact_hits,
    example_failures,
    load_items,
    load_topics,
    main,
    normalised_hits,
    reference_hits,
    render,
    split,
)
from monitor.config import parse_config  # noqa: E402
from monitor.match import entry_from_text  # noqa: E402

EVAL = Path(__file__).resolve().parent / "data" / "topic-eval"


@pytest.fixture(scope="module")
def report() -> Report:
    items = load_items(EVAL / "items.jsonl", EVAL / "labels.jsonl")
    return evaluate(load_topics(ROOT / "feeds.yaml"), items)


def test_micro_precision_and_recall_floor(report: Report) -> None:
    assert report.micro.precision >= 0.85, render(report)
    assert report.micro.recall >= 0.80, render(report)


def test_every_labelled_topic_is_scored(report: Report) -> None:
    assert set(report.per_topic) >= {"kz-osce-chair", "kz-human-rights", "osce-russia-security"}
    assert report.micro.tp + report.micro.fn == 46  # labelled pairs outside the unsure items


def test_unsure_items_are_kept_out_and_listed(report: Report) -> None:
    assert len(report.unsure) == 36
    scored = {i for _, i, _ in report.misses + report.false_hits}
    assert scored.isdisjoint(u[0] for u in report.unsure)


def test_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--items", str(EVAL / "items.jsonl"), "--labels", str(EVAL / "labels.jsonl"),
                 "--config", str(ROOT / "feeds.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["topic", "P", "R", "F1"]
    assert any(line.startswith("micro ") for line in out.splitlines())
    assert "unsure items, not scored (36)" in out


def test_split_is_fixed_disjoint_and_halves_the_set() -> None:
    items = load_items(EVAL / "items.jsonl", EVAL / "labels.jsonl")
    half = split(items)
    assert half == split(list(reversed(items)))  # by id, not by file order
    held = [i for i in items if half[i.id] == HELD_OUT]
    tune = [i for i in items if half[i.id] == TUNE]
    assert len(held) + len(tune) == len(items)
    assert abs(len(held) - len(tune)) <= 1
    assert split(items, seed=1) != half


def test_command_reports_held_out_tune_and_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--items", str(EVAL / "items.jsonl"), "--labels", str(EVAL / "labels.jsonl"),
                 "--config", str(ROOT / "feeds.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.index("(held-out half: ") < out.index("(tune half: ") < out.index("whole set:")
    micro = [line.split() for line in out.splitlines() if line.startswith("micro ")]
    assert len(micro) == 3
    held_tp, tune_tp, whole_tp = (int(m[4]) for m in micro)
    assert held_tp + tune_tp == whole_tp


# ---------------------------------------------------------------- the normalised matcher (issue 14)

ARGS = ["--items", str(EVAL / "items.jsonl"), "--labels", str(EVAL / "labels.jsonl"),
        "--config", str(ROOT / "feeds.yaml")]


def test_evaluator_is_deterministic_and_order_free() -> None:
    items = load_items(EVAL / "items.jsonl", EVAL / "labels.jsonl")
    topics = load_topics(ROOT / "feeds.yaml")
    for hits in (exact_hits, normalised_hits):
        a, b = evaluate(topics, items, hits), evaluate(topics, list(reversed(items)), hits)
        assert a.per_topic == b.per_topic and a.micro == b.micro
        assert sorted(a.misses) == sorted(b.misses)
        assert sorted(a.false_hits) == sorted(b.false_hits)


def test_normalised_matcher_meets_forms_the_exact_one_misses() -> None:
    topics = load_topics(ROOT / "feeds.yaml")
    # Kazakh in informal Latin: Zhanaozen's oil workers went on strike.
    entry = entry_from_text("Zhanaozen munaishylary ereuilge shyqty")
    assert exact_hits(topics, [entry]) == set()
    assert normalised_hits(topics, [entry]) == {("kz-labour-protests", "text")}


TWO_NAMES = """
terms:
  name: [Kurmanov, '"Tokayev"']
topics:
  - id: t
    name: T
    query: "@name"
    examples: {match: [Kurmanov], no_match: [Tokayeva]}
"""


def test_a_bare_list_term_widens_and_a_quoted_one_stays_exact() -> None:
    (topic,) = parse_config(TWO_NAMES).topics
    texts = {"bare": "Айнур Курманов", "quoted": "Токаев", "quoted-form": "Tokayeva"}
    entries = [replace(entry_from_text(t), key=k) for k, t in texts.items()]
    assert normalised_hits([topic], entries) == {("t", "bare")}
    assert exact_hits([topic], entries) == set()


def test_live_matcher_equals_the_reference_normalised_matching_on_the_labelled_set() -> None:
    items = load_items(EVAL / "items.jsonl", EVAL / "labels.jsonl")
    topics = load_topics(ROOT / "feeds.yaml")
    entries = _entries(items)
    live = normalised_hits(topics, entries)
    assert live and live == reference_hits(topics, entries)


def test_shipped_examples_pass_under_the_normalised_matcher() -> None:
    # Under the exact one: test_match.py::test_shipped_examples_behave.
    assert example_failures(load_topics(ROOT / "feeds.yaml"), normalised_hits) == []


def test_command_puts_the_matchers_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ARGS) == 0
    both = capsys.readouterr().out
    assert both.splitlines()[0].split().count("F1") == 2
    assert "(columns, left to right: exact, normalised)" in both
    assert main([*ARGS, "--matcher", "normalised"]) == 0
    one = capsys.readouterr().out
    assert one.splitlines()[0].split().count("F1") == 1
    micro = [line.split() for line in both.splitlines() if line.startswith("micro ")]
    assert all(len(m) == 1 + 2 * 6 + 1 for m in micro)  # name, two blocks, one separator


def test_held_out_items_are_listed_only_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    items = load_items(EVAL / "items.jsonl", EVAL / "labels.jsonl")
    held = {i.id for i in items if split(items)[i.id] == HELD_OUT}
    assert main(ARGS) == 0
    quiet = capsys.readouterr().out
    assert "[held-out]" not in quiet and "held out, not shown" in quiet
    assert main([*ARGS, "--show-held-out"]) == 0
    assert "[held-out]" in capsys.readouterr().out
    assert main([*ARGS, "--tune"]) == 0
    tune = capsys.readouterr().out
    assert "held-out" not in tune and "(tune half: " in tune
    assert not any(i in tune for i in held)
