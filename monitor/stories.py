"""Story identity: canonical URLs and normalised titles (pure, no I/O).

Two items are the same story when their canonical URLs are equal, or when their
normalised titles are equal and they were published within ``STORY_WINDOW`` of
each other. The store assigns ``items.story_key`` with these functions.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

STORY_WINDOW = 3 * 86400.0  # seconds

# Query parameters that only say how a reader arrived, never which page it is.
_TRACKING_EXACT = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "igshid", "ref_src", "ref_url", "cmpid", "ocid", "_ga", "_gl", "spm", "smid", "smtyp",
    "at_medium", "at_campaign", "ito", "xtor", "rss", "feed", "from_rss", "ns_mchannel",
    "ns_source", "ns_campaign", "ns_linkname", "ns_fee",
})
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_")


def _is_tracking(name: str) -> bool:
    lname = name.lower()
    return lname in _TRACKING_EXACT or lname.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """Lower-case scheme and host, no default port, fragment or tracking
    parameters, remaining parameters sorted; None for non-http(s) URLs."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not _is_tracking(k)))
    path = parts.path or "/"
    # http and https of the same page are one story: feeds disagree on the scheme.
    return urlunsplit(("https", host, path, query, ""))


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_title(title: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a headline."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", title).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", text).strip()


def title_key(title: str) -> str | None:
    """A key for the normalised title; None when too short to identify a story."""
    norm = normalise_title(title)
    if len(norm.split()) < 4:
        return None
    return "t:" + hashlib.sha256(norm.encode()).hexdigest()[:24]


def url_key(url: str | None) -> str | None:
    canon = canonical_url(url)
    return "u:" + hashlib.sha256(canon.encode()).hexdigest()[:24] if canon else None
