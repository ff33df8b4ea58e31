"""The prefilter: which topics an item can possibly match, from its tokens alone.

Owns the index from words to the topics' necessary conditions (see
cnf.necessary), the first stage of percolation: one Aho-Corasick automaton
(ahocorasick_rs, compiled) over the words of every condition, run once over
each item's tokens.token_text. It only ever lets too many (topic, item) pairs
through, never too few: SQLite decides in the second stage. It must not run
queries or touch any database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ahocorasick_rs

from monitor.match.cnf import NORM_MARK, _Cnf, _Need

_SHORT = 3  # a need's exact words this long or shorter are not looked for (but its key)


class _Index:
    """Which topics an item can possibly match, from its tokens alone.

    Every _Need of a topic's necessary condition (see necessary()) is looked
    up by one of its tokens; an item reaches a topic when each clause of the
    condition has a need whose tokens the item has all of. Only those (topic,
    item) pairs reach SQLite. A topic is listed under the needs of one chosen
    clause only and its other clauses are checked as set intersections, so
    the work per item follows its length and the needs it meets, not the
    number of topics."""

    def __init__(self, conditions: Sequence[_Cnf], *, merged: bool = False) -> None:
        """``merged``: an item's text is its raw tokens and its norm column's
        (see norm.norm_words), so needs are looked up without NORM_MARK. A
        need met with the mark is met without it, so this only ever lets
        more pairs through, never fewer."""
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

        self._words(merged)

    def _words(self, merged: bool) -> None:
        """The needs' words, as the words of one automaton: an exact token
        with a space on both sides, a prefix with one before, so a pass over
        an item's token_text finds those the item has, in compiled code.

        Short words other than a need's key (see _Need.key) are left out of
        it, and so out of the need ("of" and "the" of "freedom of the
        press"): common words would be most of what the pass finds, and a
        need with fewer words lets more through, never less. A need's word
        of the norm column, when not ``merged``, keeps its mark, a
        separator: never found."""
        def word(token: str) -> str:
            return token.removeprefix(NORM_MARK) if merged else token

        def spaced(token: str, is_prefix: bool) -> bytes:
            encoded = word(token).encode()
            return b" " + encoded if is_prefix else b" " + encoded + b" "

        words: dict[bytes, int] = {}
        self.keyed: list[list[int]] = []  # word id -> the needs it is the key of
        self.full: list[frozenset[int]] = []  # per need, the ids of its words
        for need in self.needs:
            token, is_prefix = need.key()
            key = spaced(token, is_prefix)
            kept = {key} | {spaced(t, False) for t in need.exact if len(word(t)) > _SHORT}
            kept |= {spaced(t, True) for t in need.prefixes}
            self.full.append(frozenset(words.setdefault(w, len(words)) for w in sorted(kept)))
            self.keyed += [[] for _ in range(len(words) - len(self.keyed))]
            self.keyed[words[key]].append(len(self.full) - 1)
        self._automaton = (ahocorasick_rs.BytesAhoCorasick(
            list(words), implementation=ahocorasick_rs.Implementation.DFA) if words else None)

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

    def candidates(self, texts: Sequence[bytes | None]) -> dict[int, list[int]]:
        """topic index -> indices of the items that topic may match, in
        order, from each item's token_text (see tokens.token_text). An item
        whose text is unknown (None) goes to every topic."""
        out: dict[int, list[int]] = {}
        for i, text in enumerate(texts):
            if text is None:
                reached: Iterable[int] = range(len(self.others))
            else:
                reached = self._topics_of(self._met(text))
                if self.always:
                    reached = [*self.always, *reached]
            for n in reached:
                out.setdefault(n, []).append(i)
        return {n: out[n] for n in sorted(out)}

    def _met(self, text: bytes) -> set[int]:
        """The needs whose (kept) words ``text`` has all of."""
        met: set[int] = set()
        if self._automaton is None:
            return met
        keyed, full = self.keyed, self.full
        found = {n for n, _, _ in self._automaton.find_matches_as_indexes(text, overlapping=True)}
        for n in found:
            for i in keyed[n]:
                words = full[i]
                if len(words) == 1 or words <= found:
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
