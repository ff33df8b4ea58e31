"""The connection to the SQLite database and the rules every statement runs under.

Owns opening it safely (WAL, a busy timeout, foreign keys, incremental
auto-vacuum on a new file, the page cache and mmap sizes, migrations on open;
the quick integrity check that refuses a corrupted file, run on open only when
asked, since it reads the whole file), the one write
transaction (``BEGIN IMMEDIATE``: a deferred ``BEGIN`` that reads then writes
fails at once with "database is locked" whatever the timeout), the mapping of
SQLite errors to StorageError, and the timestamp format (``to_iso``,
``from_iso``). The table families (feeds.py, items.py...) build on
``StoreBase``. It never does HTTP and never imports the matcher.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlite_utils import Database

from monitor.errors import StorageError
from monitor.migrations import migrations

DEFAULT_DB = "storage/monitor.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another writer
# Measured by benchmarks/storage.py (200k real-size items, 722 MB): SQLite's
# default 2 MB page cache wrote new items as fast as 16 or 64 MB (2,432
# against 2,189 and 2,030 items/s; the OS page cache holds the file anyway),
# and a first poll of 1,000 real feeds into a new archive ran no slower with
# it and held 30 MB less than with 32 MB. No mmap: it sped up no write (only
# the quick check), and an I/O error on a mapped page is a SIGBUS crash, not
# a StorageError.
CACHE_KIB = 2000
MMAP_BYTES = 0
# SQLite checkpoints the WAL inside the commit that passes wal_autocheckpoint
# pages (1,000 by default, 4 MB): during a poll that is the ingest thread,
# between two feeds, and its cost grows with the archive, as the pages it
# copies back lie all over a large file. A first poll of 200 real feeds into
# a 1M-item archive (benchmarks/intake.py) ran at 66 % of the empty archive's
# rate with 1,000 pages, 75 % with 16,384 (it wrote more than 64 MiB of WAL),
# 94 % with 65,536 and 98 % with no checkpoint during the poll. So a poll
# leaves the WAL to grow up to 256 MiB of 4 KiB pages; the daemon checkpoints it between cycles
# once it passes decide.WAL_LIMIT (64 MiB, app.checkpoint), a one-shot command
# when it closes the last connection. What a power cut may lose is unchanged
# in kind (synchronous NORMAL: the commits since the last checkpoint, their
# validators with them, so those feeds are fetched again).
AUTOCHECKPOINT_PAGES = 65_536


def to_iso(dt: datetime) -> str:
    """UTC, second precision, 'Z': sorts as text for every year 0001-9999."""
    dt = dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z")


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def db_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MONITOR_DB") or DEFAULT_DB


T = TypeVar("T")
MAX_VARIABLES = 32766 // 4  # well under SQLite's limit of bound parameters


def chunks(rows: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(rows), max(1, size)):
        yield list(rows[i:i + size])


def marks(values: Sequence[object]) -> str:
    """The ``?, ?, ...`` of an ``IN (...)`` over ``values``."""
    return ",".join("?" * len(values))


class StoreBase:
    """One connection to the monitor database. Not shared between threads."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT,
                 check: bool = True) -> None:
        self.path = str(path)
        self.conn = _connect(self.path, busy_timeout)
        try:
            # No sqlite-utils plugins: none is ours to run on this connection, and
            # finding them scans every installed package's entry points at each start.
            self.db = Database(self.conn, execute_plugins=False)
            if check:
                _quick_check(self.conn, self.path)
            self._migrate()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def quick_check(self) -> float:
        """``PRAGMA quick_check``; StorageError when the file is corrupted.
        Returns the seconds it took (it reads every page: ~1 s per GB)."""
        t0 = time.monotonic()
        _quick_check(self.conn, self.path)
        return time.monotonic() - t0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction taken with BEGIN IMMEDIATE; rolled back on any error."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "begin a write") from None
        try:
            yield self.db
        except sqlite3.Error as exc:
            self._rollback()
            raise storage_error(exc, self.path, "write") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise storage_error(exc, self.path, "commit") from None

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _migrate(self) -> None:
        if not migrations.pending(self.db):
            return
        with self.write() as db:
            migrations.apply(db)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts. For the store's own modules and for tests: code
        outside monitor/store/ calls a named method instead."""
        cur = self._read(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "read") from None

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Rows as tuples, for the typed read models built positionally."""
        try:
            return self._read(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, "read") from None


# --- opening --------------------------------------------------------------------------------

def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    if path != ":memory:":
        parent = Path(path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the database folder: {exc.strerror}",
                               db=path) from None
    try:
        # isolation_level=None: no implicit transactions; write() opens them itself.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # Only takes on a file with no table yet (an existing one is converted
        # by maintenance, with a VACUUM): pruned pages can then go back to the
        # file system in small batches (MaintenanceMixin.return_free_pages).
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = _wal_mode(conn, busy_timeout)
        conn.execute("PRAGMA foreign_keys = ON")
        # NORMAL in WAL: a power cut may lose the last polls, never corrupt; their
        # validators are lost with them, so the next poll fetches them again.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
    except sqlite3.Error as exc:
        raise storage_error(exc, path, "open") from None
    if path != ":memory:" and str(mode).lower() != "wal":
        conn.close()
        raise StorageError(f"cannot switch the database to WAL mode (got {mode})", db=path)
    return conn


def _wal_mode(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch a connection to WAL; returns the journal mode now in force.

    On a new file, processes opening it at once race to make the switch and
    SQLite may answer the loser "database is locked" at once, without waiting
    for the busy timeout: so retry until that timeout (once the file is in WAL
    mode, the pragma changes nothing and never waits)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _quick_check(conn: sqlite3.Connection, path: str) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise storage_error(exc, path, "check") from None
    if rows != [("ok",)]:
        first = "; ".join(str(r[0]) for r in rows[:3])
        raise StorageError(
            f"the database is corrupted ({first}); it was left untouched: restore it from a "
            "backup or move it aside to start a new one", db=path)


def storage_error(exc: sqlite3.Error, path: str, action: str) -> StorageError:
    text = str(exc)
    if "file is not a database" in text or "malformed" in text:
        return StorageError(
            f"the database is corrupted or not a monitor database ({text}); it was left "
            "untouched: restore it from a backup or move it aside", db=path)
    if "readonly" in text or "unable to open" in text:
        return StorageError(f"cannot {action} the database ({text}): check the folder's "
                            "permissions", db=path)
    if "disk is full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_IOERR_WRITE":
        # A file size limit (EFBIG) or a failing disk surfaces as a write I/O
        # error, not SQLITE_FULL; the transaction is rolled back either way.
        return StorageError(f"cannot write while trying to {action} (disk full, file size "
                            f"limit or I/O error: {text}); the transaction was rolled back",
                            db=path)
    return StorageError(f"cannot {action} the database: {text}", db=path)
