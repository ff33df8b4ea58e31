"""The Monitor facade (monitor/app.py) used as a library: real config files,
real SQLite files in tmp_path; nothing printed, everything returned or told
to the callbacks it was given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.app import ConfigIgnored, Notice, StaleTopic, open_monitor
from monitor.config import load_config
from monitor.errors import ConfigError, UsageError


def _config(path: Path, query: str, *, examples: dict[str, list[str]] | None = None) -> Path:
    topic: dict[str, Any] = {"id": "strikes", "name": "Strikes", "query": query}
    if examples:
        topic["examples"] = examples
    path.write_text(yaml.safe_dump({
        "settings": {"allow_private": True, "article_text": "never"},
        "feeds": [{"id": "f", "url": "http://127.0.0.1:9/feed.xml", "name": "F"}],
        "topics": [topic]}), encoding="utf-8")
    return path


def test_sync_reports_a_changed_topic_to_its_callback_and_prints_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, db = _config(tmp_path / "feeds.yaml", "strike"), tmp_path / "monitor.db"
    heard: list[Notice] = []
    with open_monitor(str(config), str(db), on_warning=heard.append) as m:
        assert m.sync() == []
    _config(config, "strike OR walkout")
    with open_monitor(str(config), str(db), on_warning=heard.append) as m:
        assert m.sync() == ["strikes"]
        rows, daemon = m.feeds_report()
    assert heard == [StaleTopic("strikes")]
    assert [(r["id"], r["state"]) for r in rows] == [("f", "new")] and daemon is None
    assert capsys.readouterr() == ("", "")


def test_examples_are_checked_by_the_facade_not_by_loading(tmp_path: Path) -> None:
    config = _config(tmp_path / "feeds.yaml", "strike",
                     examples={"match": ["Miners walk out"], "no_match": ["A calm day"]})
    assert load_config(config).topics[0].id == "strikes"  # loading runs no example
    db = tmp_path / "monitor.db"
    with open_monitor(str(config), str(db)) as m:
        report = m.check()
        assert [(f.topic_id, f.text, f.expected) for f in report.failures] == [
            ("strikes", "Miners walk out", True)]
        assert report.examples == 2
        with pytest.raises(ConfigError, match="see `monitor topics check`"):
            m.sync()
    assert not db.exists()  # refused before the database is touched


def test_a_report_of_a_broken_config_falls_back_to_the_database(tmp_path: Path) -> None:
    config, db = _config(tmp_path / "feeds.yaml", "strike"), tmp_path / "monitor.db"
    with open_monitor(str(config), str(db)) as m:
        m.sync()
    config.write_text("feeds: [", encoding="utf-8")
    heard: list[Notice] = []
    with open_monitor(str(config), str(db), on_warning=heard.append) as m:
        rows, _ = m.feeds_report()
        with pytest.raises(UsageError, match="neither a duration") as bad:
            m.hits((), "yesterday-ish", 10)
    assert [r["id"] for r in rows] == ["f"]
    assert len(heard) == 1 and isinstance(heard[0], ConfigIgnored)
    assert bad.value.param_hint is None
