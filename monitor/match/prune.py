"""Pruning: why percolation stays cheap with long term lists.

Owns the reading of an expanded query's @name groups (parenthesised OR-groups
of plain strings and barewords, what query.expand_query writes) and their
rendering against a batch's tokens (and, for normalised alternatives, the
tokens of its norm column). It must not change what a query matches.

FTS5 pays a few microseconds for every phrase of a query, and an expanded
topic has hundreds (every spelling of every city). Most of them cannot match
a given batch: their tokens are not in it. Before running a topic, every
parenthesised OR-group of plain strings keeps only the alternatives whose
tokens the batch contains; a group left empty becomes a phrase of a token the
batch lacks. Removing alternatives that match nothing changes neither the
rows, nor highlight(), nor snippet().
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from monitor.query import skip_string

_STR = r'"(?:[^"]|"")*"\*?'
_WORD_CHAR = r"[0-9A-Za-z_\x1a\x80-\U0010ffff]"  # of an FTS5 bareword
# A bareword alternative (what expand_query writes for a one-word list term),
# whole (finditer tries every position) and not one of FTS5's keywords.
_BARE = rf"(?<!{_WORD_CHAR})(?!(?:AND|OR|NOT|NEAR)(?!{_WORD_CHAR}))({_WORD_CHAR}+)(\*?)"
_ALT = rf"(?:{_STR}|{_BARE})"
_GROUP_RE = re.compile(rf"\(\s*{_ALT}(?:\s+OR\s+{_ALT})*\s*\)")
_ALT_RE = re.compile(rf'"((?:[^"]|"")*)"(\*?)|{_BARE}')


@dataclass(frozen=True)
class _Alt:
    text: str  # as written in the query: "body", "body"*, word or word*
    tokens: tuple[str, ...]  # as the tokenizer folds the body
    prefix: bool
    # A normalised alternative (its text then also reads the norm column):
    # the tokens of its normal form there, and whether that is a prefix.
    norm: tuple[str, ...] = ()
    norm_prefix: bool = False


def _body(m: re.Match[str]) -> tuple[str, bool]:
    """The body of an alternative matched by _ALT_RE, and whether it is a prefix."""
    if m.group(3) is not None:
        return m.group(3), bool(m.group(4))
    return m.group(1).replace('""', '"'), bool(m.group(2))


_Group = tuple[_Alt, ...]
_Template = tuple[str | _Group, ...]


def _group_spans(fts: str, pattern: re.Pattern[str] = _GROUP_RE) -> list[tuple[int, int]]:
    """Spans of the OR-groups of plain strings (``pattern``), found outside any string."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(fts)
    while i < n:
        c = fts[i]
        if c == '"':
            i = skip_string(fts, i)
            continue
        if c == "(":
            m = pattern.match(fts, i)
            if m:
                spans.append((i, m.end()))
                i = m.end()
                continue
        i += 1
    return spans


def _bodies(fts: str) -> set[str]:
    out: set[str] = set()
    for a, b in _group_spans(fts):
        out.update(_body(m)[0] for m in _ALT_RE.finditer(fts, a, b))
    return out


def _template(fts: str, tokens: Mapping[str, tuple[str, ...]],
              groups: dict[str, _Group] | None = None) -> _Template:
    """``fts`` cut into text and prunable groups; ``groups`` caches the
    groups by their text (topics share their term lists)."""
    parts: list[str | tuple[_Alt, ...]] = []
    last = 0
    seen = {} if groups is None else groups
    for a, b in _group_spans(fts):
        parts.append(fts[last:a])
        text = fts[a:b]
        group = seen.get(text)
        if group is None:
            group = seen[text] = tuple(
                _Alt(m.group(0), tokens.get(body, ()), prefix)
                for m in _ALT_RE.finditer(text) for body, prefix in (_body(m),))
        parts.append(group)
        last = b
    parts.append(fts[last:])
    return tuple(p for p in parts if p != "")


_HOLE = "\x1d"  # a placeholder for a group while the rest of a query is rewritten
_HOLE_RE = re.compile(f'"{_HOLE}(\\d+)"')


def _rewritten_template(fts: str, tokens: Mapping[str, tuple[str, ...]],
                        groups: dict[str, _Group] | None,
                        rewrite: Callable[[str], str],
                        exact: str = "", rewrite_alt: Callable[[_Alt], _Alt] | None = None,
                        ) -> _Template | None:
    """The template of ``rewrite(fts)`` where ``rewrite`` leaves strings exact
    (normquery.normalised_query): each group stands in as a string while the
    rest is rewritten, and comes back as ``-norm:(...)`` where the group's
    strings were ``-norm:"..."`` (``exact``). A group with barewords, which
    ``rewrite`` would widen, comes back as ``rewrite_alt`` makes each of its
    alternatives instead. None when ``fts`` holds the placeholder."""
    if _HOLE in fts:
        return None
    plain = _template(fts, tokens, groups)
    holes: list[_Group] = []
    text: list[str] = []
    for part in plain:
        if isinstance(part, str):
            text.append(part)
        else:
            text.append(f'"{_HOLE}{len(holes)}"')
            holes.append(part)
    pieces = _HOLE_RE.split(rewrite("".join(text)))
    out: list[str | _Group] = []
    for k, piece in enumerate(pieces):
        if not k % 2:
            out.append(piece)
            continue
        group = holes[int(piece)]
        before = out[-1] if out else ""
        if (rewrite_alt is not None and exact and isinstance(before, str)
                and before.endswith(exact) and any(not a.text.startswith('"') for a in group)):
            out[-1] = before[:-len(exact)]
            group = tuple(map(rewrite_alt, group))
        out.append(group)
    if sum(1 for p in out if not isinstance(p, str)) != len(holes):
        return None
    return tuple(p for p in out if p != "")


class _Vocab:
    """The distinct tokens of a batch, and templates rendered against them.
    ``norm_terms``: the tokens of the batch's norm column, for normalised
    alternatives (None: there is none)."""

    def __init__(self, terms: Iterable[str], norm_terms: Iterable[str] | None = None) -> None:
        self.terms = set(terms)
        self.norm_terms = set(norm_terms) if norm_terms is not None else set()
        self._sorted: dict[bool, list[str]] = {}
        self.never = "zq0"
        while self.never in self.terms or self.never in self.norm_terms:
            self.never += "0"
        self._cache: dict[str, bool] = {}

    def _has_prefix(self, prefix: str, norm: bool = False) -> bool:
        ordered = self._sorted.get(norm)
        if ordered is None:
            ordered = self._sorted[norm] = sorted(self.norm_terms if norm else self.terms)
        i = bisect.bisect_left(ordered, prefix)
        return i < len(ordered) and ordered[i].startswith(prefix)

    def _has(self, tokens: tuple[str, ...], prefix: bool, norm: bool = False) -> bool:
        terms = self.norm_terms if norm else self.terms
        *head, last = tokens
        return all(t in terms for t in head) and (
            self._has_prefix(last, norm) if prefix else last in terms)

    def can_match(self, alt: _Alt) -> bool:
        hit = self._cache.get(alt.text)
        if hit is None:
            if not alt.tokens:  # nothing to reason about: keep it
                hit = True
            else:
                hit = self._has(alt.tokens, alt.prefix) or bool(
                    alt.norm and self._has(alt.norm, alt.norm_prefix, norm=True))
            self._cache[alt.text] = hit
        return hit

    @staticmethod
    def whole(template: _Template) -> str:
        """``template`` with every alternative: the query before pruning."""
        return "".join(p if isinstance(p, str) else
                       "(" + " OR ".join(a.text for a in p) + ")" for p in template)

    def render(self, template: _Template) -> str:
        out = []
        for part in template:
            if isinstance(part, str):
                out.append(part)
                continue
            kept = [a.text for a in part if self.can_match(a)]
            out.append("(" + " OR ".join(kept) + ")" if kept else f'("{self.never}")')
        return "".join(out)
