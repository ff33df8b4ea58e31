"""One article page, fetched through the poll's own Fetcher (deadline, size
cap, redirects, address guard, User-Agent, per-host limit): a PageResult that
says what came back or why nothing usable did. Never raises for network or
HTTP trouble. (Minimal version: h-extract's replaces it.)"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from monitor.fetch.client import Fetcher
from monitor.types import FeedState

_RETRYABLE = frozenset({"timeout", "network", "dns", "connect", "rate-limited", "protocol"})


@dataclass(frozen=True)
class PageResult:
    url: str
    ok: bool
    status: int | None
    content_type: str
    body: bytes
    error_kind: str | None
    error: str | None
    retryable: bool


async def fetch_page(fetcher: Fetcher, url: str) -> PageResult:
    # A shallow copy shares the transport and the slots; only `pages` differs,
    # so an HTML body comes back instead of failing as not-a-feed.
    pages = copy.copy(fetcher)
    pages.pages = True
    r = await pages.fetch(FeedState(id="article", url=url))
    ctype = dict((k.lower(), v) for k, v in r.headers).get("content-type", "")
    if r.failure is not None:
        kind = r.failure.kind
        retry = kind in _RETRYABLE or (kind == "http-status" and (r.status or 0) >= 500)
        mapped = {"http-status": "http", "gone": "http", "rate-limited": "http",
                  "redirect": "redirects", "refused": "address"}.get(kind, kind)
        return PageResult(r.final_url, False, r.status, ctype, b"", mapped,
                          f"{url}: {r.failure.reason}", retry)
    body = r.body or b""
    if "html" not in ctype.lower():
        return PageResult(r.final_url, False, r.status, ctype, b"", "not-html",
                          f"{url}: not an HTML page ({ctype or 'no content type'})", False)
    return PageResult(r.final_url, True, r.status, ctype, body, None, None, False)
