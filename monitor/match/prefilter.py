"""The prefilter: which topics an item can possibly match, from its tokens alone.

Owns the inverted index from tokens to the topics' necessary conditions (see
cnf.necessary), the first stage of percolation. It only ever lets too many
(topic, item) pairs through, never too few: SQLite decides in the second stage.
It must not run queries or touch any database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from monitor.match.cnf import NORM_MARK, _Cnf, _Need

_HEAD = 3
_CHECKED_MAX = 200_000  # distinct tokens remembered per matcher (~15 MB at most)


class _Index:
    """Which topics an item can possibly match, from its tokens alone.

    Every _Need of a topic's necessary condition (see necessary()) is looked
    up by one of its tokens; an item reaches a topic when each clause of the
    condition has a need whose tokens the item has all of. Only those (topic,
    item) pairs reach SQLite. A topic is listed under the needs of one chosen
    clause only and its other clauses are checked as set intersections, so
    the work per item follows the needs it meets, not the number of topics."""

    def __init__(self, conditions: Sequence[_Cnf], *, merged: bool = False) -> None:
        """``merged``: items' tokens are one set of their raw tokens and their
        norm column's tokens (see norm.add_norm_tokens), so needs are looked
        up without NORM_MARK. A need met with the mark is met without it, so
        this only ever lets more pairs through, never fewer."""
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

        def enc(token: str) -> bytes:
            return (token.removeprefix(NORM_MARK) if merged else token).encode()

        # Items' tokens are UTF-8 bytes (see token_bytes), so are these.
        self.exact: dict[bytes, list[int]] = {}
        prefixes: dict[bytes, list[int]] = {}
        for i, need in enumerate(self.needs):
            token, is_prefix = need.key()
            (prefixes if is_prefix else self.exact).setdefault(enc(token), []).append(i)
        # Prefixes by their first _HEAD bytes: a token is compared only with
        # those sharing its head (and with the few shorter ones).
        self.by_head: dict[bytes, list[tuple[bytes, list[int]]]] = {}
        self.short: list[tuple[bytes, list[int]]] = []
        # Every prefix of every need, not only the keys: a need of several
        # tokens checks its other prefixes against the item's prefix hits.
        for prefix in {enc(p) for need in self.needs for p in need.prefixes}:
            needs = prefixes.get(prefix, [])
            if len(prefix) >= _HEAD:
                self.by_head.setdefault(prefix[:_HEAD], []).append((prefix, needs))
            else:
                self.short.append((prefix, needs))
        # token -> the needs its prefixes find, and those prefixes; every
        # token ever seen is looked at once (feeds repeat their words), so
        # an item costs a set difference.
        self._lock = threading.Lock()
        self._checked: set[bytes] = set()
        self._prefixed: dict[bytes, tuple[tuple[int, ...], tuple[bytes, ...]]] = {}
        self.full = [(frozenset(enc(t) for t in n.exact), tuple(enc(t) for t in n.prefixes))
                     for n in self.needs]

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
        prefixed = self._prefix_hits(token_sets)
        out: dict[int, list[int]] = {}
        for i, tokens in enumerate(token_sets):
            if tokens is None:
                reached: Iterable[int] = range(len(self.others))
            else:
                reached = self._topics_of(self._met(tokens, prefixed[i]))
                if self.always:
                    reached = [*self.always, *reached]
            for n in reached:
                out.setdefault(n, []).append(i)
        return {n: out[n] for n in sorted(out)}

    def _prefix_hits(self, token_sets: Sequence[set[bytes] | None],
                     ) -> list[dict[bytes, tuple[tuple[int, ...], tuple[bytes, ...]]]]:
        """Per item, its tokens that start with some need's prefix, with the
        needs keyed by those prefixes and the prefixes themselves. Per item,
        not per batch: a set difference and an intersection per item cost
        less than the union of the batch's token sets."""
        if not self.by_head and not self.short:
            return [{} for _ in token_sets]
        with self._lock:
            checked = self._checked
            new = set().union(*(t - checked for t in token_sets if t is not None))
            if len(checked) + len(new) > _CHECKED_MAX:  # forget, then learn the whole batch
                self._checked, self._prefixed = set(), {}
                new = set().union(*(t for t in token_sets if t is not None))
            if new:
                self._learn_prefixes(new)
            prefixed = self._prefixed
            return [{} if t is None else {k: prefixed[k] for k in t & prefixed.keys()}
                    for t in token_sets]

    def _learn_prefixes(self, new: set[bytes]) -> None:
        by_head, short = self.by_head, self.short
        for t in new:
            found = [(p, needs) for p, needs in by_head.get(t[:_HEAD], ()) if t.startswith(p)]
            if short:
                found += [(p, needs) for p, needs in short if t.startswith(p)]
            if found:
                self._prefixed[t] = (tuple(i for _, needs in found for i in needs),
                                     tuple(p for p, _ in found))
        self._checked |= new

    def _met(self, tokens: set[bytes],
             prefixed: Mapping[bytes, tuple[tuple[int, ...], tuple[bytes, ...]]]) -> set[int]:
        met: set[int] = set()
        full, exact_key = self.full, self.exact
        # The prefixes the item's tokens start with, made only when a need of
        # several tokens has a prefix among them (few items).
        present: set[bytes] | None = None
        looked: list[Sequence[int]] = [exact_key[t] for t in tokens & exact_key.keys()]
        looked += [needs for needs, _ in prefixed.values()]
        for needs in looked:
            for i in needs:
                if i in met:
                    continue
                exact, prefixes = full[i]
                if len(exact) + len(prefixes) > 1:  # else its one token found it
                    if not exact <= tokens:
                        continue
                    if prefixes:
                        if present is None:
                            present = {p for _, ps in prefixed.values() for p in ps}
                        if not all(p in present for p in prefixes):
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
