"""The main text of an article page (trafilatura, offline), cleaned as every
text from a server is (monitor.clean). Never raises on hostile input.
(Minimal version: h-extract's replaces it.)"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from monitor.clean import clean_lines


@dataclass(frozen=True)
class ArticleText:
    ok: bool
    text: str
    reason: str | None
    text_hash: str


def extract_article(body: bytes, url: str, *, min_chars: int = 300) -> ArticleText:
    import trafilatura  # heavy: imported only when an article is extracted

    try:
        text = trafilatura.extract(body, url=url, include_comments=False,
                                   include_tables=False, favor_precision=True)
    except Exception:  # a hostile page must not stop the cycle
        return ArticleText(False, "", "parse", "")
    text = clean_lines(text or "").strip()
    if not text:
        return ArticleText(False, "", "empty", "")
    if len(text) < min_chars:
        return ArticleText(False, "", "too-short", "")
    return ArticleText(True, text, None, hashlib.sha256(text.encode()).hexdigest())
