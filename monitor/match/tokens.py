"""Tokens without SQLite: the tokenizer of the cheap first stage of percolation.

Owns a Python copy of SQLite's unicode61 tokenizer (query.TOKENIZER) that is
exact because it is learned from SQLite itself, one character at a time, and
remembered for the life of the process (the table and a small cache of
non-ASCII words are the only state of the matcher outside a call). It must
not decide anything about topics or touch the archive database.

Indexing every item of a batch in FTS5 costs tens of microseconds per item,
and nearly every item of a real feed matches no topic. So the tokens of each
item are first computed in Python, exactly as the unicode61 tokenizer makes
them, and only items that some topic could match go into FTS5. Exactness
matters: a token set that missed a token the tokenizer makes would drop a
true hit. The per-character rules (which characters separate tokens, what
each one folds to) are therefore not re-implemented but read from SQLite
itself, one character at a time, and remembered.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from itertools import filterfalse

from monitor.query import FTS_SCHEMA, memory_db, scrub
from monitor.types import Entry

# ASCII bytes as unicode61 treats them: letters and digits are token bytes
# (letters lowered), every other ASCII byte separates. Bytes >= 0x80 (UTF-8
# of everything else) pass through and are judged by the learned table.
_ASCII_FOLD = bytes(c + 32 if 0x41 <= c <= 0x5A else
                    c if 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A or c >= 0x80 else 0x20
                    for c in range(256))
# Ranges learned in one go on first use: Latin, Greek, Cyrillic and the
# punctuation feeds use most. Any other character is learned when first seen.
_EAGER_RANGES = ((0x80, 0x530), (0x1E00, 0x1F00), (0x2000, 0x2070), (0x20A0, 0x20D0))


class _FoldTable(dict[int, str]):
    """Code point -> what unicode61 (TOKENIZER) turns it into inside a token:
    its folded form, "" for a mark it drops, or " " for a separator. A
    ``str.translate`` table that learns a character on first lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __missing__(self, code: int) -> str:
        with self._lock:
            if code not in self:
                if not self:
                    self._learn([c for a, b in _EAGER_RANGES for c in range(a, b)])
                if code not in self:
                    self._learn([code])
            return self[code]

    def _learn(self, codes: Sequence[int]) -> None:
        if self._db is None:
            self._db = memory_db()
            self._db.execute(FTS_SCHEMA.format(name="f"))
            self._db.execute("CREATE VIRTUAL TABLE fv USING fts5vocab(f, instance)")
        db = self._db
        probes = [c for c in codes if not 0xD800 <= c <= 0xDFFF and c != 0]
        db.execute("BEGIN")
        db.executemany("INSERT INTO f(rowid, title) VALUES (?, ?)",
                       [(c, f"a{chr(c)}b") for c in probes])
        seen: dict[int, list[str]] = {}
        for doc, term in db.execute("SELECT doc, term FROM fv ORDER BY doc, offset"):
            seen.setdefault(int(doc), []).append(str(term))
        db.execute("DELETE FROM f")
        db.execute("COMMIT")
        for c in codes:
            toks = seen.get(c, [])
            # "a<c>b" is one token "a<fold>b" when c is a token character;
            # anything else (two tokens, or a NUL/surrogate never probed) separates.
            one = len(toks) == 1 and toks[0].startswith("a") and toks[0].endswith("b")
            self[c] = toks[0][1:-1] if one else " "


_FOLD = _FoldTable()


_WORDS: dict[bytes, tuple[bytes, ...]] = {}  # non-ASCII word -> its tokens
_WORDS_MAX = 50_000  # feeds repeat their words, so lookups dominate (~6 MB at most)


def _fold_word(word: bytes) -> tuple[bytes, ...]:
    if word.isascii():
        return (word,)
    return tuple(t.encode() for t in word.decode().translate(_FOLD).split())


def token_bytes(text: str) -> set[bytes]:
    """The distinct tokens TOKENIZER makes of ``scrub(text)``, UTF-8
    encoded: working in bytes keeps the common all-ASCII case in C."""
    # "replace" turns a lone surrogate into "?", a separator, as scrub does.
    words = set(text.encode("utf-8", "replace").translate(_ASCII_FOLD).split())
    if text.isascii():
        return words
    odd = list(filterfalse(bytes.isascii, words))
    words.difference_update(odd)
    for tokens in _folded(odd):
        words.update(tokens)
    return words


def _folded(words: Iterable[bytes]) -> list[tuple[bytes, ...]]:
    """The tokens of each non-ASCII word, remembered across calls in _WORDS."""
    if len(_WORDS) > _WORDS_MAX:
        _WORDS.clear()
    out = []
    for word in words:
        tokens = _WORDS.get(word)
        if tokens is None:
            tokens = _WORDS[word] = _fold_word(word)
        out.append(tokens)
    return out


class _Plain:
    """The characters whose unicode61 form str.lower and a space give: the
    letters of the eager ranges that fold to their lowercase (one character,
    and not a separator: Cyrillic, Kazakh, Greek but Σ, whose lowercase
    depends on its place in the word), and the separators there that lower
    leaves alone. A text of ASCII and these is folded by C calls alone."""

    def __init__(self) -> None:
        letters: list[str] = []
        seps: list[str] = []
        for a, b in _EAGER_RANGES:
            for code in range(a, b):
                ch, fold = chr(code), _FOLD[code]
                low = ch.lower()
                if fold == " " and low == ch:
                    seps.append(ch)
                elif (fold == low and len(low) == 1 and ch != "\u03a3"
                      and (low.isascii() or _FOLD[ord(low)] == low)):
                    letters.append(ch)
        letters = [c for c in letters if c.lower() not in seps]
        common = [c for c in _COMMON_SEPS if c in seps]
        self.other = re.compile(f"[^\\x00-\\x7f{_char_class(letters)}]")  # not a letter
        self.uncommon = re.compile(f"[^\\x00-\\x7f{_char_class(letters + common)}]")
        self.odd = re.compile(f"[^\\x00-\\x7f{_char_class(letters + seps)}]")
        self.seps = re.compile(f"[{_char_class(seps)}]+")
        # The common ones in UTF-8, replaced after encoding (half the cost).
        self.common = re.compile(b"|".join(re.escape(c.encode()) for c in common))


def _char_class(chars: Iterable[str]) -> str:
    """The body of a regex character class of exactly ``chars``, as ranges."""
    codes = sorted({ord(c) for c in chars})
    out: list[str] = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        out.append(f"\\u{codes[i]:04x}" if i == j else f"\\u{codes[i]:04x}-\\u{codes[j]:04x}")
        i = j + 1
    return "".join(out)


# The separators of most non-ASCII text of the Latin and Cyrillic scripts
# (curly quotes, dashes, the ellipsis, guillemets, the no-break space).
_COMMON_SEPS = "\u2019\u2026\u201c\u201d\u2014\u2018\u2013\u00bb\u00ab\u00a0\u2022\u201e"

_PLAIN: list[_Plain] = []  # made on first use: it reads the learned table
_PLAIN_LOCK = threading.Lock()


def _plain() -> _Plain:
    if not _PLAIN:
        with _PLAIN_LOCK:
            if not _PLAIN:
                _PLAIN.append(_Plain())
    return _PLAIN[0]


def token_text(text: str) -> bytes:
    """Every token TOKENIZER makes of ``scrub(text)``, UTF-8 encoded, each
    with one or more spaces on both sides: what prefilter._Index reads, in
    one pass of compiled code, for the words it is looking for.

    A text of ASCII alone, or of ASCII and the letters and separators of
    _Plain (most Russian and Kazakh text), is lowered and its separators
    made spaces by C calls alone, and is then exactly its tokens in order.
    Any other text is that of its ASCII bytes, then each distinct word of
    other characters folded as token_bytes folds it: the words between
    spaces are the tokens and may be more (never fewer)."""
    return b"".join((b" ", token_words(text), b" "))


def token_words(text: str) -> bytes:
    """token_text without its first and last space (to join several)."""
    if text.isascii():
        return text.encode().translate(_ASCII_FOLD)
    plain = _plain()
    other = plain.other.search(text)
    if other is None:
        return text.lower().encode().translate(_ASCII_FOLD)
    uncommon = plain.uncommon.search(text, other.start())
    if uncommon is None:
        return plain.common.sub(b" ", text.lower().encode().translate(_ASCII_FOLD))
    if plain.odd.search(text, uncommon.start()) is None:
        return plain.seps.sub(" ", text.lower()).encode().translate(_ASCII_FOLD)
    # The text's ASCII words are right in place; its other words follow,
    # folded once each. Those words stay in place as they are too: they may
    # only add tokens that are not the text's, which lets more through.
    spaced = text.encode("utf-8", "replace").translate(_ASCII_FOLD)
    odd = _folded(set(filterfalse(bytes.isascii, spaced.split())))
    return b" ".join([spaced, *map(b" ".join, odd)])


def text_tokens(text: str) -> set[str]:
    """The distinct tokens TOKENIZER makes of ``scrub(text)``."""
    return {t.decode() for t in token_bytes(text)}


def ordered_tokens(text: str) -> list[str]:
    """The tokens TOKENIZER makes of ``text``, in order."""
    words = text.encode().translate(_ASCII_FOLD).split()
    return [t.decode() for w in words for t in _fold_word(w)]


def _entry_text(entry: Entry) -> bytes | None:
    """The token_text of what _Batch indexes for ``entry``; None when the
    entry is too odd to say (the FTS5 stage then decides, and logs it)."""
    try:
        # scrub only changes what separates tokens: no need to run it here.
        return token_text((entry.title or "") + " " + (entry.summary or "") + " "
                          + (entry.article or ""))
    except Exception:
        return None


def _tokenize(bodies: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The tokens FTS5 makes of each text, in order (via fts5vocab)."""
    texts = sorted(set(bodies))
    db = memory_db()
    try:
        db.execute(FTS_SCHEMA.format(name="s"))
        db.execute("CREATE VIRTUAL TABLE sv USING fts5vocab(s, instance)")
        db.executemany("INSERT INTO s(rowid, title) VALUES (?, ?)",
                       [(i + 1, scrub(t)) for i, t in enumerate(texts)])
        tokens: dict[int, list[str]] = {}
        for doc, term in db.execute("SELECT doc, term FROM sv ORDER BY doc, offset"):
            tokens.setdefault(int(doc), []).append(str(term))
    finally:
        db.close()
    return {t: tuple(tokens.get(i + 1, ())) for i, t in enumerate(texts)}
