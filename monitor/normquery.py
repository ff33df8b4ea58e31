"""Query rewriting for the normalised column: a term written once meets its forms.

Owns ``normalised_query``: an FTS5 query (``@name`` already expanded) in which
every unquoted word ``t`` becomes ``(-norm:t OR norm:"N")``, N its normal form
(monitor.normalize). The exact reading stays, on every column but ``norm``,
so nothing that matched before stops matching and an exact word never meets
a normal form spelled like it ("тока" is the normal form of Токаев); the
normalised reading only adds forms.

What stays exact, as written:

- a ``"quoted phrase"`` or ``"quoted"`` word (as ``-norm:"..."``): the marker
  for names that stemming would blur (``"Kurmanov"`` stays exactly that word);
- a column-filtered unit (``title:x``, ``{title summary}:x``, ``-title:x``):
  the ``norm`` column holds title and summary together, so a normalised
  alternative would turn "in the title" into "anywhere";
- ``^x`` (first token of a column, as ``-norm:^x``): the norm column's
  positions are not the title's;
- a query with a ``+`` phrase join outside strings, returned unchanged.

``NEAR(a b, 5)`` becomes ``(-norm:NEAR(a b, 5) OR norm:NEAR("Na" "Nb", 5))`` when
every member is one unquoted word; otherwise it stays exact. The norm column
holds one normal form per word, title words then summary words, so distances
match the text's within a column (and run across from title into summary).

SQLite stays the parser: a query this cannot read is returned unchanged, and
the caller's validation reports it. Imports only the query layer and
monitor.normalize.
"""

from __future__ import annotations

import re

from monitor.normalize import normalize_term, normalize_token, tokens
from monitor.query import skip_string

__all__ = ["NORM_COLUMN", "normalised_query"]

NORM_COLUMN = "norm"

_OPERATORS = frozenset({"AND", "OR", "NOT"})
_WORD_RE = re.compile(r"[0-9A-Za-z_\x1a\x80-\U0010ffff]+")
_NEAR_DISTANCE_RE = re.compile(r",\s*(\d+)\s*$")


def _fts_string(form: str) -> str:
    star = form.endswith("*")
    body = form[:-1] if star else form
    return '"' + body.replace('"', '""') + '"' + ("*" if star else "")


def _alternative(term: str, column: str) -> str | None:
    norm = normalize_term(term)
    return None if norm is None else f"{column}:{_fts_string(norm)}"


class _Rewriter:
    def __init__(self, query: str, column: str) -> None:
        self.q = query
        self.n = len(query)
        self.column = column
        # The exact reading must not match a normal form that happens to be
        # spelled like the word: "тока" is the normal form of Токаев.
        self.exact = f"-{column}:"
        self.out: list[str] = []
        # Per open group: where the current run of juxtaposed operands starts
        # in ``out`` and how many it holds. FTS5 joins juxtaposed phrases
        # (an implicit AND that binds tighter than NOT) but not groups, so a
        # run of rewritten words becomes ``(A AND B)``.
        self.levels: list[list[int]] = [[0, 0]]

    def run(self) -> str:
        i = 0
        while i < self.n:
            i = self.unit(i)
        while self.levels:
            self.end_run()
            self.levels.pop()
        return "".join(self.out)

    def operand(self) -> None:
        level = self.levels[-1]
        if level[1]:
            self.out.append("AND ")
        else:
            level[0] = len(self.out)
        level[1] += 1

    def end_run(self) -> None:
        start, count = self.levels[-1]
        if count > 1:
            run = "".join(self.out[start:])
            body = run.rstrip()
            self.out[start:] = ["(" + body + ")" + run[len(body):]]
        self.levels[-1] = [0, 0]

    def skip_space(self, i: int) -> int:
        while i < self.n and self.q[i].isspace():
            self.out.append(self.q[i])
            i += 1
        return i

    def exact_unit(self, i: int) -> int:
        """Copy the unit that opens at ``i`` (after a column filter) as it is."""
        i = self.skip_space(i)
        if i >= self.n:
            return i
        c = self.q[i]
        if c == '"':
            j = skip_string(self.q, i)
        elif c == "(":
            j = _skip_group(self.q, i)
        else:
            m = _WORD_RE.match(self.q, i)
            j = m.end() if m else i + 1
            if self.q[i:j] == "NEAR" and j < self.n and self.q[j] == "(":
                j = _skip_group(self.q, j)
        if j < self.n and self.q[j] == "*":
            j += 1
        self.out.append(self.q[i:j])
        return j

    def unit(self, i: int) -> int:
        q = self.q
        c = q[i]
        if c.isspace():
            self.out.append(c)
            return i + 1
        if c == "(":
            self.operand()
            self.out.append(c)
            self.levels.append([0, 0])
            return i + 1
        if c == ")":
            if len(self.levels) > 1:
                self.end_run()
                self.levels.pop()
            self.out.append(c)
            return i + 1
        if c == '"':
            j = skip_string(q, i)
            if j < self.n and q[j] == "*":
                j += 1
            self.operand()
            self.out.append(self.exact + q[i:j])
            return j
        if c == "^":
            self.operand()
            self.out.append(self.exact + "^")
            return self.exact_unit(i + 1)
        if c in "{-":
            return self.column_filter(i)
        m = _WORD_RE.match(q, i)
        if m is None:
            self.out.append(c)
            return i + 1
        word, j = m.group(0), m.end()
        k = j
        while k < self.n and q[k].isspace():
            k += 1
        if k < self.n and q[k] == ":":
            self.operand()
            self.out.append(q[i:k + 1])
            return self.exact_unit(k + 1)
        if word == "NEAR" and k < self.n and q[k] == "(":
            self.operand()
            return self.near(i, k)
        if word in _OPERATORS:
            self.end_run()
            self.out.append(word)
            return j
        self.operand()
        prefix = j < self.n and q[j] == "*"
        term = word + ("*" if prefix else "")
        alt = _alternative(term, self.column)
        exact = self.exact + term
        self.out.append(exact if alt is None else f"({exact} OR {alt})")
        return j + (1 if prefix else 0)

    def column_filter(self, i: int) -> int:
        q = self.q
        j = i
        if q[j] == "-":
            j += 1
            # FTS5 allows space between the minus and the column: "- title:x".
            while j < self.n and q[j].isspace():
                j += 1
        if j < self.n and q[j] == "{":
            close = q.find("}", j)
            j = self.n if close < 0 else close + 1
        else:
            m = _WORD_RE.match(q, j)
            j = m.end() if m else j
        while j < self.n and q[j].isspace():
            j += 1
        if j < self.n and q[j] == ":":
            self.operand()
            self.out.append(q[i:j + 1])
            return self.exact_unit(j + 1)
        self.out.append(q[i:j])
        return j

    def near(self, i: int, open_paren: int) -> int:
        end = _skip_group(self.q, open_paren)
        original = self.q[i:end]
        inner = self.q[open_paren + 1:end - 1]
        self.out.append(_near_alternative(original, inner, self.column, self.exact))
        return end


def _near_alternative(original: str, inner: str, column: str, exact: str) -> str:
    m = _NEAR_DISTANCE_RE.search(inner)
    body = inner[: m.start()] if m else inner
    original = exact + original
    if '"' in body or "*" in body or ":" in body:
        return original
    forms: list[str] = []
    for word in body.split():
        if word in _OPERATORS or not _WORD_RE.fullmatch(word):
            return original
        found = [normalize_token(w) for w in tokens(word)]
        if len(found) != 1 or not found[0]:
            return original
        forms.append(_fts_string(found[0]))
    if not forms:
        return original
    distance = f", {m.group(1)}" if m else ""
    return f"({original} OR {column}:NEAR({' '.join(forms)}{distance}))"


def _skip_group(query: str, i: int) -> int:
    depth, j, n = 0, i, len(query)
    while j < n:
        c = query[j]
        if c == '"':
            j = skip_string(query, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def _has_plus(query: str) -> bool:
    i, n = 0, len(query)
    while i < n:
        if query[i] == '"':
            i = skip_string(query, i)
            continue
        if query[i] == "+":
            return True
        i += 1
    return False


def normalised_query(fts_query: str, norm_column: str = NORM_COLUMN) -> str:
    """``fts_query`` with every unquoted word also matched through its normal
    forms in ``norm_column`` (see the module docstring for what stays exact)."""
    if _has_plus(fts_query):
        return fts_query
    return _Rewriter(fts_query, norm_column).run()
