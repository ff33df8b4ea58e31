"""Necessary conditions: which tokens an item must have for a query to match.

Owns a lenient reader of FTS5's query grammar that turns an expanded topic
query into a condition on an item's tokens, for the prefilter. It must never
be stricter than SQLite: whatever it cannot read means "no condition".

A topic query is read into a conjunction of clauses, each an OR of _Needs,
every _Need a set of tokens that must all be present. It is implied by the
query, never the other way round: NOT's right side is ignored, NEAR and
phrases need their tokens but not their order, column filters are dropped,
and where an OR of two conjunctions would multiply into too many clauses some
are left out. Leaving a clause out only lets more items through to SQLite,
which decides.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from monitor.match.prune import _group_spans
from monitor.match.tokens import ordered_tokens
from monitor.query import scrub


@dataclass(frozen=True)
class _Need:
    exact: frozenset[str]
    prefixes: frozenset[str]  # some token must start with each of these

    def key(self) -> tuple[str, bool]:
        """The token to look the need up by: the longest exact one, else
        the longest prefix (longer words are rarer)."""
        if self.exact:
            return max(self.exact, key=lambda t: (len(t), t)), False
        return max(self.prefixes, key=lambda t: (len(t), t)), True


_Cnf = tuple[frozenset[_Need], ...]  # () is "true": no condition
_MAX_CLAUSES = 24


class _Unparsable(Exception):
    pass


_LEX_RE = re.compile(r'\s+|"(?:[^"]|"")*"|[(){}:+*,^-]|[0-9A-Za-z_\x1a\x80-\U0010ffff]+')


def _lex(query: str) -> list[str]:
    found = _LEX_RE.findall(query)
    # findall skips what no alternative matches: anything skipped is a
    # character FTS5 would reject, or an unterminated string.
    if sum(map(len, found)) != len(query) or '"' in found:
        raise _Unparsable(query)
    return [t for t in found if not t.isspace()]


class _CnfReader:
    """Recursive descent over FTS5's query grammar (NOT binds tighter than
    AND, AND than OR; juxtaposition is AND), producing a _Cnf."""

    def __init__(self, query: str, *, groups: bool = True) -> None:
        # Each OR-group of strings (an expanded @list, shared by many topics)
        # stands as one token whose clause is read once and cached.
        self.toks: list[str] = []
        last = 0
        for a, b in _group_spans(query) if groups else ():
            self.toks += _lex(query[last:a])
            self.toks.append(_GROUP_MARK + query[a:b])
            last = b
        self.toks += _lex(query[last:])
        self.i = 0

    def read(self) -> _Cnf:
        cnf = self._or()
        if self.i != len(self.toks):
            raise _Unparsable(" ".join(self.toks[self.i:]))
        return cnf

    def _peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, want: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (want is not None and tok != want):
            raise _Unparsable(f"expected {want!r}")
        self.i += 1
        return tok

    def _or(self) -> _Cnf:
        parts = [self._and()]
        while self._peek() == "OR":
            self._take()
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        if not all(parts):
            return ()
        # An expanded @list is a long OR of single phrases: merged in one go.
        singles = [p[0] for p in parts if len(p) == 1]
        rest = [p for p in parts if len(p) > 1]
        cnf = (frozenset().union(*singles),) if singles else rest.pop()
        for p in rest:
            cnf = _cnf_or(cnf, p)
        return cnf

    def _and(self) -> _Cnf:
        parts = [self._not()]
        while True:
            tok = self._peek()
            if tok == "AND":
                self._take()
            elif tok is None or tok in ("OR", "NOT", ")", ","):
                return _cnf_and(*parts)
            parts.append(self._not())

    def _not(self) -> _Cnf:
        cnf = self._primary()
        while self._peek() == "NOT":
            self._take()
            self._primary()  # what must be absent says nothing of what is present
        return cnf

    def _primary(self) -> _Cnf:
        self._columns()
        tok = self._peek()
        if tok is not None and tok.startswith(_GROUP_MARK):
            self._take()
            return _group_cnf(tok[len(_GROUP_MARK):])
        if tok == "(":
            self._take()
            cnf = self._or()
            self._take(")")
            return cnf
        if tok == "NEAR" and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == "(":
            return self._near()
        return _cnf_of(self._phrase())

    def _columns(self) -> None:
        """Skip a column filter: ``col:``, ``-col:``, ``{a b}:``, ``-{a b}:``."""
        start = self.i
        if self._peek() == "-":
            self._take()
        tok = self._peek()
        if tok == "{":
            while self._take() != "}":
                pass
            self._take(":")
        elif tok is not None and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == ":":
            self.i += 2
        elif self.i != start:
            raise _Unparsable("-")

    def _near(self) -> _Cnf:
        self._take("NEAR")
        self._take("(")
        parts: list[_Cnf] = [()]
        while self._peek() not in (")", ",", None):
            parts.append(_cnf_of(self._phrase()))
        if self._peek() == ",":
            self._take()
            self._take()
        self._take(")")
        return _cnf_and(*parts)

    def _phrase(self) -> _Need:
        if self._peek() == "^":
            self._take()
        exact: set[str] = set()
        prefixes: set[str] = set()
        while True:
            tok = self._take()
            if tok in ("AND", "OR", "NOT") or not (tok.startswith('"') or _is_word(tok)):
                raise _Unparsable(tok)
            words = list(_phrase_tokens(tok))
            if self._peek() == "*":
                self._take()
                if words:
                    prefixes.add(words.pop())
            exact.update(words)
            if self._peek() != "+":
                return _Need(frozenset(exact), frozenset(prefixes - exact))
            self._take()


_GROUP_MARK = "\x00"  # never in a lexed token: _lex rejects NUL


@functools.lru_cache(maxsize=16384)
def _group_cnf(group: str) -> _Cnf:
    """The condition of one parenthesised OR-group of strings."""
    return _CnfReader(group, groups=False).read()


@functools.lru_cache(maxsize=65536)
def _phrase_tokens(tok: str) -> tuple[str, ...]:
    """The tokens of a string ("...", with "" for a quote) or bareword."""
    text = tok[1:-1].replace('""', '"') if tok.startswith('"') else tok
    return tuple(ordered_tokens(scrub(text)))


def _is_word(tok: str) -> bool:
    return _LEX_RE.fullmatch(tok) is not None and tok[0] not in '"(){}:+*,^-' \
        and not tok.isspace()


def _cnf_of(need: _Need) -> _Cnf:
    return (frozenset({need}),) if need.exact or need.prefixes else ()


def _cnf_and(*parts: _Cnf) -> _Cnf:
    if len(parts) == 1:
        return parts[0]
    every = tuple(dict.fromkeys(c for p in parts for c in p))
    return tuple(sorted(every, key=len)[:_MAX_CLAUSES])


def _cnf_or(a: _Cnf, b: _Cnf) -> _Cnf:
    """(A1 & A2 ...) | (B1 & B2 ...) implies every Ai | Bj; with too many
    pairs, only those of the narrowest clauses are kept (still implied)."""
    if not a or not b:
        return ()
    xs, ys = sorted(a, key=len), sorted(b, key=len)
    while len(xs) * len(ys) > _MAX_CLAUSES:
        if len(xs) >= len(ys):
            xs.pop()
        else:
            ys.pop()
    return tuple(dict.fromkeys(x | y for x in xs for y in ys))


def necessary(fts_query: str) -> _Cnf:
    """What every item matching ``fts_query`` contains; () when unknown."""
    try:
        return _CnfReader(fts_query).read()
    except (_Unparsable, IndexError):
        return ()
