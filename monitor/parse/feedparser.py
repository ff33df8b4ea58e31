"""The feedparser path: feedparser run on the guarded UTF-8 document, never
fetching, with its patches (the capped author e-mail rule).

Owns how feedparser is called and patched. Must not fetch (feedparser only
ever sees a BytesIO) nor turn its records into Entries (monitor.parse.entries).
"""

from __future__ import annotations

import io
from typing import Any

import feedparser
from feedparser.mixin import _FeedParserMixin

from monitor.parse import fast as fastparse


def _run_feedparser(data: bytes, language: str | None) -> Any:
    # The body is UTF-8 by now; saying so makes feedparser's own charset
    # detection a no-op. No Content-Location on purpose: feedparser would resolve
    # permalink GUIDs such as "12345" against it, and keys must not change
    # when the feed moves; links are resolved against the feed URL below.
    response_headers = {"content-type": "application/xml; charset=utf-8"}
    if language:
        response_headers["content-language"] = language
    # sanitize_html/resolve_relative_uris are off: we keep plain text only, and
    # each re-parses every HTML field with sgmllib (feedparser's slowest part).
    return feedparser.parse(
        io.BytesIO(data),
        response_headers=response_headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )


# feedparser's e-mail rule for a plain author text is a regex that is
# quadratic in a run of name characters (a 60,000-letter <author> took 13 s).
# It reads only the first fastparse.AUTHOR_SCAN characters here, as in the fast
# path; the author text itself is kept whole (and cut to AUTHOR_MAX later).
_fp_sync_author_detail = _FeedParserMixin._sync_author_detail


def _capped_sync_author_detail(self: Any, key: str = "author") -> None:
    context = self._get_context()
    detail = context.get(f"{key}s", [{}])[-1]
    author = context.get(key)
    if detail or not isinstance(author, str) or len(author) <= fastparse.AUTHOR_SCAN:
        _fp_sync_author_detail(self, key)
        return
    # This branch of feedparser's reads context[key] and writes only the detail.
    context[key] = author[: fastparse.AUTHOR_SCAN]
    try:
        _fp_sync_author_detail(self, key)
    finally:
        context[key] = author


if str(getattr(feedparser, "__version__", "")).startswith("6.0."):  # the code this wraps
    _FeedParserMixin._sync_author_detail = _capped_sync_author_detail  # type: ignore[method-assign]
