"""The prefilter: which topics an item can possibly match, from its tokens alone.

Owns the inverted index from tokens to the topics' necessary conditions (see
cnf.necessary), the first stage of percolation. It only ever lets too many
(topic, item) pairs through, never too few: SQLite decides in the second stage.
It must not run queries or touch any database.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping, Sequence

from monitor.match.cnf import _Cnf, _Need

_HEAD = 3
_CHECKED_MAX = 200_000  # distinct tokens remembered per matcher (~15 MB at most)


def _starts(ordered: list[bytes], prefix: bytes) -> bool:
    """Whether a token of ``ordered`` (sorted) starts with ``prefix``."""
    j = bisect.bisect_left(ordered, prefix)
    return j < len(ordered) and ordered[j].startswith(prefix)


class _Index:
    """Which topics an item can possibly match, from its tokens alone.

    Every _Need of a topic's necessary condition (see necessary()) is looked
    up by one of its tokens; an item reaches a topic when each clause of the
    condition has a need whose tokens the item has all of. Only those (topic,
    item) pairs reach SQLite. A topic is listed under the needs of one chosen
    clause only and its other clauses are checked as set intersections, so
    the work per item follows the needs it meets, not the number of topics."""

    def __init__(self, conditions: Sequence[_Cnf]) -> None:
        ids: dict[_Need, int] = {}
        self.needs: list[_Need] = []
        self.always: list[int] = []  # topics with nothing to go by
        self.key_of: dict[int, list[int]] = {}  # need -> topics keyed by it
        self.others: list[tuple[frozenset[int], ...]] = []  # per topic, its other clauses
        for n, cnf in enumerate(conditions):
            clauses = [frozenset(self._id(need, ids) for need in c) for c in cnf]
            if not clauses:
                self.always.append(n)
                self.others.append(())
                continue
            key = min(clauses, key=self._weight)
            for i in key:
                self.key_of.setdefault(i, []).append(n)
            self.others.append(tuple(c for c in clauses if c is not key))
        # Items' tokens are UTF-8 bytes (see token_bytes), so are these.
        self.exact: dict[bytes, list[int]] = {}
        prefixes: dict[bytes, list[int]] = {}
        for i, need in enumerate(self.needs):
            token, is_prefix = need.key()
            (prefixes if is_prefix else self.exact).setdefault(token.encode(), []).append(i)
        self.prefixes = prefixes
        # Prefixes by their first _HEAD bytes: a token is compared only with
        # those sharing its head (and with the few shorter ones).
        self.by_head: dict[bytes, list[tuple[bytes, list[int]]]] = {}
        self.short: list[tuple[bytes, list[int]]] = []
        for prefix, needs in prefixes.items():
            if len(prefix) >= _HEAD:
                self.by_head.setdefault(prefix[:_HEAD], []).append((prefix, needs))
            else:
                self.short.append((prefix, needs))
        # token -> the needs its prefixes find; every token ever seen is looked
        # at once (feeds repeat their words), so a batch costs a set difference.
        self._lock = threading.Lock()
        self._checked: set[bytes] = set()
        self._prefixed: dict[bytes, list[int]] = {}
        self.full = [(frozenset(t.encode() for t in n.exact),
                      tuple(t.encode() for t in n.prefixes)) for n in self.needs]

    def _id(self, need: _Need, ids: dict[_Need, int]) -> int:
        i = ids.get(need)
        if i is None:
            i = ids[need] = len(self.needs)
            self.needs.append(need)
        return i

    def _weight(self, clause: frozenset[int]) -> tuple[int, int]:
        """Lower is a better key: fewer needs met by short or prefix words
        (which common text has more often), then fewer needs."""
        loose = 0
        for i in clause:
            token, is_prefix = self.needs[i].key()
            loose += is_prefix or len(token) <= 4
        return loose, len(clause)

    def candidates(self, token_sets: Sequence[set[bytes] | None]) -> dict[int, list[int]]:
        """topic index -> indices of the items that topic may match, in
        order. An item whose tokens are unknown (None) goes to every topic."""
        by_token = self._batch_needs(set().union(*(s for s in token_sets if s is not None)))
        out: dict[int, list[int]] = {}
        for i, tokens in enumerate(token_sets):
            if tokens is None:
                reached: Iterable[int] = range(len(self.others))
            else:
                reached = self._topics_of(self._met(tokens, by_token))
                if self.always:
                    reached = [*self.always, *reached]
            for n in reached:
                out.setdefault(n, []).append(i)
        return {n: out[n] for n in sorted(out)}

    def _batch_needs(self, vocab: set[bytes]) -> dict[bytes, list[int]]:
        """For every token of the batch, the needs looked up by it."""
        by_token = {t: list(self.exact[t]) for t in vocab & self.exact.keys()}
        if not self.prefixes:
            return by_token
        with self._lock:
            self._learn_prefixes(vocab)
            for t in vocab & self._prefixed.keys():
                by_token.setdefault(t, []).extend(self._prefixed[t])
        return by_token

    def _learn_prefixes(self, vocab: set[bytes]) -> None:
        new = vocab - self._checked
        if not new:
            return
        if len(self._checked) > _CHECKED_MAX:
            self._checked, self._prefixed = set(), {}
            new = vocab
        by_head, short = self.by_head, self.short
        for t in new:
            found = [i for p, needs in by_head.get(t[:_HEAD], ()) if t.startswith(p)
                     for i in needs]
            if short:
                found += [i for p, needs in short if t.startswith(p) for i in needs]
            if found:
                self._prefixed[t] = found
        self._checked |= new

    def _met(self, tokens: set[bytes], by_token: Mapping[bytes, list[int]]) -> set[int]:
        met: set[int] = set()
        full = self.full
        # The item's own tokens in order, made only when a need of several
        # tokens has a prefix among them (few items: cheaper than the batch's).
        ordered: list[bytes] | None = None
        for t in tokens & by_token.keys():
            for i in by_token[t]:
                if i in met:
                    continue
                exact, prefixes = full[i]
                if len(exact) + len(prefixes) > 1:  # else its one token found it
                    if not exact <= tokens:
                        continue
                    if prefixes:
                        ordered = ordered or sorted(tokens)
                        if not all(_starts(ordered, p) for p in prefixes):
                            continue
                met.add(i)
        return met

    def _topics_of(self, met: set[int]) -> list[int]:
        if not met:
            return []
        reached: set[int] = set()
        for i in met:
            keyed = self.key_of.get(i)
            if keyed:
                reached.update(keyed)
        return [n for n in reached if all(not met.isdisjoint(c) for c in self.others[n])]
