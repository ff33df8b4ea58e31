"""The last passing verdict of the topics' examples, kept next to the database.

Every `monitor poll` refuses a config whose examples fail, and running them
builds a matcher per topic (~0.3 s for the shipped topics, most of a
nothing-due poll's start). Their outcome depends only on the topics, the
``@name`` lists and the code that matches, so a pass is remembered under a
hash of those (the topics, the lexicon, and configcache.code_stamp: the monitor's source
files, SQLite's, the stemmer's and the language detector's builds) and the next start
with the same hash does not run them again. A changed topic, term list, entity
or upgrade changes the hash: the examples run again. Failures are not stored:
a failing config is refused, and is checked again on the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

from monitor.configcache import Config, code_stamp

log = logging.getLogger("monitor.examples")


def cache_path(db_path: str) -> Path | None:
    """Where the verdict of the database's config is kept; None for a database
    in memory or not created yet (a first poll records nothing, the next one does)."""
    if db_path == ":memory:" or db_path.startswith("file:") or not os.path.exists(db_path):
        return None
    return Path(f"{db_path}.examples.json")


def verdict_key(config: Config) -> str:
    """A hash of everything an example's outcome depends on."""
    h = hashlib.sha256()
    h.update(repr(config.topics).encode())
    h.update(repr(sorted(config.lexicon.items())).encode())
    h.update(code_stamp().encode())
    return h.hexdigest()


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
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"passed": key}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("examples verdict not kept in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
