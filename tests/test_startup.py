"""What a command's start costs, as behaviour (never timed): the modules
`monitor --help` and a `monitor poll` with nothing due import, and the two
things a start keeps next to the database so that it need not redo them: the
topics' examples verdict (examplecache) and the copy of the last valid config
(configcache). Real processes of `python -m monitor` and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import SHIPPED_CONFIG, run_cli

from monitor.config import load_config
from monitor.configcache import copy_path, load_with_copy

ROOT = Path(__file__).resolve().parent.parent

# What neither a help page nor a nothing-due poll needs (each costs
# milliseconds to tens of milliseconds to import).
HEAVY = ("httpx", "httpcore", "feedparser", "lxml", "sqlite_utils", "pydantic", "rich.table",
         "rich.progress", "jinja2", "trafilatura", "apprise", "starlette", "Stemmer",
         "fasttext", "numpy", "yaml")
# ...nor prints through rich (its console ~25 ms) or reads a query (monitor.query's
# compiled patterns, ~10 ms).
HELP_UNUSED = ("rich", "monitor.query")
# What a nothing-due poll must not build: the fetcher, the parsers, the matcher.
POLL_MACHINERY = ("httpx", "feedparser", "lxml", "Stemmer", "fasttext", "numpy", "pydantic",
                  "yaml", "monitor.poll", "monitor.match", "monitor.fetch", "monitor.parse",
                  "monitor.parsepool", "monitor.articles")

CONFIG: dict[str, Any] = {
    "settings": {"allow_private": True, "article_text": "never", "timeout": "2s",
                 "connect_timeout": "1s"},
    # The discard port: refused at once, so the first poll leaves nothing due.
    "feeds": [{"id": "f", "url": "http://127.0.0.1:9/feed.xml", "name": "F"}],
    "terms": {"strike": ["strike", "walkout"]},
    "topics": [{"id": "strikes", "name": "Strikes", "query": "@strike",
                "examples": {"match": ["Miners stage a walkout", "A strike at the port"],
                             "no_match": ["A calm day"]}}],
}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _monitor(*args: str, cwd: Path, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "monitor", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=60,
                          check=False)


def _imported(stderr: str) -> set[str]:
    """The modules a process imported, from its -X importtime lines."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _loaded(names: set[str], wanted: tuple[str, ...]) -> list[str]:
    return sorted(w for w in wanted if any(n == w or n.startswith(w + ".") for n in names))


def test_help_imports_no_library_a_command_needs(tmp_path: Path) -> None:
    done = _monitor("--help", cwd=tmp_path, importtime=True)
    assert done.returncode == 0 and "poll" in done.stdout
    assert _loaded(_imported(done.stderr), HEAVY + HELP_UNUSED) == []


def test_a_poll_with_nothing_due_builds_no_fetcher_parser_or_matcher(tmp_path: Path) -> None:
    config, db = _write(tmp_path / "feeds.yaml", CONFIG), tmp_path / "m.db"
    args = ("--config", str(config), "--db", str(db), "poll")
    first = _monitor(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1 feeds polled" in first.stdout  # refused: due again only after its backoff
    _monitor(*args, cwd=tmp_path)  # the examples' verdict and the config copy now kept
    done = _monitor(*args, cwd=tmp_path, importtime=True)
    assert done.returncode == 0
    assert "No feed is due" in done.stdout
    assert _loaded(_imported(done.stderr), POLL_MACHINERY) == []


def _poll_log(config: Path, db: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _monitor("-v", "--config", str(config), "--db", str(db), "poll", cwd=cwd)


RUN = "topics' examples run"
NOT_RUN = "topics' examples not run"


def test_unchanged_topics_are_not_checked_again_a_changed_one_is(tmp_path: Path) -> None:
    config, db = _write(tmp_path / "feeds.yaml", CONFIG), tmp_path / "m.db"
    # The first poll creates the database: nothing is kept beside it before it exists.
    assert run_cli("poll", config=config, db=db).exit_code == 0
    first = _poll_log(config, db, tmp_path)
    assert first.returncode == 0 and RUN in first.stderr
    second = _poll_log(config, db, tmp_path)
    assert second.returncode == 0 and NOT_RUN in second.stderr and RUN not in second.stderr
    # A new feed changes the file but no topic: still not run.
    _write(config, {**CONFIG, "feeds": [*CONFIG["feeds"],
                                        {"id": "g", "url": "http://127.0.0.1:9/g.xml"}]})
    third = _poll_log(config, db, tmp_path)
    assert NOT_RUN in third.stderr and "g" in third.stdout
    # A changed term list changes what the topic matches: run again.
    _write(config, {**CONFIG, "terms": {"strike": ["strike", "walkout", "stoppage"]}})
    fourth = _poll_log(config, db, tmp_path)
    assert fourth.returncode == 0 and RUN in fourth.stderr


def test_an_example_that_fails_after_a_recorded_pass_is_refused(tmp_path: Path) -> None:
    config, db = _write(tmp_path / "feeds.yaml", CONFIG), tmp_path / "m.db"
    assert run_cli("poll", config=config, db=db).exit_code == 0  # creates the database
    assert RUN in _poll_log(config, db, tmp_path).stderr  # and this one records the pass
    assert NOT_RUN in _poll_log(config, db, tmp_path).stderr
    broken = json.loads(json.dumps(CONFIG))
    broken["topics"][0]["examples"]["no_match"].append("The walkout goes on")
    _write(config, broken)
    done = _poll_log(config, db, tmp_path)
    assert done.returncode == 2
    assert "example matches: 'The walkout goes on'" in done.stderr
    # The refusal is not remembered as a pass: it is refused again.
    assert _poll_log(config, db, tmp_path).returncode == 2


def test_the_config_copy_follows_every_edit_of_feeds_yaml(tmp_path: Path) -> None:
    config, db = _write(tmp_path / "feeds.yaml", CONFIG), tmp_path / "m.db"
    assert run_cli("feeds", config=config, db=db).exit_code == 0
    assert copy_path(str(db)) is None and not list(tmp_path.glob("m.db*"))  # no database yet
    assert run_cli("poll", config=config, db=db).exit_code == 0
    assert run_cli("feeds", config=config, db=db).exit_code == 0
    assert copy_path(str(db)) == tmp_path / "m.db.config.json"
    assert (tmp_path / "m.db.config.json").exists()
    renamed = {**CONFIG, "feeds": [{**CONFIG["feeds"][0], "name": "Renamed"}]}
    _write(config, renamed)
    assert "Renamed" in run_cli("feeds", config=config, db=db).output
    broken = {**CONFIG, "feeds": [{"id": "Bad Id", "url": "http://127.0.0.1:9/x"}]}
    _write(config, broken)
    done = run_cli("poll", config=config, db=db)
    assert done.exit_code == 2 and "Bad Id" in done.output


# Every kind of record and value a config holds: settings, feeds with every
# field, entities, digests, alerts with quiet hours (datetime.time values).
EVERY_FIELD: dict[str, Any] = {
    "settings": {"interval": "20m", "max_bytes": "5MB", "parse_workers": 2, "retention": "30d",
                 "article_text": "never"},
    "feeds": [{"id": "a", "url": "https://example.org/a.xml", "name": "A", "interval": "1h",
               "tags": ["news", "kz"], "language": "ru", "max_items_per_day": 10,
               "article_text": "always"},
              {"id": "b", "url": "https://example.org/b.xml"}],
    "terms": {"strike": ["strike", "walkout"]},
    "entities": {"tokayev": {"names": ["Tokayev", "Токаев"], "kind": "person", "note": "n"}},
    "topics": [{"id": "strikes", "name": "Strikes", "description": "d", "query": "@strike",
                "exclude": "football", "languages": ["en", "ru"],
                "examples": {"match": ["A strike"], "no_match": ["A calm day"]}},
               {"id": "kz", "name": "KZ", "query": "@tokayev"}],
    "digests": [{"id": "morning", "schedule": "0 7 * * *", "since": "24h", "format": "text",
                 "to": ["desk@example.org"], "topics": ["strikes"]}],
    "alerts": [{"id": "desk", "to": "json://127.0.0.1:9/hook", "topics": ["kz"],
                "min_sources": 2, "window": "6h", "languages": ["ru"],
                "quiet_hours": "22:00-07:00"}],
}


@pytest.mark.parametrize("source", ["shipped", "every-field"])
def test_a_config_read_from_its_copy_equals_the_one_read_from_the_file(
        tmp_path: Path, source: str) -> None:
    path = tmp_path / "feeds.yaml"
    if source == "shipped":
        path.write_bytes(SHIPPED_CONFIG.read_bytes())
    else:
        _write(path, EVERY_FIELD)
    fresh = load_config(str(path))
    copy = tmp_path / "m.db.config.json"
    assert load_with_copy(str(path), copy, load_config) == fresh
    assert copy.stat().st_mode & 0o077 == 0  # an alert URL may hold a token

    def refuse(p: str) -> Any:
        raise AssertionError("the copy was not used")

    assert load_with_copy(str(path), copy, refuse) == fresh


def test_a_damaged_or_foreign_copy_is_read_past(tmp_path: Path) -> None:
    config = _write(tmp_path / "feeds.yaml", CONFIG)
    copy = tmp_path / "m.db.config.json"
    fresh = load_config(str(config))
    for junk in ("{not json", json.dumps({"key": "other", "config": {}}), "[]"):
        copy.write_text(junk, encoding="utf-8")
        assert load_with_copy(str(config), copy, load_config) == fresh
    # A copy under the right key whose records are not ours is refused, not built.
    key = json.loads(copy.read_text(encoding="utf-8"))["key"]
    copy.write_text(json.dumps({"key": key, "config": {"record": "Popen", "fields": {}}}),
                    encoding="utf-8")
    assert load_with_copy(str(config), copy, load_config) == fresh
