"""feeds.yaml validation: every error names the file, the line, the feed or
topic and the field, and the CLI exits 2 on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, SHIPPED_CONFIG, run_cli

from monitor.config import Config, load_config, parse_config
from monitor.errors import ConfigError

GOOD = """\
settings:
  interval: 30m
feeds:
  - id: azattyq-en
    url: https://www.azattyq.org/api/epiqq
    name: Azattyq
    tags: [kazakhstan]
terms:
  kz: [Kazakhstan, "Казахстан*", "Alma-Ata"]
topics:
  - id: kz-strikes
    name: Strikes
    query: '@kz AND (strike* OR забастов*)'
    exclude: football
    examples:
      match: ["Kazakhstan miners strike", "В Казахстане забастовка"]
      no_match: ["Kazakhstan football"]
"""


def load(text: str) -> object:
    return parse_config(textwrap.dedent(text), "feeds.yaml")


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value


def test_good_config_builds_frozen_records():
    config = parse_config(GOOD, "feeds.yaml")
    assert config.settings.interval == 1800
    assert config.feeds[0].tags == ("kazakhstan",)
    topic = config.topics[0]
    assert 'Казахстан*' in topic.fts_query and "NOT" in topic.fts_query


@pytest.mark.parametrize(("old", "new", "expect"), [
    ("    tags: [kazakhstan]\n", "    tags: [kazakhstan]\n    colour: red\n",
     ["feed azattyq-en", "unknown key 'colour'", "line 8"]),
    ("interval: 30m", "interval: soon", ["settings.interval", "line 2"]),
    ("interval: 30m", "interval: 0s", ["settings.interval"]),
    ("interval: 30m", "interval: -5m", ["settings.interval"]),
    ("url: https://www.azattyq.org/api/epiqq", "url: file:///etc/passwd",
     ["feed azattyq-en", "field url", "only http and https"]),
    ("url: https://www.azattyq.org/api/epiqq", "url: javascript:alert(1)",
     ["feed azattyq-en", "field url"]),
    ("url: https://www.azattyq.org/api/epiqq", "url: ftp://example.org/feed",
     ["feed azattyq-en", "field url"]),
    ("id: azattyq-en", "id: Azattyq EN", ["feed", "field id"]),
    ("@kz AND", "@nowhere AND", ["topic kz-strikes", "field query", "nowhere"]),
    ("(strike* OR забастов*)", "(strike* OR", ["topic kz-strikes", "field query"]),
    ("exclude: football", "exclude: 'AND AND'", ["topic kz-strikes", "field exclude"]),
    ("name: Strikes\n", "name: Strikes\n    query2: x\n", ["topic kz-strikes", "unknown key"]),
    ("interval: 30m", "interval: 30m\n  parse_workers: -1", ["settings.parse_workers"]),
    ("interval: 30m", "interval: 30m\n  parse_workers: many", ["settings.parse_workers"]),
])
def test_errors_name_the_place(old: str, new: str, expect: list[str]):
    assert old in GOOD
    message = str(error_of(GOOD.replace(old, new, 1)))
    assert "feeds.yaml" in message
    for part in expect:
        assert part in message, (part, message)


def test_duplicate_feed_id_and_url():
    dup = GOOD.replace("terms:", """\
  - id: azattyq-en
    url: https://example.org/other
    name: Again
terms:""")
    assert "duplicate feed id" in str(error_of(dup))
    dup_url = GOOD.replace("terms:", """\
  - id: azattyq-copy
    url: https://WWW.azattyq.org/api/epiqq
    name: Again
terms:""")
    message = str(error_of(dup_url))
    assert "duplicate URL" in message and "azattyq-copy" in message


def test_duplicate_topic_id_and_yaml_key():
    topic = GOOD[GOOD.index("  - id: kz-strikes"):]
    assert "duplicate topic id" in str(error_of(GOOD + topic))
    assert "duplicate key 'settings'" in str(error_of(GOOD + "settings: {}\n"))


def test_bad_yaml_reports_line():
    message = str(error_of("feeds:\n  - id: [unclosed\n"))
    assert "not valid YAML" in message and "line" in message


def test_interval_below_floor_is_rejected():
    text = GOOD.replace("    tags: [kazakhstan]\n", "    tags: [kazakhstan]\n    interval: 5s\n")
    assert "min_interval" in str(error_of(text))


def test_digest_validation():
    text = GOOD + 'digests:\n  - id: morning\n    schedule: "not cron"\n'
    assert "digest morning" in str(error_of(text))
    text = GOOD + 'digests:\n  - id: morning\n    schedule: "0 7 * * *"\n    topics: [nope]\n'
    assert "unknown topic" in str(error_of(text))


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/feeds.yaml")


def test_cli_check_exit_codes(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    result = run_cli("check", config=good)
    assert result.exit_code == 0, result.output
    assert "3 examples pass" in result.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("@kz AND", "@undefined AND"), encoding="utf-8")
    result = run_cli("check", config=bad)
    assert result.exit_code == 2
    assert "kz-strikes" in result.output and "undefined" in result.output

    failing = tmp_path / "failing.yaml"
    failing.write_text(GOOD.replace('no_match: ["Kazakhstan football"]',
                                    'no_match: ["Kazakhstan strike"]'), encoding="utf-8")
    result = run_cli("check", config=failing)
    assert result.exit_code == 2 and "should not match" in result.output
    result = run_cli("topics", "check", config=failing)
    assert result.exit_code == 2 and "FAIL" in result.output


def test_broken_config_polls_nothing(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("tags:", "tagz:"), encoding="utf-8")
    db = tmp_path / "m.db"
    result = run_cli("poll", "--force", config=bad, db=db)
    assert result.exit_code == 2 and "tagz" in result.output
    assert not db.exists()


def test_shipped_config_is_valid_and_examples_pass():
    config = load_config(SHIPPED_CONFIG)
    assert len(config.feeds) >= 20
    assert [t.id for t in config.topics] == [
        "kz-osce-chair", "kz-human-rights", "kz-labour-protests", "kz-internet-freedom",
        "kz-regime", "kz-economy-crisis", "socialist-resistance", "osce-russia-security"]
    for feed in config.feeds:
        assert feed.name and feed.language and feed.tags, feed.id
    for topic in config.topics:
        assert len(topic.examples.match) >= 3 and len(topic.examples.no_match) >= 3, topic.id
    result = run_cli("check", config=SHIPPED_CONFIG)
    assert result.exit_code == 0, result.output


def test_seed_article_matches_all_topics():
    seed = (SHIPPED_CONFIG.parent / "tests" / "data" / "seed-article.txt").read_text(
        encoding="utf-8")
    result = run_cli("topics", "test", "--json", seed, config=SHIPPED_CONFIG)
    import json
    rows = json.loads(result.stdout)
    assert all(r["matched"] for r in rows), [r["topic"] for r in rows if not r["matched"]]
    assert len(rows) == 8


@pytest.mark.parametrize(("value", "expect"), [("auto", None), ("0", 0), ("3", 3)])
def test_parse_workers_setting(value: str, expect: int | None) -> None:
    text = GOOD.replace("interval: 30m", f"interval: 30m\n  parse_workers: {value}", 1)
    assert parse_config(text, "feeds.yaml").settings.parse_workers == expect


# --- YAML aliases: bounded ----------------------------------------------------------------

def alias_bomb(levels: int = 10, width: int = 9) -> str:
    """The "billion laughs": each level lists the previous one ``width`` times."""
    lines = [f'a0: &a0 [{", ".join(["lol"] * width)}]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_with_exit_2_naming_the_line(tmp_path: Path):
    bomb = tmp_path / "bomb.yaml"
    # Inside a feed's tags, where pydantic would have to read every expanded node.
    text = GOOD.replace("    tags: [kazakhstan]\n", "    tags: *a9\n")
    bomb.write_text(alias_bomb() + text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The bound the issue sets: finished (exit 2) well within a 10 s timeout.
    proc = subprocess.run([sys.executable, "-m", "monitor", "--config", str(bomb), "check"],
                          capture_output=True, text=True, timeout=10, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "alias" in proc.stderr and str(bomb) in proc.stderr
    assert re.search(r"line \d+", proc.stderr), proc.stderr


def test_recursive_alias_and_deep_nesting_are_refused_but_a_few_aliases_work():
    message = str(error_of("feeds: &f\n  - id: x\n    url: http://a.example/\n    name: X\n"
                           "    tags: [*f]\n"))
    assert "alias refers to a block that contains it" in message and "line 1" in message
    deep = "settings: " + "[" * 150 + "]" * 150 + "\n"
    assert "nested deeper than" in str(error_of(deep))

    config = load("""\
        feeds:
          - &base
            id: one
            url: https://one.example/feed
            name: One
            tags: &tags [kz, news]
            interval: 30m
          - <<: *base
            id: two
            url: https://two.example/feed
          - {id: three, url: "https://three.example/feed", name: Three, tags: *tags}
        """)
    assert isinstance(config, Config)
    assert [(f.id, f.name, f.interval, f.tags) for f in config.feeds] == [
        ("one", "One", 1800.0, ("kz", "news")), ("two", "One", 1800.0, ("kz", "news")),
        ("three", "Three", None, ("kz", "news"))]


# --- every error at once --------------------------------------------------------------------

MANY_ERRORS = """\
settings:
  interval: soon
  parse_workers: many
feeds:
  - id: good
    url: http://127.0.0.1/good
    name: Good
  - id: Bad Id
    url: http://127.0.0.1/bad
    name: Bad
  - id: ftp
    url: ftp://example.org/feed
    name: FTP
  - id: good
    url: http://127.0.0.1/other
    name: Dup
  - id: late
    url: http://127.0.0.1/late
    name: Late
    interval: whenever
    tagz: [x]
terms:
  kz: [Kazakhstan]
  empty: ["*"]
  broken: notalist
topics:
  - id: t1
    name: T1
    query: '@nowhere AND strike'
  - id: t2
    name: T2
    query: '(strike OR'
  - id: t3
    name: T3
    query: '@broken AND strike'
  - id: t4
    query: strike
digests:
  - id: d1
    schedule: "not cron"
    to: [nobody]
    topics: [t4, nope]
"""
# (line, feed/topic/digest, field, part of the message): every error of MANY_ERRORS.
MANY_EXPECTED = [
    (2, None, "settings.interval", "not a duration"),
    (3, None, "settings.parse_workers", "'auto'"),
    (8, "feed Bad Id", "id", "pattern"),
    (12, "feed ftp", "url", "only http and https"),
    (14, "feed good", "id", "duplicate feed id"),
    (20, "feed late", "interval", "not a duration"),
    (21, "feed late", "tagz", "unknown key 'tagz'"),
    (24, "", "terms.empty", "term list is empty"),
    (25, "", "terms.broken", "valid list"),
    (29, "topic t1", "query", "undefined term list @nowhere"),
    (32, "topic t2", "query", "syntax error"),
    (36, "topic t4", "name", "Field required"),
    (40, "digest d1", "schedule", "not a cron expression"),
    (41, "digest d1", "to", "not an e-mail address: 'nobody'"),
    (42, "digest d1", "topics", "unknown topic 'nope'"),
]


def test_check_lists_every_error_with_its_line(tmp_path: Path):
    bad = tmp_path / "many.yaml"
    bad.write_text(MANY_ERRORS, encoding="utf-8")
    result = run_cli("check", config=bad)
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == len(MANY_EXPECTED), result.output
    for line, (number, owner, field, part) in zip(lines, MANY_EXPECTED, strict=True):
        assert f"file {bad}, line {number}," in line, line
        assert f"field {field}:" in line and part in line, line
        if owner:
            assert f", {owner}," in line, line
    assert f"{len(MANY_EXPECTED)} errors in {bad}" in result.output
    # A broken term list is reported once, not again in the topic that uses it.
    assert "t3" not in result.output

    # Other commands stay one line: the first error and how many more.
    poll = run_cli("poll", config=bad, db=tmp_path / "m.db")
    assert poll.exit_code == 2
    assert "line 2, field settings.interval" in poll.output
    assert f"and {len(MANY_EXPECTED) - 1} more errors" in poll.output


def test_check_json_lists_the_errors(tmp_path: Path):
    bad = tmp_path / "many.yaml"
    bad.write_text(MANY_ERRORS, encoding="utf-8")
    result = run_cli("check", "--json", config=bad)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["file"] == str(bad)
    got = [(e["line"], e["field"]) for e in data["errors"]]
    assert got == [(line, field) for line, _, field, _ in MANY_EXPECTED]
    first = data["errors"][2]
    assert first == {"file": str(bad), "line": 8, "feed": "Bad Id", "topic": None,
                     "digest": None, "field": "id", "message": first["message"]}
    assert "pattern" in first["message"]
    assert [e["topic"] for e in data["errors"] if e["topic"]] == ["t1", "t2", "t4"]

    unreadable = tmp_path / "broken.yaml"
    unreadable.write_text("feeds: [\n", encoding="utf-8")
    result = run_cli("check", "--json", config=unreadable)
    assert result.exit_code == 2
    [error] = json.loads(result.stdout)["errors"]
    assert "not valid YAML" in error["message"] and error["line"]


def test_check_json_on_a_good_and_a_failing_config(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    result = run_cli("check", "--json", config=good)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["ok"], data["errors"], data["examples_failed"]) == (True, [], [])
    assert (data["feeds"], data["topics"], data["examples"], data["digests"]) == (1, 1, 3, 0)

    failing = tmp_path / "failing.yaml"
    failing.write_text(GOOD.replace('no_match: ["Kazakhstan football"]',
                                    'no_match: ["Kazakhstan strike"]'), encoding="utf-8")
    result = run_cli("check", "--json", config=failing)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["examples_failed"] == [{"topic": "kz-strikes", "text": "Kazakhstan strike",
                                        "expected": "no match"}]

    result = run_cli("topics", "check", "--json", config=failing)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["failed"] == 1
    assert [(e["expect"], e["text"], e["pass"]) for e in data["examples"]] == [
        ("match", "Kazakhstan miners strike", True), ("match", "В Казахстане забастовка", True),
        ("no match", "Kazakhstan strike", False)]
