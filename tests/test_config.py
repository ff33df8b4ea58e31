"""feeds.yaml validation: every error names the file, the line, the feed or
topic and the field, and the CLI exits 2 on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import SHIPPED_CONFIG, run_cli

from monitor.config import load_config, parse_config
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
    assert '"Казахстан"*' in topic.fts_query and "NOT" in topic.fts_query


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
