"""The floor of the poll benchmark: the shortest straight-line script that does
the essential work of a poll, so every tool's figure shows its distance to
what the machine allows.

It fetches every URL of a file concurrently as `monitor poll` does (20 at a
time, at most 2 per host, HTTP/1.1 kept alive, ETag/Last-Modified sent back),
parses each body with lxml (recovering, as a lenient reader must), and inserts
each feed's items in its own transaction into SQLite (WAL) with an FTS5 index
over title and summary. No HTML-to-text, no matching, no story keys, no dates,
no fetch log: what it leaves out is what monitor does on top.

    python -m benchmarks.floor --db floor.db --urls urls.txt   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from lxml import etree

CONCURRENCY, PER_HOST = 20, 2  # monitor's settings in the poll benchmark
SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS feeds (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, feed TEXT, key TEXT, title TEXT,
    link TEXT, summary TEXT, UNIQUE (feed, key));
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5 (title, summary, content = items,
    content_rowid = id, tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS items_ai AFTER INSERT ON items BEGIN
    INSERT INTO items_fts (rowid, title, summary) VALUES (new.id, new.title, new.summary); END;
"""
PARSER = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=True)
ITEMS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry")


def items_of(body: bytes) -> list[tuple[str, str, str, str]]:
    """(key, title, link, summary) of every item of an RSS 0.9x/1.0/2.0 or Atom body."""
    root = etree.fromstring(body, PARSER)
    if root is None:
        return []
    out = []
    for el in root.iter(*ITEMS):
        link = el.findtext("{*}link") or ""
        if not link.strip():
            href = el.find("{*}link[@href]")
            link = href.get("href", "") if href is not None else ""
        title = el.findtext("{*}title") or ""
        summary = (el.findtext("{*}description") or el.findtext("{*}summary")
                   or el.findtext("{*}encoded") or el.findtext("{*}content") or "")
        key = el.findtext("{*}guid") or el.findtext("{*}id") or link or title
        out.append((key.strip(), title.strip(), link.strip(), summary))
    return out


def fetch(pool: urllib3.PoolManager, url: str, validators: tuple[str | None, str | None]
          ) -> tuple[str, int, dict[str, str], list[tuple[str, str, str, str]]]:
    """One conditional GET and, for a 200, its parsed items (in this worker thread:
    lxml parses without the GIL)."""
    etag, modified = validators
    headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", modified)) if v}
    resp = pool.request("GET", url, headers=headers, timeout=60.0, retries=False)
    items = items_of(resp.data) if resp.status == 200 and resp.data else []
    return url, resp.status, dict(resp.headers), items


def poll(db: str, urls: Sequence[str]) -> dict[str, Any]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(SCHEMA)
    known = {u: (e, m) for u, e, m in conn.execute("SELECT url, etag, last_modified FROM feeds")}
    new = not_modified = errors = 0
    t0 = time.perf_counter()
    # block=True: a host's pool hands out at most PER_HOST connections at once.
    pool = urllib3.PoolManager(num_pools=len(urls) + 1, maxsize=PER_HOST, block=True)
    with ThreadPoolExecutor(CONCURRENCY) as workers:
        jobs = [workers.submit(fetch, pool, u, known.get(u, (None, None))) for u in urls]
        for job in jobs:
            try:
                url, status, headers, items = job.result()
            except (urllib3.exceptions.HTTPError, etree.Error, ValueError):
                errors += 1
                continue
            if status == 304:
                not_modified += 1
                continue
            if status != 200:
                errors += 1
                continue
            conn.execute("BEGIN")
            # rowcount of executemany: the rows inserted, not the trigger's FTS rows.
            inserted = conn.executemany("INSERT OR IGNORE INTO items (feed, key, title, link, summary) "
                             "VALUES (?, ?, ?, ?, ?)", [(url, *item) for item in items]).rowcount
            conn.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?)",
                         (url, headers.get("ETag"), headers.get("Last-Modified")))
            conn.execute("COMMIT")
            new += inserted
    seconds = time.perf_counter() - t0
    conn.close()
    return {"feeds": len(urls), "seconds": seconds, "new_items": new,
            "not_modified": not_modified, "errors": errors}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--urls", required=True, help="a file of URLs, one a line")
    args = ap.parse_args(argv)
    with open(args.urls, encoding="utf-8") as f:
        urls = f.read().split()
    print(json.dumps(poll(args.db, urls)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
