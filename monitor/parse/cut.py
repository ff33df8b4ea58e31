"""The caps on what one document may cost: the per-field lengths kept, the
input read per field, and the entries cut before any parser sees a document
with far more entries than are kept.

Owns the limits and the byte-level entries cut. Must not decode, parse or
fetch: it sees UTF-8 bytes and gives back bytes.
"""

from __future__ import annotations

import re

TITLE_MAX = 1_000
SUMMARY_MAX = 10_000
AUTHOR_MAX = 1_000
KEY_MAX = 512
URL_MAX = 4_096
# Input read per field, as a multiple of the text kept: bounds the work one
# field can cost while leaving far more markup than the kept text needs.
_INPUT_FACTOR = 32


# ------------------------------------------------------------- entry cap
#
# Both parsers read a whole document before any entry is dropped: 1.4 million
# empty <item/> (9.8 MB) took 17 s and 320 MB to keep 1,000. So a document with
# more entry start tags than _ENTRY_FACTOR times the cap loses the ones past
# that, from the first extra start tag to the end of the last entry, before
# any parser sees it: what follows the entries (the closing tags) stays, so the
# document stays well-formed. Twice the cap, so that duplicates among the
# first entries still leave max_items distinct ones.
_ENTRY_FACTOR = 2
_ENTRY_TAG = re.compile(
    rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)"
    rb"|<(/?)((?:[A-Za-z_][-\w.]*:)?(?:item|entry))(?=[\s/>])[^<>]*+>",
    re.DOTALL,
)


# A JSON body (after the prolog the decoder may put in front): its entries are
# not XML tags, and cutting at an `<item` inside a content_html string would
# break the JSON; the JSON Feed parser keeps max_items itself.
_JSON_START = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>)?\s*[\[{]")


def _cut_entries(data: bytes, keep: int) -> bytes:
    """data without the entries after the first ``keep`` (see above)."""
    if _JSON_START.match(data):
        return data
    # A fast upper bound of the start tags: most documents stop here.
    if sum(data.count(tag) for tag in (b"<item", b"<entry", b":item", b":entry")) <= keep:
        return data
    cut, starts = -1, 0
    for match in _ENTRY_TAG.finditer(data):
        if match.group(2) is not None and not match.group(1):
            starts += 1
            if starts > keep:
                cut = match.start()
                break
    if cut == -1:
        return data
    end = _last_entry_end(data, cut)
    return data[:cut] + data[end:] if end > cut else data


def _last_entry_end(data: bytes, start: int) -> int:
    """Where the last entry after ``start`` ends: looked for in ever larger
    tails, since only the closing tags of the document usually follow it."""
    size = 1 << 16
    while True:
        begin = max(start, len(data) - size)
        end = -1
        for match in _ENTRY_TAG.finditer(data, begin):
            if match.group(2) is not None and (match.group(1) or match.group(0).endswith(b"/>")):
                end = match.end()
        if end != -1 or begin == start:
            return end
        size *= 4
