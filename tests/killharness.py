"""Kill -9 harness and database invariants, shared by the crash and reliability tests.

A ``Farm`` serves many real feeds (tests/data/feeds and tests/data/parse/real)
from tests/feedserver.py, with content that changes between rounds: some
items dropped, synthetic items added (some of them matching the shipped
topics), some feeds left alone so they answer 304. It remembers every body it
served under each ETag, so a check can tell which items a stored validator
promises (catalogue N14).

``check_database`` is what must hold after any crash: SQLite's own integrity
and foreign-key checks, the FTS index agreeing with the items table, no
duplicate (feed_id, key), the hits table equal to what the topics imply for
the stored items (recomputed with monitor.match.Matcher), and no feed whose
stored ETag or body hash came from a body whose items are not all stored.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedserver import FeedServer
from helpers import DATA, ROOT, write_config

from monitor.config import Config, load_config
from monitor.match import Matcher
from monitor.parse import parse_feed
from monitor.store import from_iso
from monitor.types import Entry

SOURCES: tuple[tuple[Path, str], ...] = tuple(
    (p, "application/rdf+xml" if p.suffix == ".rdf" else "application/rss+xml")
    for p in sorted((DATA / "feeds").glob("*.xml")) + sorted((DATA / "feeds").glob("*.rdf"))
    + sorted((DATA / "parse" / "real").glob("*.xml")))

# Feeds that set no <ttl>: due again after the configured interval.
NO_TTL = tuple((p, t) for p, t in SOURCES if b"<ttl>" not in p.read_bytes())

# An item element of RSS 0.9x/2.0, RDF or Atom, on the raw bytes (every
# fixture's encoding is ASCII-compatible).
_ITEM = re.compile(rb"<(item|entry)[\s>].*?</\1>", re.DOTALL)
_CLOSERS = (b"</channel>", b"</feed>", b"</rdf:RDF>")
_TOPICAL = ("Kazakhstan: miners strike in Karaganda over unpaid wages, round {r}",
            "Almaty court jails Kazakh journalist for {r} years over a blog post",
            "Tenge devaluation: Kazakhstan inflation reaches {r} per cent")


def _insert(body: bytes, extra: bytes) -> bytes:
    for closer in _CLOSERS:
        at = body.rfind(closer)
        if at != -1:
            return body[:at] + extra + body[at:]
    return body + extra


def _synthetic(atom: bool, feed_id: str, rnd: int, j: int, topical: bool) -> bytes:
    guid = f"urn:synthetic:{feed_id}:{rnd}:{j}"
    title = (_TOPICAL[(rnd + j) % len(_TOPICAL)] if topical
             else "Weather report for the weekend, edition {r}").format(r=rnd * 10 + j)
    link = f"https://example.org/{feed_id}/{rnd}/{j}"
    if atom:
        return (f"<entry><id>{guid}</id><title>{title}</title><link href=\"{link}\"/>"
                f"<updated>2026-01-05T08:{j:02d}:00Z</updated><summary>{title}.</summary>"
                "</entry>").encode()
    return (f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link>"
            f"<description>{title}.</description>"
            f"<pubDate>Mon, 05 Jan 2026 08:{j:02d}:00 GMT</pubDate></item>").encode()


@dataclass
class FeedSpec:
    id: str
    path: str
    source: Path
    content_type: str


@dataclass
class Farm:
    """Real feeds on a FeedServer whose content changes round by round."""

    server: FeedServer
    n_feeds: int = 28
    rng: random.Random = field(default_factory=random.Random)
    sources: tuple[tuple[Path, str], ...] = SOURCES
    feeds: list[FeedSpec] = field(default_factory=list)
    # per feed: ETag -> the body served under it
    served: dict[str, dict[str, bytes]] = field(default_factory=dict)
    round: int = 0

    def __post_init__(self) -> None:
        for i in range(self.n_feeds):
            source, ctype = self.sources[i % len(self.sources)]
            feed_id = f"f{i:02d}-{source.stem[:20].lower().replace('_', '-')}".rstrip("-")
            self.feeds.append(FeedSpec(feed_id, f"/{feed_id}", source, ctype))
            self.served[feed_id] = {}
        self.advance(change_all=True)

    def config(self, path: Path, **settings: Any) -> Path:
        feeds = [{"id": f.id, "name": f.id, "url": self.server.url(f.path)} for f in self.feeds]
        return write_config(path, feeds, settings={"timeout": "5s", **settings})

    def advance(self, *, change_all: bool = False) -> None:
        """Next round: about two thirds of the feeds get new content."""
        self.round += 1
        for spec in self.feeds:
            if change_all or self.rng.random() < 0.66:
                self.put(spec, self._body(spec))

    def put(self, spec: FeedSpec, body: bytes) -> None:
        self.server.put(spec.path, body, spec.content_type)
        self.served[spec.id][self.server.files[spec.path].etag] = body

    def _body(self, spec: FeedSpec) -> bytes:
        base = spec.source.read_bytes()
        items = list(_ITEM.finditer(base))
        keep = bytearray(base)
        for m in reversed(items):  # drop about a fifth of the real items
            if self.rng.random() < 0.2:
                del keep[m.start():m.end()]
        atom = b"<feed" in base[:2000] and b"<rss" not in base[:2000]
        extra = b"".join(_synthetic(atom, spec.id, self.round, j, self.rng.random() < 0.5)
                         for j in range(self.rng.randrange(1, 6)))
        return _insert(bytes(keep), extra)

    def current_body(self, spec: FeedSpec) -> bytes:
        return self.server.files[spec.path].body


# --- running the real CLI -------------------------------------------------------------------

def poll_command(config: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "--config", str(config), "--db", str(db), "poll",
            "--force", "--json", *extra]


def run_poll(config: Path, db: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(poll_command(config, db), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=child_env())


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MONITOR_CONFIG", None)
    env.pop("MONITOR_DB", None)
    return env


@dataclass
class KillOutcome:
    delay: float
    finished: bool  # the poll ended on its own before the kill
    returncode: int | None
    stderr: str


def poll_and_kill(config: Path, db: Path, delay: float,
                  after_commits: int | None = None) -> KillOutcome:
    """Start a forced poll and SIGKILL it (if still running) after ``delay``
    seconds, or, with ``after_commits``, as soon as that many of its feed
    transactions are seen committed: a kill between two feeds' commits whatever
    the machine's load (the time-based kills land anywhere, start-up included)."""
    start_id = _last_fetch_id(db)
    proc = subprocess.Popen(poll_command(config, db), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())
    try:
        finished = _wait_for_kill_moment(proc, db, delay, start_id, after_commits)
        if not finished:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # It may have exited by itself between the wait and the signal.
    finished = finished or proc.returncode != -signal.SIGKILL
    return KillOutcome(delay, finished, proc.returncode, err or "")


def _wait_for_kill_moment(proc: subprocess.Popen[str], db: Path, delay: float, start_id: int,
                          after_commits: int | None) -> bool:
    """True if the poll ended by itself first."""
    if after_commits is None:
        try:
            proc.wait(timeout=delay)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + max(delay, 30.0)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        if _last_fetch_id(db) - start_id >= after_commits:
            return False
        time.sleep(0.005)
    return False


def _last_fetch_id(db: Path) -> int:
    """Highest fetches row id: grows by one per committed feed transaction."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT max(id) FROM fetches").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0] or 0)


# --- invariants ---------------------------------------------------------------------------

class Problems(AssertionError):
    pass


def check_database(db: Path, config: Config, farm: Farm | None = None) -> dict[str, int]:
    """Every invariant a crash must not break; returns table counts. Raises
    Problems listing everything that does not hold."""
    # Read-write: FTS5's integrity-check is spelt as an INSERT (it changes nothing).
    conn = sqlite3.connect(db)
    try:
        problems = _problems(conn, config, farm)
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("items", "hits", "feeds", "fetches")}
    finally:
        conn.close()
    if problems:
        raise Problems("\n".join(problems[:20]))
    return counts


def _problems(conn: sqlite3.Connection, config: Config, farm: Farm | None) -> list[str]:
    problems: list[str] = []
    integrity = conn.execute("PRAGMA integrity_check").fetchall()
    if integrity != [("ok",)]:
        problems.append(f"integrity_check: {integrity[:5]}")
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    if fk:
        problems.append(f"foreign_key_check: {fk[:5]}")
    try:
        conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.Error as exc:
        problems.append(f"FTS index differs from the items table: {exc}")
    dupes = conn.execute("SELECT feed_id, key, count(*) FROM items GROUP BY feed_id, key "
                         "HAVING count(*) > 1 LIMIT 5").fetchall()
    if dupes:
        problems.append(f"duplicate (feed_id, key): {dupes}")
    problems += _hit_problems(conn, config)
    if farm is not None:
        problems += _validator_problems(conn, farm)
    return problems


def stored_entries(conn: sqlite3.Connection, where: str = "") -> list[Entry]:
    rows = conn.execute("SELECT id, title, summary, url, published_at, content_hash FROM items "
                        f"{where} ORDER BY id")
    return [Entry(key=str(r[0]), title=r[1], summary=r[2], url=r[3],
                  published_at=from_iso(r[4]) or datetime.now(UTC), content_hash=r[5] or "")
            for r in rows]


# (topic queries, item id, content hash) -> topics implied: items are matched
# once, however many rounds check them.
_IMPLIED: dict[tuple[tuple[str, ...], int, str], frozenset[str]] = {}


def _hit_problems(conn: sqlite3.Connection, config: Config) -> list[str]:
    """The hits table holds exactly what the topics imply for the stored items:
    hits are inserted in their item's transaction, so a crash leaves both or neither."""
    queries = tuple(t.fts_query for t in config.topics)
    entries = stored_entries(conn)
    todo = [e for e in entries if (queries, int(e.key), e.content_hash) not in _IMPLIED]
    found: dict[str, set[str]] = {e.key: set() for e in todo}
    for h in Matcher(config.topics).match(todo):
        found[h.entry_key].add(h.topic_id)
    for e in todo:
        _IMPLIED[(queries, int(e.key), e.content_hash)] = frozenset(found[e.key])
    implied = {(topic, int(e.key)) for e in entries
               for topic in _IMPLIED[(queries, int(e.key), e.content_hash)]}
    stored = set(conn.execute("SELECT topic_id, item_id FROM hits"))
    out = []
    if implied - stored:
        out.append(f"{len(implied - stored)} items lack hits their topics imply, e.g. "
                   f"{sorted(implied - stored)[:3]}")
    if stored - implied:
        out.append(f"{len(stored - implied)} hits their topics do not imply, e.g. "
                   f"{sorted(stored - implied)[:3]}")
    return out


_KEYS_CACHE: dict[bytes, frozenset[str]] = {}


def keys_of(body: bytes, content_type: str, url: str) -> frozenset[str]:
    if body not in _KEYS_CACHE:
        parsed = parse_feed(body, url=url, headers={"content-type": content_type},
                            fetched_at=datetime.now(UTC))
        _KEYS_CACHE[body] = frozenset(e.key for e in parsed.entries)
    return _KEYS_CACHE[body]


def _validator_problems(conn: sqlite3.Connection, farm: Farm) -> list[str]:
    """N14: a stored ETag means the items of the body served under it are stored."""
    out = []
    specs = {f.id: f for f in farm.feeds}
    for feed_id, etag in conn.execute("SELECT id, etag FROM feeds WHERE etag IS NOT NULL"):
        spec = specs[feed_id]
        body = farm.served[feed_id].get(etag)
        if body is None:
            out.append(f"feed {feed_id}: stored ETag {etag!r} was never served")
            continue
        want = keys_of(body, spec.content_type, farm.server.url(spec.path))
        have = {r[0] for r in conn.execute("SELECT key FROM items WHERE feed_id = ?", [feed_id])}
        if want - have:
            out.append(f"feed {feed_id}: ETag {etag!r} saved but {len(want - have)} of its "
                       f"{len(want)} items are missing")
    return out


def missing_current_items(db: Path, farm: Farm) -> dict[str, int]:
    """Per feed, how many items of the body served now are not stored."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for spec in farm.feeds:
            want = keys_of(farm.current_body(spec), spec.content_type,
                           farm.server.url(spec.path))
            have = {r[0] for r in conn.execute("SELECT key FROM items WHERE feed_id = ?",
                                                [spec.id])}
            if want - have:
                out[spec.id] = len(want - have)
        return out
    finally:
        conn.close()


def load(config: Path) -> Config:
    return load_config(config)


def elapsed(t0: float) -> float:
    return time.monotonic() - t0
