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

from monitor.match.prune import _STR, _group_spans
from monitor.match.tokens import ordered_tokens
from monitor.normquery import NORM_COLUMN
from monitor.query import FTS_COLUMNS, scrub

# Written before a token of the norm column; unicode61 never makes a token
# with a control character, so no title/summary/article token starts so.
NORM_MARK = "\x01"
_RAW, _NORM = "raw", "norm"
_Spaces = frozenset[str]
_BOTH: _Spaces = frozenset({_RAW, _NORM})
_RAW_ONLY: _Spaces = frozenset({_RAW})
# What normquery writes for an @list: (-norm:"a" OR -norm:"b"*), read as one group.
_NORM_GROUP_RE = re.compile(
    rf"\(\s*(?:-{NORM_COLUMN}:)?{_STR}(?:\s+OR\s+(?:-{NORM_COLUMN}:)?{_STR})*\s*\)")


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


def _breadth(clause: frozenset[_Need]) -> tuple[int, int]:
    """How often text meets a clause, roughly: its needs met by short or
    prefix words (common text has those), then its number of needs. A long
    list of names is narrow; a few short stems are broad."""
    loose = 0
    for need in clause:
        token, is_prefix = need.key()
        loose += is_prefix or len(token.removeprefix(NORM_MARK)) <= 4
    return loose, len(clause)


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

    def __init__(self, query: str, *, groups: bool = True, norm: bool = False,
                 spaces: _Spaces | None = None) -> None:
        # Each OR-group of strings (an expanded @list, shared by many topics)
        # stands as one token whose clause is read once and cached.
        self.toks: list[str] = []
        self.norm = norm
        # Which kinds of column the phrase being read may be in.
        self.spaces: _Spaces = spaces if spaces is not None else (_BOTH if norm else _RAW_ONLY)
        last = 0
        spans = _group_spans(query, _NORM_GROUP_RE) if norm else _group_spans(query)
        for a, b in spans if groups else ():
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
        outer = self.spaces
        self.spaces = outer & self._columns()
        try:
            return self._unit()
        finally:
            self.spaces = outer

    def _unit(self) -> _Cnf:
        tok = self._peek()
        if tok is not None and tok.startswith(_GROUP_MARK):
            self._take()
            return _group_cnf(tok[len(_GROUP_MARK):], self.norm, self.spaces)
        if tok == "(":
            self._take()
            cnf = self._or()
            self._take(")")
            return cnf
        if tok == "NEAR" and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == "(":
            return self._near()
        return self._of(self._phrase())

    def _columns(self) -> _Spaces:
        """Read a column filter (``col:``, ``-col:``, ``{a b}:``, ``-{a b}:``):
        the kinds of column it leaves."""
        start = self.i
        negated = self._peek() == "-"
        if negated:
            self._take()
        tok = self._peek()
        names: list[str] = []
        if tok == "{":
            self._take()
            while (name := self._take()) != "}":
                names.append(name)
            self._take(":")
        elif tok is not None and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == ":":
            names.append(tok)
            self.i += 2
        elif self.i != start:
            raise _Unparsable("-")
        else:
            return _BOTH
        if not self.norm:
            return _BOTH
        columns = {*FTS_COLUMNS, NORM_COLUMN}
        chosen = columns - set(names) if negated else set(names) & columns
        return frozenset(_NORM if c == NORM_COLUMN else _RAW for c in chosen)

    def _of(self, need: _Need) -> _Cnf:
        """A phrase's condition in the columns it may be in."""
        if not (need.exact or need.prefixes) or not self.spaces:
            return ()
        needs = set()
        if _RAW in self.spaces:
            needs.add(need)
        if _NORM in self.spaces and self.norm:
            needs.add(_in_norm(need))
        return (frozenset(needs),) if needs else ()

    def _near(self) -> _Cnf:
        self._take("NEAR")
        self._take("(")
        parts: list[_Cnf] = [()]
        # Every phrase of a NEAR is in one column, but which kind is not
        # known here: each needs its tokens in either kind.
        while self._peek() not in (")", ",", None):
            parts.append(self._of(self._phrase()))
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
def _group_cnf(group: str, norm: bool = False, spaces: _Spaces | None = None) -> _Cnf:
    """The condition of one parenthesised OR-group of strings."""
    return _CnfReader(group, groups=False, norm=norm, spaces=spaces).read()


def _in_norm(need: _Need) -> _Need:
    return _Need(frozenset(NORM_MARK + t for t in need.exact),
                 frozenset(NORM_MARK + t for t in need.prefixes))


def is_norm(need: _Need) -> bool:
    """Whether ``need`` is of the norm column (see NORM_MARK)."""
    return any(t.startswith(NORM_MARK) for t in (*need.exact, *need.prefixes))


@functools.lru_cache(maxsize=65536)
def _phrase_tokens(tok: str) -> tuple[str, ...]:
    """The tokens of a string ("...", with "" for a quote) or bareword."""
    text = tok[1:-1].replace('""', '"') if tok.startswith('"') else tok
    return tuple(ordered_tokens(scrub(text)))


def _is_word(tok: str) -> bool:
    return _LEX_RE.fullmatch(tok) is not None and tok[0] not in '"(){}:+*,^-' \
        and not tok.isspace()


def _cnf_and(*parts: _Cnf) -> _Cnf:
    """Every clause of every part, the narrowest clause of each part first
    (_breadth), then the rest, narrowest first; over _MAX_CLAUSES the tail is
    cut. Sorting all clauses together could cut a whole part: an OR of NEARs
    distributes into many small clauses that would crowd out the single
    clause of a long place list ANDed with it, its most selective one."""
    if len(parts) == 1:
        return parts[0]
    heads = list(dict.fromkeys(min(p, key=_breadth) for p in parts if p))
    chosen = set(heads)
    rest = sorted(dict.fromkeys(c for p in parts for c in p if c not in chosen), key=_breadth)
    return tuple(heads + rest)[:_MAX_CLAUSES]


def _cnf_or(a: _Cnf, b: _Cnf) -> _Cnf:
    """(A1 & A2 ...) | (B1 & B2 ...) implies every Ai | Bj; with too many
    pairs, the first clauses of each side are kept (still implied): a side
    from _cnf_and lists the head of each of its parts first."""
    if not a or not b:
        return ()
    xs, ys = list(a), list(b)
    while len(xs) * len(ys) > _MAX_CLAUSES:
        if len(xs) >= len(ys):
            xs.pop()
        else:
            ys.pop()
    return tuple(dict.fromkeys(x | y for x in xs for y in ys))


def necessary(fts_query: str, *, norm: bool = False) -> _Cnf:
    """What every item matching ``fts_query`` contains; () when unknown.
    ``norm``: the table has a norm column (see NORM_MARK)."""
    try:
        return _CnfReader(fts_query, norm=norm).read()
    except (_Unparsable, IndexError):
        return ()
