"""The SQLite database: every SQL statement of the monitor, one module per
table family, composed into one ``Store`` (the way lemon24/reader's storage
composes its mixins).

- db.py: the connection (WAL, busy timeout, quick check, migrations), the
  write transaction, storage errors, to_iso/from_iso, db_path;
- feeds.py: the config's feeds, due feeds, re-enabling;
- items.py: the poll's writes (items, story keys, hits, feed state, fetch log);
- articles.py: the article-text queue, its results and the hits they add;
- topics.py: the config's topics, stale topics, re-applying them;
- search.py: full-text search of the archive;
- reports.py: `feeds`, `hits`, `status`, counts, and the digest's selects;
- maintenance.py: pruning, merging the index, the WAL;
- desk.py: the desk's triage verdicts and its story reads;
- jobs.py: the daemon's heartbeat, digests pending and recorded;
- alerts.py: the alert outbox (written with the hits) and each target's health;
- models.py: the typed rows the reports read.

Nothing outside this package runs SQL on the monitor database. It never does
HTTP and never imports the matcher's machinery (only its marker constants).
The migrations stay in monitor/migrations.py.
"""

from __future__ import annotations

# First: sqlite-utils without numpy (see there).
from monitor.store import _sqlite_utils  # noqa: F401
from monitor.store.alerts import AlertsMixin, OutboxRow
from monitor.store.articles import ArticlesMixin, QueuedArticle
from monitor.store.db import BUSY_TIMEOUT, DEFAULT_DB, StoreBase, db_path, from_iso, to_iso
from monitor.store.desk import VERDICTS, DeskMixin
from monitor.store.feeds import FeedsMixin
from monitor.store.items import FETCH_LOG_PER_FEED, FETCH_LOG_TRIM_EVERY, ItemsMixin, PollWrite
from monitor.store.maintenance import MaintenanceMixin
from monitor.store.models import (
    Carrier,
    DigestFeed,
    DigestHit,
    FeedHealth,
    SearchResult,
    StoryHit,
)
from monitor.store.reports import ReportsMixin
from monitor.store.search import SEARCH_WINDOW, SearchMixin
from monitor.store.topics import TopicsMixin

__all__ = [
    "BUSY_TIMEOUT", "DEFAULT_DB", "FETCH_LOG_PER_FEED", "FETCH_LOG_TRIM_EVERY", "SEARCH_WINDOW", "VERDICTS",
    "Carrier", "DigestFeed", "DigestHit", "FeedHealth", "OutboxRow", "PollWrite", "QueuedArticle", "SearchResult", "Store",
    "StoryHit", "db_path", "from_iso", "to_iso",
]


class Store(FeedsMixin, TopicsMixin, ItemsMixin, ArticlesMixin, SearchMixin, ReportsMixin,
            MaintenanceMixin, AlertsMixin, DeskMixin, StoreBase):
    """One connection to the monitor database. Not shared between threads."""
