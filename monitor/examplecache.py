"""The last passing verdict of the topics' examples, kept next to the database.

Every `monitor poll` refuses a config whose examples fail, and running them
builds a matcher per topic (~0.3 s for the shipped topics, most of a
nothing-due poll's start). Their outcome depends only on the topics, the
``@name`` lists and the code that matches, so a pass is remembered under a
hash of those (the topics, the lexicon, the monitor's own source files,
SQLite's and the stemmer's and language detector's builds) and the next start
with the same hash does not run them again. A changed topic, term list, entity
or upgrade changes the hash: the examples run again. Failures are not stored:
a failing config is refused, and is checked again on the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

from monitor.config import Config

log = logging.getLogger("monitor.examples")

# The third-party code whose behaviour a match depends on (tokens, stems, languages).
_MATCHING_LIBRARIES = ("Stemmer", "py3langid")
_PACKAGE = Path(__file__).parent


def cache_path(db_path: str) -> Path | None:
    """Where the verdict of the database's config is kept (None: a database in memory)."""
    if db_path == ":memory:" or db_path.startswith("file:"):
        return None
    return Path(f"{db_path}.examples.json")


def verdict_key(config: Config) -> str:
    """A hash of everything an example's outcome depends on."""
    h = hashlib.sha256()
    h.update(repr(config.topics).encode())
    h.update(repr(sorted(config.lexicon.items())).encode())
    h.update(_code_fingerprint().encode())
    return h.hexdigest()


def _code_fingerprint() -> str:
    """The monitor's source files and the matching libraries, by size and
    modification time (a stat each: no file is read)."""
    parts = [sys.version, sqlite3.sqlite_version]
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                parts.append(_stamp(os.path.join(root, name)))
    for module in _MATCHING_LIBRARIES:
        spec = importlib.util.find_spec(module)
        parts.append(f"{module}:{_stamp(spec.origin) if spec and spec.origin else 'absent'}")
    return "\n".join(parts)


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def passed_before(path: Path | None, key: str) -> bool:
    """Whether the examples passed last time under this key."""
    if path is None:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("passed") == key


def record_pass(path: Path | None, key: str) -> None:
    """Remember a pass; a file that cannot be written only costs the check next time."""
    if path is None or not path.parent.is_dir():
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"passed": key}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("examples verdict not kept in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
