"""A fixed database for the digest tests, built through the Store API with
fixed datetimes: every run gives the same rows, so the rendered digests can
be compared with golden files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.store import PollWrite, Store
from monitor.types import Entry, FeedConfig, FeedUpdate, FetchFailure, Hit, Topic

NOW = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)

FEEDS = (
    FeedConfig(id="rferl", url="https://www.rferl.org/api/", name="RFE/RL (English)"),
    FeedConfig(id="azattyq", url="https://rus.azattyq.org/api/", name="Азаттык"),
    FeedConfig(id="bbc", url="https://feeds.bbci.co.uk/news/world/asia/rss.xml",
               name="BBC News — Asia"),
    FeedConfig(id="eurasianet", url="https://eurasianet.org/feed", name="Eurasianet"),
    FeedConfig(id="broken", url="https://broken.example.org/rss", name="Broken Wire"),
    FeedConfig(id="gone", url="https://gone.example.org/feed.xml", name="Gone Gazette"),
)

TOPICS = (
    Topic(id="kz-labour-protests", name="Labour protests in Kazakhstan",
          description="Strikes, pickets, miners, oil and factory workers",
          query="strike* OR picket*", fts_query="strike* OR picket*"),
    Topic(id="kz-human-rights", name="Repression in Kazakhstan",
          description="Arrests, trials and sentences of activists and journalists",
          query="detain* OR sentenc*", fts_query="detain* OR sentenc*"),
    Topic(id="kz-economy-crisis", name="Kazakhstan's economy under strain",
          description="Inflation, layoffs, tenge devaluation",
          query="tenge OR inflation", fts_query="tenge OR inflation"),
)

CONFIG_YAML = """\
settings:
  allow_private: true
  article_text: never
feeds:
  - {id: rferl, url: "https://www.rferl.org/api/", name: "RFE/RL (English)"}
  - {id: azattyq, url: "https://rus.azattyq.org/api/", name: "Азаттык"}
  - {id: bbc, url: "https://feeds.bbci.co.uk/news/world/asia/rss.xml", name: "BBC News — Asia"}
  - {id: eurasianet, url: "https://eurasianet.org/feed", name: "Eurasianet"}
  - {id: broken, url: "https://broken.example.org/rss", name: "Broken Wire"}
  - {id: gone, url: "https://gone.example.org/feed.xml", name: "Gone Gazette"}
topics:
  - id: kz-labour-protests
    name: "Labour protests in Kazakhstan"
    description: "Strikes, pickets, miners, oil and factory workers"
    query: "strike* OR picket*"
  - id: kz-human-rights
    name: "Repression in Kazakhstan"
    description: "Arrests, trials and sentences of activists and journalists"
    query: "detain* OR sentenc*"
  - id: kz-economy-crisis
    name: "Kazakhstan's economy under strain"
    description: "Inflation, layoffs, tenge devaluation"
    query: "tenge OR inflation"
"""


def entry(key: str, title: str, url: str | None, published: datetime,
          summary: str = "") -> Entry:
    return Entry(key=key, title=title, summary=summary or title, url=url,
                 published_at=published, content_hash=key)


def poll(store: Store, feed_id: str, at: datetime, entries: Sequence[Entry] = (),
         hits: Sequence[Hit] = (), *, failure: FetchFailure | None = None,
         failing_since: datetime | None = None, disabled: str | None = None) -> None:
    store.commit_polls([PollWrite(
        FeedUpdate(feed_id=feed_id, fetched_at=at, next_due_at=at + timedelta(minutes=15),
                   outcome="failed" if failure else ("new" if entries else "not-modified"),
                   http_status=None if failure else 200, failure=failure,
                   failing_since=failing_since, error_count=3 if failure else 0,
                   disabled_reason=disabled, request_url=f"https://example.org/{feed_id}"),
        new=entries, hits=hits)])


def hit(topic: str, key: str, terms: Sequence[str], snippet: str) -> Hit:
    return Hit(topic_id=topic, entry_key=key, terms=tuple(terms), snippet=snippet)


LABOUR, RIGHTS, ECONOMY = (t.id for t in TOPICS)


def build_db(path: Path) -> Path:
    """The fixed database: a day with five stories (one from three feeds, one in
    two topics), a previous day, two weeks of history, and sources in every
    state of health (ok, silent, failing, disabled)."""
    with Store(path) as store:
        store.sync_feeds(FEEDS, NOW - timedelta(days=40))
        store.sync_topics(TOPICS, NOW - timedelta(days=40))
        _history(store)
        _previous_day(store)
        _today(store)
        _health(store)
    return path


def _history(store: Store) -> None:
    # Eurasianet published daily, then fell silent ten days ago.
    for n in range(20):
        at = NOW - timedelta(days=30 - n, hours=3)
        poll(store, "eurasianet", at,
             [entry(f"ea-{n}", f"Central Asia weekly briefing number {n}",
                    f"https://eurasianet.org/briefing-{n}", at - timedelta(hours=1))])
    # Scattered hits over the last two weeks, for the volume charts.
    for days, topic, word in ((13, ECONOMY, "tenge"), (9, ECONOMY, "inflation"),
                              (6, LABOUR, "strike"), (4, ECONOMY, "tenge"),
                              (3, LABOUR, "picket"), (3, LABOUR, "strike")):
        at = NOW - timedelta(days=days, hours=2)
        key = f"hist-{days}-{word}"
        poll(store, "bbc", at,
             [entry(key, f"Kazakhstan {word} report from day minus {days}",
                    f"https://www.bbc.com/news/{key}", at - timedelta(minutes=30))],
             [hit(topic, key, [word], f"Kazakhstan [[{word}]] report from day minus {days}")])


def _previous_day(store: Store) -> None:
    at = SINCE - timedelta(hours=5)
    poll(store, "rferl", at, [
        entry("prev-1", "Bus drivers strike in Shymkent over pay cuts",
              "https://www.rferl.org/a/shymkent-bus-strike/1.html", at - timedelta(hours=1)),
        entry("prev-2", "Tenge slides to a record low against the dollar",
              "https://www.rferl.org/a/tenge-record-low/2.html", at - timedelta(hours=2)),
    ], [
        hit(LABOUR, "prev-1", ["strike"], "Bus drivers [[strike]] in Shymkent over pay cuts"),
        hit(ECONOMY, "prev-2", ["Tenge"], "[[Tenge]] slides to a record low against the dollar"),
    ])
    poll(store, "azattyq", at + timedelta(hours=1), [
        entry("prev-3", "Steelworkers picket the Temirtau plant for a third day",
              "https://rus.azattyq.org/a/temirtau-picket/3.html", at - timedelta(hours=3)),
    ], [hit(LABOUR, "prev-3", ["picket"], "Steelworkers [[picket]] the Temirtau plant for "
                                          "a third day")])


def _today(store: Store) -> None:
    t1 = SINCE + timedelta(hours=3)
    strike = "Miners strike in Karaganda over unpaid wages"
    poll(store, "rferl", t1, [
        entry("a-rferl", strike, "https://www.rferl.org/a/karaganda-miners-strike/33001.html",
              t1 - timedelta(minutes=40),
              "Coal miners at the Kostenko mine went on strike on Monday demanding back pay."),
        entry("b-rferl", "Activist detained after protest against the strike ban in Almaty",
              "https://www.rferl.org/a/almaty-activist-detained/33002.html",
              t1 - timedelta(minutes=10)),
    ], [
        hit(LABOUR, "a-rferl", ["strike", "miners"],
            "Coal [[miners]] at the Kostenko mine went on [[strike]] on Monday demanding back…"),
        hit(LABOUR, "b-rferl", ["strike"],
            "Activist detained after protest against the [[strike]] ban in Almaty"),
        hit(RIGHTS, "b-rferl", ["detained"],
            "Activist [[detained]] after protest against the strike ban in Almaty"),
    ])
    t2 = SINCE + timedelta(hours=6)
    poll(store, "bbc", t2, [
        entry("a-bbc", strike, "https://www.bbc.com/news/world-asia-karaganda?at_medium=RSS",
              t1 - timedelta(minutes=5)),
        entry("d-bbc", "Oil workers in Zhanaozen hold a picket outside the akimat",
              "https://www.bbc.com/news/world-asia-zhanaozen", t2 - timedelta(minutes=20)),
    ], [
        hit(LABOUR, "a-bbc", ["strike", "Miners"], "[[Miners]] [[strike]] in Karaganda over "
                                                    "unpaid wages"),
        hit(LABOUR, "d-bbc", ["picket"], "Oil workers in Zhanaozen hold a [[picket]] outside "
                                         "the akimat"),
    ])
    t3 = SINCE + timedelta(hours=9)
    poll(store, "azattyq", t3, [
        # Same article as RFE/RL's (tracking parameter aside): the same story.
        entry("a-azattyq", "Шахтёры Караганды объявили забастовку",
              "https://www.rferl.org/a/karaganda-miners-strike/33001.html?utm_source=rss",
              t1 + timedelta(hours=1)),
        entry("c-azattyq", "Журналиста приговорили к семи годам в Астане",
              "https://rus.azattyq.org/a/journalist-sentenced/33003.html",
              t3 - timedelta(hours=1)),
    ], [
        hit(RIGHTS, "c-azattyq", ["приговорили"],
            "Журналиста [[приговорили]] к семи годам в Астане"),
    ])


def _health(store: Store) -> None:
    ok_at = NOW - timedelta(minutes=30)
    for feed_id in ("rferl", "azattyq", "bbc", "eurasianet"):
        poll(store, feed_id, ok_at)
    poll(store, "broken", NOW - timedelta(minutes=20),
         failure=FetchFailure("http-status", "HTTP 503 Service Unavailable"),
         failing_since=NOW - timedelta(days=2, hours=4))
    poll(store, "gone", NOW - timedelta(days=3),
         failure=FetchFailure("gone", "HTTP 410 Gone"), failing_since=NOW - timedelta(days=3),
         disabled="HTTP 410 Gone: the publisher removed this feed")
