"""From a URL someone gives ``monitor feeds add`` to a feed to subscribe to.

Owns feed discovery on an HTML page (``<link rel="alternate">`` with a feed
type, relative links resolved), the fetch of the URL and of the feed found
through the same polite ``Fetcher`` as polling, the check that the result
parses as a feed, and feed ids derived from titles. It writes nothing:
feedsfile.py edits feeds.yaml, and the feed is first polled by the next poll.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from monitor.config import _check_url, _url_identity
from monitor.errors import ConfigError, FetchError, ParseError
from monitor.fetch import Fetcher
from monitor.parse import parse_feed
from monitor.types import FeedState, FetchResult, ParsedFeed, Settings

# Link types of feeds we read: the XML ones are preferred when a page has
# both, as they were before JSON Feed was read.
XML_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})
JSON_TYPES = frozenset({"application/feed+json", "application/json"})
READABLE_TYPES = XML_TYPES | JSON_TYPES
ID_MAX = 64
_BASE_MAX = 48  # leaves room for a "-N" suffix within ID_MAX

# Russian and Kazakh Cyrillic, so "Власть" becomes "vlast" rather than nothing.
_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p",
     "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya",
     "a", "g", "q", "n", "o", "u", "u", "h", "i"], strict=True))


@dataclass(frozen=True)
class FeedLink:
    """A feed advertised by a page: ``<link rel="alternate" type=... href=...>``."""

    url: str  # absolute
    type: str  # the MIME type, lower case, without parameters
    title: str | None = None

    @property
    def readable(self) -> bool:
        return self.type in READABLE_TYPES


def feed_links(html: bytes, base_url: str) -> list[FeedLink]:
    """The feed links of an HTML page, absolute (against ``<base href>`` or
    ``base_url``), http(s) only, each URL once, in document order."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    base = base_url
    for element in doc.iter("base"):
        href = (element.get("href") or "").strip()
        if href:
            base = urljoin(base_url, href)
            break
    links: list[FeedLink] = []
    seen: set[str] = set()
    for element in doc.iter("link"):
        rel = (element.get("rel") or "").lower().split()
        kind = (element.get("type") or "").split(";")[0].strip().lower()
        href = (element.get("href") or "").strip()
        if "alternate" not in rel or kind not in READABLE_TYPES or not href:
            continue
        url = urljoin(base, href)
        if urlsplit(url).scheme not in ("http", "https") or url in seen:
            continue
        seen.add(url)
        title = " ".join((element.get("title") or "").split()) or None
        links.append(FeedLink(url=url, type=kind, title=title))
    return links


def derive_id(title: str | None, url: str, taken: Collection[str]) -> str:
    """A feed id ([a-z0-9-], at most 64) from the feed's title, else its URL's
    host, else "feed"; made unique against ``taken`` with -2, -3 ..."""
    base = _slug(title or "") or _slug(_host(url)) or "feed"
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _slug(text: str) -> str:
    text = "".join(_CYRILLIC.get(ch, ch) for ch in text.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > _BASE_MAX:
        cut = slug[:_BASE_MAX]
        # At a word's end when there is one not too far back.
        slug = cut.rsplit("-", 1)[0] if "-" in cut[_BASE_MAX // 2:] else cut
    return slug.strip("-")


def _host(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


# --- finding and checking the feed ---------------------------------------------------------

class PageFetcher(Fetcher):
    """The polling Fetcher (deadline, size cap, redirects, address guard,
    User-Agent), except that an HTML page comes back as a body to look into."""

    pages = True


@dataclass(frozen=True)
class FoundFeed:
    url: str  # the feed's URL, to be written to feeds.yaml
    feed: ParsedFeed
    page_url: str | None = None  # the page it was found on, when the URL given was one
    others: tuple[FeedLink, ...] = ()  # the page's other feed links


def find_feed(url: str, settings: Settings, known: Mapping[str, str]) -> FoundFeed:
    """Fetch ``url``; when it is an HTML page, fetch the first RSS/Atom feed it
    links to, else its first JSON Feed. ``known`` maps the URL identity of each configured feed to its id:
    a URL (given, found or redirected to) already configured is refused.

    ConfigError (a URL that is no feed, a page without one, one already
    configured); FetchError when the fetch fails."""
    url = url.strip()
    problem = _check_url(url)
    if problem:
        raise ConfigError(problem, url=url)
    _refuse_known(url, known)
    result = _fetch(url, settings)
    try:
        return FoundFeed(url=url, feed=_parsed(url, result, settings, known))
    except ParseError as exc:
        not_a_feed = exc
    assert result.body is not None
    links = feed_links(result.body, result.final_url)
    readable = sorted((link for link in links if link.readable),
                      key=lambda link: link.type not in XML_TYPES)
    if not readable:
        raise ConfigError(f"not a feed ({not_a_feed.message}), and the page has no "
                          '<link rel="alternate"> to an RSS or Atom feed (or a JSON Feed)', url=url)
    chosen = readable[0]
    _refuse_known(chosen.url, known)
    try:
        feed = _parsed(chosen.url, _fetch(chosen.url, settings), settings, known)
    except ParseError as exc:
        raise ConfigError(f"the feed the page links to is not a feed: {exc.message}",
                          url=chosen.url, page=url) from None
    return FoundFeed(url=chosen.url, feed=feed, page_url=url,
                     others=tuple(link for link in links if link is not chosen))


def _refuse_known(url: str, known: Mapping[str, str]) -> None:
    feed_id = known.get(_url_identity(url))
    if feed_id is not None:
        raise ConfigError(f"already in the config as feed {feed_id}", url=url)


def _fetch(url: str, settings: Settings) -> FetchResult:
    async def once() -> FetchResult:
        async with PageFetcher(settings) as fetcher:
            return await fetcher.fetch(FeedState(id="(new feed)", url=url))

    result = asyncio.run(once())
    if result.failure is not None:
        reason = result.failure.reason
        if "private address" in reason:
            reason += " (settings.allow_private: true allows feeds on your own network)"
        raise FetchError(reason, kind=result.failure.kind, url=url)
    if not result.body:
        raise FetchError("no body in the response", kind="empty", url=url)
    return result


def _parsed(url: str, result: FetchResult, settings: Settings,
            known: Mapping[str, str]) -> ParsedFeed:
    """The fetched body as a feed; ParseError when it is none."""
    assert result.body is not None
    feed = parse_feed(result.body, url=result.final_url, headers=result.headers,
                      fetched_at=result.fetched_at,
                      max_items=settings.max_items_per_feed)
    if not feed.title and not feed.entries:
        raise ConfigError("the feed has neither a title nor any entries", url=url)
    if result.final_url != url:
        _refuse_known(result.final_url, known)
    return feed
