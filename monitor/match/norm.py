"""The norm column in the live matcher: an item's normal forms, and back to its words.

Owns what the matcher does with monitor.normalize: the value of a batch row's
``norm`` column (norm_document of the entry's title, summary and article, the
same call the archive makes), its token text for the first stage (read in
one pass with the raw tokens: see prefilter._Index), and the way back from a
hit in the norm column to the raw words of the item that carried it: the
norm column holds one normal
form per word with a non-empty one, title words, then summary, then article,
in normalize.tokens' order, so its n-th word is the n-th such raw word.
Evidence shown to users is made of raw words only. Decides nothing about
which topics match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.match.tokens import token_words
from monitor.normalize import norm_with, normalize_token, tokens
from monitor.query import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN
from monitor.types import Entry

# The word pattern of normalize.tokens, with positions (see word_spans).
_WORD_RE = re.compile(r"(?:[^\W_]|[\u0300-\u036f\ue000-\uf8ff])+"
                      r"(?:['’ʼ](?:[^\W_]|[\u0300-\u036f])+)*")
_SPLIT_RE = re.compile(r"['’ʼ]")
_MARKER_RE = re.compile(re.escape(HIGHLIGHT_OPEN) + "|" + re.escape(HIGHLIGHT_CLOSE))


def fields(entry: Entry) -> tuple[str, str, str]:
    """What norm_document reads of an entry: title, summary, article."""
    return entry.title or "", entry.summary or "", entry.article or ""


def entry_norm(entry: Entry) -> str:
    """The entry's ``norm`` column, as the archive stores it: norm_document of
    title, summary and article, the first two as made at parse (Entry.norm)."""
    return norm_with(entry.norm, *fields(entry))


# Characters the tokenizer keeps as they are (checked by a test): a norm
# column made of these alone is its own token text.
_PLAIN_NORM_RE = re.compile("[a-z0-9\u0430-\u044f ]*")


def norm_words(norm: str) -> bytes:
    """tokens.token_words of a norm column value, for the first stage."""
    if not norm.isascii() and _PLAIN_NORM_RE.fullmatch(norm):  # its words are its tokens
        return norm.encode()
    return token_words(norm)


def word_spans(text: str, words: Sequence[str] | None = None,
               ) -> tuple[tuple[int, int], ...] | None:
    """Where each word of ``normalize.tokens(text)`` (``words``, when made
    already) is in ``text``; None when the two do not line up (text that is
    not NFC)."""
    spans: list[tuple[int, int]] = []
    for m in _WORD_RE.finditer(text):
        word = m.group(0)
        if _SPLIT_RE.search(word) and tokens(word) != [word]:
            pos = m.start()
            for part in _SPLIT_RE.split(word):
                if part:
                    spans.append((pos, pos + len(part)))
                pos += len(part) + 1
        else:
            spans.append(m.span())
    if [text[a:b] for a, b in spans] != list(tokens(text) if words is None else words):
        return None
    return tuple(spans)


class Memo:
    """What mark() reads of a batch's items, kept for the batch's life: an
    item that hits many topics (a long article at 1,000 topics) has its words
    read once, and nothing outlives the batch (a text may be a whole article)."""

    def __init__(self) -> None:
        self._words: dict[str, tuple[str, ...]] = {}
        self._spans: dict[str, tuple[tuple[int, int], ...] | None] = {}
        self._order: dict[tuple[str, ...], tuple[tuple[int, int], ...]] = {}

    def words(self, text: str) -> tuple[str, ...]:
        found = self._words.get(text)
        if found is None:
            found = self._words[text] = tuple(tokens(text))
        return found

    def spans(self, text: str) -> tuple[tuple[int, int], ...] | None:
        if text not in self._spans:
            self._spans[text] = word_spans(text, self.words(text))
        return self._spans[text]

    def order(self, texts: Sequence[str]) -> tuple[tuple[int, int], ...]:
        """For each word of the norm column of ``texts``, in order: (field,
        index of the word among normalize.tokens of that field)."""
        key = tuple(texts)
        found = self._order.get(key)
        if found is None:
            found = self._order[key] = tuple(
                (f, k) for f, text in enumerate(key)
                for k, w in enumerate(self.words(text)) if normalize_token(w))
        return found


def marked_words(norm_hl: str) -> list[int]:
    """The indices of the space-separated words of a highlighted norm column
    that hold a marked token (a marked phrase may span several)."""
    found: dict[int, None] = {}
    word = pos = 0
    start: int | None = None
    # Words are counted by the spaces before each marker, not split out: a
    # long article's norm column has thousands of words and a few marks.
    for m in _MARKER_RE.finditer(norm_hl):
        word += norm_hl.count(" ", pos, m.start())
        pos = m.start()
        if m.group(0) == HIGHLIGHT_OPEN:
            if start is None:
                start = word
        else:
            found.update(dict.fromkeys(range(word if start is None else start, word + 1)))
            start = None
    if start is not None:
        found.update(dict.fromkeys(range(start, word + norm_hl.count(" ", pos) + 1)))
    return list(found)


@dataclass(frozen=True)
class Marked:
    """Raw columns highlighted with the words a norm hit stands for."""

    columns: tuple[str, str, str]
    folded: tuple[str, ...]  # raw words matched only through their normal form


def _intervals(highlighted: str) -> tuple[str, list[tuple[int, int]]]:
    """``highlighted`` without markers, and the marked intervals of it."""
    plain: list[str] = []
    marks: list[tuple[int, int]] = []
    pos = length = 0
    start: int | None = None
    for m in _MARKER_RE.finditer(highlighted):
        piece = highlighted[pos:m.start()]
        plain.append(piece)
        length += len(piece)
        if m.group(0) == HIGHLIGHT_OPEN:
            start = length
        elif start is not None:
            marks.append((start, length))
            start = None
        pos = m.end()
    plain.append(highlighted[pos:])
    return "".join(plain), marks


def _render(plain: str, marks: Sequence[tuple[int, int]]) -> str:
    out: list[str] = []
    last = 0
    for a, b in sorted(marks):
        if a < last:
            continue
        out += [plain[last:a], HIGHLIGHT_OPEN, plain[a:b], HIGHLIGHT_CLOSE]
        last = b
    out.append(plain[last:])
    return "".join(out)


def mark(columns: Sequence[str], norm_hl: str, texts: Sequence[str],
         memo: Memo | None = None) -> Marked:
    """``columns`` (title, summary, article as highlight() gave them, each of
    ``texts``, the entry's fields) with the raw words behind the marked words
    of ``norm_hl`` marked too. A field whose words cannot be placed keeps its
    highlight; its words are still named in ``folded``."""
    memo = memo if memo is not None else Memo()
    hit = marked_words(norm_hl)
    order = memo.order(texts)
    wanted: dict[int, set[int]] = {}
    for n in hit:
        if n < len(order):
            f, k = order[n]
            wanted.setdefault(f, set()).add(k)
    out = list(columns)
    folded: dict[str, None] = {}
    for f, ks in sorted(wanted.items()):
        words = memo.words(texts[f])
        plain, marks = _intervals(columns[f] if f < len(columns) else "")
        spans = memo.spans(plain) if unicodedata.is_normalized("NFC", plain) else None
        if spans is None or (plain != texts[f]
                             and tuple(plain[a:b] for a, b in spans) != words):
            folded.update((words[k].lower(), None) for k in sorted(ks) if k < len(words))
            continue
        new = []
        for k in sorted(ks):
            a, b = spans[k]
            if not any(x <= a and b <= y for x, y in marks):
                new.append((a, b))
                folded[plain[a:b].lower()] = None
        if new:
            out[f] = _render(plain, [*marks, *new])
    return Marked((out[0], out[1], out[2]), tuple(folded))
