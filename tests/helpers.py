"""Small helpers shared by the tests: configs in tmp_path and the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result
from feedserver import serve

from monitor.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHIPPED_CONFIG = ROOT / "feeds.yaml"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    return data


def shipped_lexicon() -> dict[str, list[str]]:
    """Every @name of the shipped config: its term lists and its entities' names."""
    data = shipped()
    return {**data.get("terms", {}),
            **{k: e["names"] for k, e in data.get("entities", {}).items()}}


def write_config(path: Path, feeds: list[dict[str, Any]], *, topics: bool = True,
                 settings: dict[str, Any] | None = None, **extra: Any) -> Path:
    """A config with the given feeds and the shipped terms, entities and topics."""
    base = shipped() if topics else {}
    data: dict[str, Any] = {
        # No article text unless a test asks: its items' links lead off this machine.
        "settings": {"allow_private": True, "timeout": "5s", "connect_timeout": "2s",
                     "article_text": "never", **(settings or {})},
        "feeds": feeds,
        "terms": base.get("terms", {}),
        "entities": base.get("entities", {}),
        "topics": base.get("topics", []),
        **extra,
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_cli(*args: str, config: Path | None = None, db: Path | None = None) -> Result:
    argv = []
    if config is not None:
        argv += ["--config", str(config)]
    if db is not None:
        argv += ["--db", str(db)]
    return CliRunner().invoke(cli, [*argv, *args], catch_exceptions=False)


@contextmanager
def polled_archive(folder: Path, feeds: dict[str, str],
                   db_name: str = "m.db") -> Iterator[tuple[Path, Path]]:
    """Real feed files (``{feed id: file in tests/data/feeds}``) served and polled once
    into ``folder``, with the shipped topics; yields (config, db) while still serving."""
    with serve() as server:
        for feed_id, name in feeds.items():
            server.put(f"/{feed_id}", (DATA / "feeds" / name).read_bytes())
        listed = [{"id": fid, "name": fid, "url": server.url(f"/{fid}")} for fid in feeds]
        config = write_config(folder / "feeds.yaml", listed)
        db = folder / db_name
        result = run_cli("poll", "--force", config=config, db=db)
        assert result.exit_code == 0, result.output
        yield config, db
