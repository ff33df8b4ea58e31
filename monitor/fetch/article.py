"""One article page fetched through the polling Fetcher, as a PageResult.

Owns the GET of an item's link for its article text (issue 15): the same
``Fetcher`` object the poll uses, hence its transport (address guard at
connect time), its global and per-host slots, its wall-clock deadline, its
body cap counted while inflating (gzip/deflate/br bombs stop at the cap), its
redirect rules (each hop vetted, https never to http, at most
``max_redirects``) and its User-Agent; only Accept asks for HTML, and no
conditional validators are sent. A body that is not HTML, by its
Content-Type or by its first bytes, is a failure. Network and HTTP trouble
never raises: every failure is a ``PageResult`` with a kind, whether to retry,
and a reason naming the URL.

Uses the Fetcher's private parts on purpose (same package): a second client
would have its own limits, and the per-host limit and the guard must be the
poll's. Must not extract text (monitor.parse.article) nor store anything.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import httpx

from monitor.clean import clean_text, clean_url
from monitor.fetch.client import Fetcher, _Progress
from monitor.fetch.failure import _Failed, _short
from monitor.fetch.guard import AddressRefused
from monitor.fetch.http import _parse_url, _redirect_target, _status_reason
from monitor.types import FetchFailure

ErrorKind = Literal["timeout", "http", "not-html", "too-large", "address", "redirects",
                    "network", "decode"]

ACCEPT_HTML: Final = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
# Types a server sends for anything when it does not know: the bytes decide.
_UNSURE_TYPES: Final = frozenset({"", "application/octet-stream", "text/plain",
                                  "binary/octet-stream"})
_HTML_START = re.compile(
    rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title)",
    re.IGNORECASE | re.DOTALL)
_BOM: Final = b"\xef\xbb\xbf"
_SNIFF: Final = 4096


@dataclass(frozen=True)
class PageResult:
    url: str  # final URL after redirects
    ok: bool
    status: int | None  # HTTP status, None when no response
    content_type: str
    body: bytes  # b"" unless ok
    error_kind: ErrorKind | None
    error: str | None  # human reason, names the URL
    retryable: bool  # timeout/5xx/network: True; 4xx/not-html/address/too-large: False


class _NotHtml(Exception):
    """Internal: a 2xx body that is no HTML page."""


async def fetch_page(fetcher: Fetcher, url: str) -> PageResult:
    """GET ``url`` as an HTML page through ``fetcher`` (inside its ``async
    with``), within its limits. Never raises for network or HTTP problems."""
    if fetcher._transport is None:
        raise RuntimeError("fetch_page called outside 'async with Fetcher(...)'")
    settings = fetcher._settings
    async with fetcher._host_slot(url), fetcher._slots:
        p = _Progress(url=url, started=datetime.now(UTC), clock=time.monotonic())
        try:
            async with asyncio.timeout(settings.timeout):
                content_type, body = await _exchange(fetcher, url, p)
        except _NotHtml as exc:
            return _failure(url, p, content_type_of(p), "not-html", str(exc), retryable=False)
        except Exception as exc:  # one page's failure never stops the caller
            kind, reason, retryable = _classify(fetcher, exc, p)
            return _failure(url, p, content_type_of(p), kind, reason, retryable=retryable)
    return PageResult(url=p.url, ok=True, status=p.status, content_type=content_type,
                      body=body, error_kind=None, error=None, retryable=False)


async def _exchange(fetcher: Fetcher, url: str, p: _Progress) -> tuple[str, bytes]:
    assert fetcher._transport is not None
    target = _parse_url(url)
    await fetcher._check_target(target, previous=None)
    headers = [(k, v) for k, v in fetcher._headers if k.lower() != b"accept"]
    headers.append((b"Accept", ACCEPT_HTML.encode()))
    while True:
        request = httpx.Request("GET", target, headers=headers,
                                extensions={"timeout": fetcher._timeouts})
        resp = await fetcher._transport.handle_async_request(request)
        resp.request = request
        try:
            p.url, p.status = str(resp.url), resp.status_code
            p.headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                              for k, v in resp.headers.raw)
            following = _redirect_target(resp)
            if following is None:
                return await _final(fetcher, resp, p)
        finally:
            await resp.aclose()
        p.hops += 1
        if p.hops > fetcher._settings.max_redirects:
            raise _Failed("redirect", f"more than {fetcher._settings.max_redirects} redirects")
        await fetcher._check_target(following, previous=target)
        target = following


async def _final(fetcher: Fetcher, resp: httpx.Response, p: _Progress) -> tuple[str, bytes]:
    status = resp.status_code
    if not 200 <= status < 300:
        raise _Failed("http-status", _status_reason(resp))
    content_type = resp.headers.get("content-type", "")
    if _media_type(content_type) not in _HTML_TYPES | _UNSURE_TYPES:
        # Known not to be a page: its body is not worth downloading.
        raise _NotHtml(f"not an HTML page (Content-Type {_short(content_type, 60)})")
    body = await fetcher._read_body(resp, p)
    if not body:
        raise _NotHtml("empty response, not an HTML page")
    if not is_html(content_type, body):
        raise _NotHtml(f"not an HTML page (Content-Type {_short(content_type or 'none', 60)}, "
                       "body does not start like HTML)")
    return content_type, body


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_html(content_type: str, body: bytes) -> bool:
    """Whether a body is an HTML page: an HTML media type and not binary (NULs in
    its first bytes: a file served as text/html), or an unsure media type
    and a body that starts like HTML."""
    head = body[:_SNIFF].removeprefix(_BOM)
    if head.count(b"\x00") * 100 > len(head):  # binary; a stray NUL in a page is not
        return False
    if _media_type(content_type) in _HTML_TYPES:
        return True
    return _HTML_START.match(head) is not None


def content_type_of(p: _Progress) -> str:
    return next((v for k, v in p.headers if k.lower() == "content-type"), "")


# FetchFailure kinds -> (PageResult kind, retryable).
_KINDS: Final[dict[str, tuple[ErrorKind, bool]]] = {
    "timeout": ("timeout", True),
    "too-large": ("too-large", False),
    "redirect": ("redirects", False),
    "dns": ("network", True),
    "tls": ("network", True),
    "refused": ("network", True),
    "protocol": ("network", True),
    "empty": ("not-html", False),
    "not-a-feed": ("not-html", False),
}


def _classify(fetcher: Fetcher, exc: Exception, p: _Progress) -> tuple[ErrorKind, str, bool]:
    if isinstance(exc, AddressRefused):
        return "address", exc.message, False
    if isinstance(exc, _Failed) and exc.failure.kind == "refused":
        return "address", exc.failure.reason, False  # an unsupported scheme or invalid URL
    failure: FetchFailure = fetcher._classify(exc, p)
    if failure.kind == "protocol" and "Content-Encoding" in failure.reason:
        return "decode", failure.reason, False
    if failure.kind in ("http-status", "gone", "rate-limited"):
        status = p.status or 0
        return "http", failure.reason, status >= 500 or status == 429
    kind, retryable = _KINDS.get(failure.kind, ("network", True))
    return kind, failure.reason, retryable


def _failure(url: str, p: _Progress, content_type: str, kind: ErrorKind, reason: str,
             *, retryable: bool) -> PageResult:
    shown = clean_url(url) or ""
    error = clean_text(f"{shown}: {reason}")
    return PageResult(url=p.url, ok=False, status=p.status, content_type=content_type,
                      body=b"", error_kind=kind, error=error, retryable=retryable)
