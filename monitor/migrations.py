"""The database schema, as an ordered set of sqlite-utils migrations.

Applied on every open, each inside the caller's ``BEGIN IMMEDIATE``
transaction; applied ones are recorded in ``_sqlite_migrations``. Add a new
function at the end to change the schema: never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from monitor.query import TOKENIZER

migrations = Migrations("monitor")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("feeds").create(
        {
            "id": str, "url": str, "config_url": str, "name": str, "tags": str,
            "language": str, "interval": float, "active": int, "title": str,
            "etag": str, "last_modified": str, "body_hash": str, "last_status": int,
            "last_fetch_at": str, "last_success_at": str, "last_new_item_at": str,
            "last_error": str, "last_error_kind": str, "error_count": int,
            "failing_since": str, "next_due_at": str, "retry_after": str,
            "disabled_reason": str, "moved_to": str, "moved_count": int, "bozo_reason": str,
            "created_at": str,
        },
        pk="id",
        not_null={"url", "config_url", "name"},
        defaults={"active": 1, "error_count": 0, "moved_count": 0, "tags": "[]"},
    )
    db.table("items").create(
        {
            "id": int, "feed_id": str, "key": str, "url": str, "canonical_url": str,
            "story_key": str, "title_key": str, "title": str, "summary": str, "author": str,
            "published_at": str, "updated_at": str, "fetched_at": str, "language": str,
            "content_hash": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
        not_null={"feed_id", "key", "title", "summary", "published_at", "fetched_at"},
    )
    db.table("items").create_index(["feed_id", "key"], unique=True)
    db.table("items").create_index(["published_at"])
    db.table("items").create_index(["story_key"])
    db.table("items").create_index(["canonical_url"])
    db.table("items").create_index(["title_key", "published_at"])
    db.table("items").enable_fts(["title", "summary"], create_triggers=True, tokenize=TOKENIZER)

    db.table("topics").create(
        {"id": str, "name": str, "description": str, "query": str, "fts_query": str,
         # the query the stored hits reflect; differs from fts_query until re-applied
         "applied_query": str, "position": int, "active": int, "updated_at": str},
        pk="id",
        defaults={"active": 1},
    )
    db.execute("""
        CREATE TABLE hits (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            topic_id TEXT NOT NULL REFERENCES topics(id),
            matched_at TEXT NOT NULL,
            terms TEXT NOT NULL DEFAULT '[]',
            snippet TEXT NOT NULL DEFAULT '',
            UNIQUE (item_id, topic_id)
        )""")
    db.table("hits").create_index(["topic_id", "matched_at"])
    db.table("hits").create_index(["matched_at"])

    db.table("fetches").create(
        {
            "id": int, "feed_id": str, "started_at": str, "duration": float, "url": str,
            "http_status": int, "outcome": str, "bytes": int, "new_items": int, "hits": int,
            "error_kind": str, "error": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id")],
        not_null={"feed_id", "started_at", "outcome"},
    )
    db.table("fetches").create_index(["feed_id", "id"])

    # One row: the daemon's heartbeat, read by `monitor feeds`/`status`.
    db.table("daemon").create(
        {"id": int, "pid": int, "host": str, "started_at": str, "last_tick_at": str,
         "stopped_at": str},
        pk="id",
    )


@migrations()
def m002_digests(db: Database) -> None:
    # One row per digest produced and delivered: the next digest of the same
    # name starts where the last one ended (max(until) per name).
    db.table("digests").create(
        {"id": int, "name": str, "since": str, "until": str, "generated_at": str,
         "format": str, "stories": int, "output": str, "sent_to": str, "sent_at": str},
        pk="id",
        not_null={"name", "since", "until", "generated_at"},
    )
    db.table("digests").create_index(["name", "until"])
    # Sources health reads each feed's newest items; the digest joins hits to
    # items by primary key and items to their story by the story_key index.
    db.table("items").create_index(["feed_id", "published_at"])


@migrations()
def m003_daemon_jobs(db: Database) -> None:
    # What `monitor status` shows about the daemon's housekeeping and reloads.
    for column, kind in (("config", str), ("tick", float), ("last_maintenance_at", str),
                         ("last_optimize_at", str), ("last_pruned", int),
                         ("last_reload_at", str), ("last_reload_error", str)):
        db.table("daemon").add_column(column, kind)
    # A scheduled digest not yet delivered: written when its run starts, removed
    # once sent, so a failure or a kill mid-send leaves a row the daemon retries
    # (with backoff, across restarts) until the digest goes out.
    db.table("digest_pending").create(
        {"digest_id": str, "scheduled_at": str, "attempts": int, "last_attempt_at": str,
         "next_attempt_at": str, "last_error": str},
        pk="digest_id",
        not_null={"scheduled_at", "next_attempt_at"},
        defaults={"attempts": 0},
    )


@migrations()
def m004_feed_health(db: Database) -> None:
    # When a feed was disabled (HTTP 410), for `monitor feeds` and `status`;
    # a feed disabled before this migration dates from its last fetch, the
    # one that disabled it (a disabled feed is not fetched again).
    db.table("feeds").add_column("disabled_at", str)
    db.execute("UPDATE feeds SET disabled_at = last_fetch_at WHERE disabled_reason IS NOT NULL")
    # Until now a document the parser could not read and that yielded no
    # entry was stored as a success, with its validators and body hash (and
    # without its bozo reason): a 304 or an unchanged body would keep it "ok"
    # for good. Every feed that never gave an item is fetched and parsed once
    # more, and such a document is then reported as failing.
    db.execute("UPDATE feeds SET etag = NULL, last_modified = NULL, body_hash = NULL "
               "WHERE last_error_kind IS NULL AND (bozo_reason IS NOT NULL OR NOT EXISTS "
               "(SELECT 1 FROM items WHERE items.feed_id = feeds.id))")


@migrations()
def m005_item_quota(db: Database) -> None:
    # The daily item quota counts a feed's items fetched in the last 24 hours:
    # without this index that count reads every item the feed ever had.
    db.table("items").create_index(["feed_id", "fetched_at"])
    # What the last full poll of a feed left out by the quota, for `monitor feeds`.
    for column, kind in (("quota_skipped", int), ("quota_limit", int), ("quota_at", str)):
        db.table("feeds").add_column(column, kind)


@migrations()
def m006_alert_outbox(db: Database) -> None:
    # One row per (alert, story), written with the hits in the poll's own
    # transaction: a crash between matching and sending loses no alert, and
    # the unique key is what makes a story alert once whatever carries it.
    # sent_at is set once delivered (as itself or in a summary, summary_key).
    db.execute("""
        CREATE TABLE alert_outbox (
            id INTEGER PRIMARY KEY,
            alert_id TEXT NOT NULL,
            story_key TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL DEFAULT 'story',
            payload TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT,
            summary_key TEXT,
            UNIQUE (alert_id, story_key)
        )""")
    db.execute("CREATE INDEX alert_outbox_pending ON alert_outbox (alert_id, next_try_at) "
               "WHERE sent_at IS NULL")
    db.execute("CREATE INDEX alert_outbox_sent ON alert_outbox (alert_id, sent_at)")
    # Each target's health for `monitor alerts`, `status` and the digest; the
    # secret is never stored, only the name of its variable in the config.
    db.table("alert_state").create(
        {"alert_id": str, "last_sent_at": str, "last_attempt_at": str, "failures": int,
         "failing_since": str, "last_error": str},
        pk="alert_id",
        defaults={"failures": 0},
    )


@migrations()
def m007_verdicts(db: Database) -> None:
    # The desk's triage: one reviewer verdict per (story, topic), kept apart
    # from hits so re-applying a topic never loses what a reader decided.
    db.execute("""
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            story_key TEXT NOT NULL,
            topic_id TEXT NOT NULL,
            verdict TEXT CHECK (verdict IN ('relevant', 'not_relevant')),
            starred INTEGER NOT NULL DEFAULT 0,
            note TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL,
            UNIQUE (story_key, topic_id)
        )""")
    db.table("verdicts").create_index(["topic_id", "verdict"])


@migrations()
def m008_articles(db: Database) -> None:
    # Article text: the linked page's main text of items of teaser feeds.
    # The queue is this table (a row is queued once per item, never again),
    # so a crash or a restart loses no article and fetches none twice.
    db.execute("""
        CREATE TABLE articles (
            item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'ok', 'failed')),
            reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            fetched_at TEXT,
            text TEXT,
            text_hash TEXT,
            chars INTEGER
        )""")
    db.execute("CREATE INDEX articles_status_next ON articles (status, next_try_at)")
    # The text itself is also an items column, so the archive's FTS index
    # (external content over items) searches it as its own column `article`,
    # and plain sqlite3 opens and searches the file without our code.
    db.table("items").add_column("article", str)
    _rebuild_items_fts(db, ("title", "summary", "article"))
    # Where a hit's words were (title, summary, article), comma-separated.
    db.table("hits").add_column("found_in", str)


@migrations()
def m009_article_alerts(db: Database) -> None:
    # Whether a hit the article adds may alert: 0 for a feed's first poll (its
    # backlog), which by the time the article arrives looks like any other poll.
    db.execute("ALTER TABLE articles ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0")


@migrations()
def m010_norm(db: Database) -> None:
    # The normal forms of an item's words (monitor.normalize.norm_document of
    # title, summary and article), a plain column so sqlite3 and Datasette
    # search them as ordinary words: no custom tokenizer opens the file.
    # Existing rows start NULL and still match exactly as before (a query's
    # exact reading is on the other columns); the backfill (`monitor reindex`,
    # and the daemon in short slices) fills them, NULL being its queue: the
    # partial index keeps that queue cheap to find and empties as it goes.
    db.table("items").add_column("norm", str)
    db.execute("CREATE INDEX idx_items_norm_queue ON items (id) WHERE norm IS NULL")
    _rebuild_items_fts(db, ("title", "summary", "article", "norm"))


def _rebuild_items_fts(db: Database, columns: tuple[str, ...]) -> None:
    """items_fts again, as enable_fts makes it (external content over items,
    kept by triggers), on ``columns``; by plain statements, because
    sqlite-utils' executescript would commit the migration's transaction."""
    for trigger in ("items_ai", "items_ad", "items_au"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("DROP TABLE IF EXISTS items_fts")
    cols = ", ".join(f'"{c}"' for c in columns)
    old = ", ".join(f'old."{c}"' for c in columns)
    new = ", ".join(f'new."{c}"' for c in columns)
    db.execute(f'CREATE VIRTUAL TABLE "items_fts" USING FTS5 ({cols}, '
               f"tokenize='{TOKENIZER}', content=\"items\")")
    db.execute("INSERT INTO items_fts (items_fts) VALUES ('rebuild')")
    db.execute(f'CREATE TRIGGER "items_ai" AFTER INSERT ON "items" BEGIN '
               f'INSERT INTO "items_fts" (rowid, {cols}) VALUES (new.rowid, {new}); END')
    db.execute(f'CREATE TRIGGER "items_ad" AFTER DELETE ON "items" BEGIN '
               f'INSERT INTO "items_fts" ("items_fts", rowid, {cols}) '
               f"VALUES('delete', old.rowid, {old}); END")
    db.execute(f'CREATE TRIGGER "items_au" AFTER UPDATE ON "items" BEGIN '
               f'INSERT INTO "items_fts" ("items_fts", rowid, {cols}) '
               f"VALUES('delete', old.rowid, {old}); "
               f'INSERT INTO "items_fts" (rowid, {cols}) VALUES (new.rowid, {new}); END')


@migrations()
def m011_fts_insert_by_store(db: Database) -> None:
    # The insert trigger indexed one row at a time inside the item's own
    # statement, and FTS5 flushes its pending terms at every statement
    # savepoint a trigger opens: 202 against 103 µs an item (real items, one
    # transaction a feed). The store now indexes each transaction's new items
    # in one statement (monitor.store.items.index_new_items); the update and
    # delete triggers stay, those paths being rare.
    db.execute("DROP TRIGGER IF EXISTS items_ai")


# FTS5 merges a level's segments once this many have piled up (its default
# is 4). Measured on 33,750 real items in transactions of 450 (a first poll's
# groups), three runs each: 115-137 µs an item indexed at 4, 81-101 at 16;
# queries read a few more segments until daily maintenance's incremental
# 'merge' (Store.optimize_fts) joins them.
FTS_AUTOMERGE = 16


@migrations()
def m012_fts_automerge(db: Database) -> None:
    db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('automerge', ?)",
               [FTS_AUTOMERGE])
