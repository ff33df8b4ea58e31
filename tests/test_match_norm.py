"""Normalised matching in the live matcher (issue 14): a term written once
meets its forms, a quoted term stays exact, normal forms never pass for raw
words, and the evidence names the item's own words."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_match import _norm_reference, _reference

from monitor.match import HIGHLIGHT_OPEN, Matcher, text_tokens
from monitor.match.evidence import _Unmarked
from monitor.match.norm import _WORD_RE, entry_norm, marked_words, norm_words
from monitor.match.tokens import _entry_text, token_bytes
from monitor.normalize import _TOKEN_RE, norm_document, normalize_token
from monitor.query import HIGHLIGHT_CLOSE
from monitor.types import Entry, Topic

# Forms that must meet: Kazakh case endings, Latin-script Kazakh, Russian
# inflections, Kazakh and Russian spellings of one word.
FAMILIES = {
    "almaty": ["Алматы", "Алматыда", "Алматыдан", "Алматыны", "Алматыдағы", "Алматының",
               "Алматыға"],
    "astana": ["Астана", "Астанада", "Астанадан", "Астананың", "Астанаға", "Астанадағы"],
    "tokayev": ["Toqaev", "Тоқаев", "Токаев", "Tokayev", "Tokaev", "Toqaevtyń", "Тоқаевтың",
                "Токаева", "Токаеву"],
    "qazaqstan": ["Qazaqstan", "Қазақстан", "Qazaqstanda", "Қазақстанда", "Qazaqstannyń"],
    "dismissal": ["увольнение", "увольнения", "увольнению", "увольнением", "уволили", "уволил",
                  "уволен", "увольнений", "uvolnenie", "uvolnenia"],
    "tenge": ["тенге", "теңге", "teńge", "теңгенің", "теңгеге"],
    "strike": ["ереуіл", "ereuil", "ереуілге", "ereýil", "ереуілдер"],
}
# Near neighbours that must stay apart ("тока", the normal form of Токаев,
# is left out: it does meet Токаев, unless the term is quoted).
FILLER = ["news", "the", "в", "рабочие", "город", "market", "report", "Алма", "Астра", "Алмаз",
          "ток", "Казахстан", "увлечение", "tender", "теперь", "ереже"]
FORMS = {w: name for name, words in FAMILIES.items() for w in words}


def entry(key: str, title: str, summary: str, article: str | None = None) -> Entry:
    return Entry(key=key, title=title, summary=summary, url=None,
                 published_at=datetime(2026, 1, 1, tzinfo=UTC), article=article)


def topic(query: str, tid: str = "t") -> Topic:
    return Topic(id=tid, name=tid, query=query, fts_query=query)


def test_families_share_one_normal_form_and_fillers_do_not() -> None:
    # The premise of the property tests below, checked on its own.
    forms = {name: {normalize_token(w) for w in words} for name, words in FAMILIES.items()}
    assert all(len(f) == 1 for f in forms.values()), forms
    taken = set().union(*forms.values())
    assert not {normalize_token(w) for w in FILLER} & taken


WORD = st.sampled_from([*FORMS, *FILLER])
FIELD = st.lists(WORD, max_size=8).map(" ".join)
ENTRIES = st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=6).map(
    lambda pairs: [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)])


def _has(e: Entry, family: str) -> bool:
    return any(FORMS.get(w) == family for w in f"{e.title} {e.summary}".split())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FAMILIES)), st.data(), ENTRIES)
def test_a_term_and_each_of_its_forms_hit_the_same_entries(
        family: str, data: st.DataObject, entries: list[Entry]) -> None:
    term = data.draw(st.sampled_from(FAMILIES[family]), label="term")
    other = data.draw(st.sampled_from(FAMILIES[family]), label="other form")
    hits = {h.entry_key for h in Matcher([topic(term)]).match(entries)}
    assert hits == {h.entry_key for h in Matcher([topic(other)]).match(entries)}
    assert hits == {e.key for e in entries if _has(e, family)}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FORMS)), ENTRIES)
def test_a_quoted_term_stays_exact(term: str, entries: list[Entry]) -> None:
    hits = {h.entry_key for h in Matcher([topic(f'"{term}"')]).match(entries)}
    wanted = text_tokens(term)
    assert hits == {e.key for e in entries
                    if wanted <= text_tokens(f"{e.title} {e.summary}")}


def test_a_normal_form_spelled_like_a_word_does_not_match_that_word_exactly() -> None:
    # "тока" is the normal form of Токаев and a Russian word (of ток, current).
    assert normalize_token("Токаев") == "тока"
    entries = [entry("name", "Токаев", "Президент Токаев выступил"),
               entry("word", "Сила тока", "Сила тока в сети")]
    m = Matcher([topic('"тока"')])
    assert [h.entry_key for h in m.match(entries)] == ["word"]
    # Not even a candidate: the first stage keeps normal forms apart.
    found, _ = m._candidates(entries, [_entry_text(e) for e in entries])
    assert found == {0: [1]}
    # Unquoted, the word meets its forms and so the name: that is what a quote is for.
    assert {h.entry_key for h in Matcher([topic("тока")]).match(entries)} == {"name", "word"}


QUERY_WORDS = ["Алматы", "Астана", "Токаев", "Toqaev", "увольнение", "тенге", "ереуіл",
               '"Алматы"', '"Tokayev"', "Қазақстан*", "уволи*", "strike*", "news"]


def _query() -> st.SearchStrategy[str]:
    atom = st.tuples(st.sampled_from(["", "", "title:", "summary:", "- title:", "norm:", "^"]),
                     st.sampled_from(QUERY_WORDS)).map("".join)
    pair = st.tuples(atom, st.sampled_from([" AND ", " OR ", " NOT ", " "]), atom).map(
        lambda t: f"({t[0]}{t[1]}{t[2]})")
    near = st.lists(st.sampled_from(QUERY_WORDS[:7]), min_size=2, max_size=3).map(
        lambda ws: f"NEAR({' '.join(ws)}, 3)")
    group = st.lists(st.sampled_from(QUERY_WORDS), min_size=1, max_size=4).map(
        lambda ws: "(" + " OR ".join(w if w.startswith('"') else f'"{w}"' for w in ws) + ")")
    return st.lists(st.one_of(atom, pair, near, group), min_size=1, max_size=3).map(" AND ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A NOT that reads the norm column, in a topic nothing positive of which does.
@example(["(title:news NOT Алматы)"], [("news", "Алматыда", None)])
@given(st.lists(_query(), min_size=1, max_size=4),
       st.lists(st.tuples(FIELD, FIELD, st.one_of(st.none(), FIELD)), min_size=1, max_size=8))
def test_live_matcher_equals_normalised_queries_on_plain_fts5_with_norm_column(
        queries: list[str], rows: list[tuple[str, str, str | None]]) -> None:
    from monitor.errors import QueryError
    from monitor.query import validate_query

    topics = []
    for i, q in enumerate(queries):
        try:
            validate_query(q)
        except QueryError:
            continue
        topics.append(topic(q, f"t{i}"))
    entries = [entry(str(i), t, s, a) for i, (t, s, a) in enumerate(rows)]
    got = {(h.topic_id, h.entry_key) for h in Matcher(topics).match(entries)}
    assert got == _norm_reference(tuple(topics), entries)
    # And the exact matcher still equals the exact queries.
    exact = {(h.topic_id, h.entry_key) for h in Matcher(topics, normalise=False).match(entries)}
    assert exact == _reference(tuple(topics), [entry(e.key, e.title, e.summary) for e in entries]) \
        if all(e.article is None for e in entries) else True


def test_evidence_names_the_raw_word_behind_a_normal_form() -> None:
    m = Matcher([topic("Алматы AND ереуіл")])
    e = entry("a", "Мұнайшылар ереуілге шықты", "Алматыдағы жұмысшылар да қолдады.")
    [hit] = m.match([e])
    assert set(hit.terms) == {"алматыдағы", "ереуілге"}
    # The snippet is raw text, its matched words marked.
    shown = hit.snippet.replace("[[", "").replace("]]", "")
    assert shown in (e.title, e.summary)
    assert "[[ереуілге]]" in hit.snippet or "[[Алматыдағы]]" in hit.snippet
    assert set(hit.found_in) == {"title", "summary"}  # never "norm"
    # The norm column's words are nowhere in the evidence.
    assert "алмат" in entry_norm(e).split() and "алмат" not in hit.terms


def test_a_hit_only_through_normal_forms_has_a_raw_snippet() -> None:
    m = Matcher([topic("увольнение")])
    e = entry("a", "Новости", "Вчера уволили сорок рабочих завода.")
    [hit] = m.match([e])
    assert hit.terms == ("уволили",)
    assert hit.snippet == "Вчера [[уволили]] сорок рабочих завода."
    assert hit.found_in == ("summary",)
    [x] = m.explain("Вчера уволили сорок рабочих")
    assert x.matched and x.terms == ("уволили",) and HIGHLIGHT_OPEN in x.snippet


def test_a_quoted_name_gets_no_normal_forms_in_the_live_matcher() -> None:
    entries = [entry("a", "Toqaev", "x"), entry("b", "Токаев", "x")]
    assert [h.entry_key for h in Matcher([topic('"Tokayev" OR Toqaev')]).match(entries)] == [
        "a", "b"]
    assert [h.entry_key for h in Matcher([topic('"Toqaev"')]).match(entries)] == ["a"]


APOSTROPHES = st.sampled_from(["Kazakhstan's", "a'kim", "s’", "ʼ", "don't", "Qazaqstan’da",
                               "о'кей", "'", "x'y'z", "e\u0301'a", "n'", "’s"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORD, APOSTROPHES, st.text(max_size=12)), max_size=12).map("".join),
       st.one_of(st.none(), st.text(max_size=30)))
def test_entry_norm_is_norm_document(summary: str, article: str | None) -> None:
    assert _WORD_RE.pattern == _TOKEN_RE.pattern
    e = entry("a", "Алматыда ereuil", summary, article)
    assert entry_norm(e) == norm_document(e.title, e.summary, e.article or "")


def test_the_snippet_marks_words_matched_exactly_and_through_normal_forms() -> None:
    m = Matcher([topic("strike OR Астана")])
    e = entry("a", "News", "Workers strike in Астанада and the strikes spread.")
    [hit] = m.match([e])
    assert hit.snippet == "Workers [[strike]] in [[Астанада]] and the [[strikes]] spread."
    assert set(hit.terms) == {"strike", "астанада", "strikes"}


NORM_CHARS = [*"ab казҚ\t\n?1é\u0301-Z_'", "\x01", "ß", "\ud800", "[[", "]]"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(NORM_CHARS), max_size=40).map("".join))
def test_norm_words_hold_the_tokenizers_tokens(text: str) -> None:
    # The fast path trusts normal forms to be tokens already (taken as they
    # are); any text must still hold every token SQLite's tokenizer reads
    # in it, and a plain one exactly those.
    from monitor.match.tokens import _plain

    found = set(norm_words(text).split())
    assert token_bytes(text) <= found
    if _plain().odd.search(text) is None:
        assert found == token_bytes(text)


def _marked_words_by_splitting(norm_hl: str) -> list[int]:
    found, inside = [], False
    for n, chunk in enumerate(norm_hl.split(" ")):
        hit = inside
        for m in re.finditer(r"\[\[|\]\]", chunk):
            inside, hit = m.group(0) == "[[", True
        if hit:
            found.append(n)
    return found


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", " ", "[[", "]]", "c d"]), max_size=30).map("".join))
def test_marked_words_counts_the_words_a_split_would(norm_hl: str) -> None:
    assert marked_words(norm_hl) == _marked_words_by_splitting(norm_hl)


def test_the_plain_characters_of_normal_forms_are_tokens_as_they_are() -> None:
    from monitor.match.norm import _PLAIN_NORM_RE

    plain = [chr(c) for c in range(0x20, 0x2000) if _PLAIN_NORM_RE.fullmatch(chr(c))]
    assert len(plain) == 26 + 10 + 32 + 1
    for c in plain:
        assert token_bytes(c) == (set() if c == " " else {c.encode()})


# --- Matcher.matching: the examples check's one batch reads each text as explain() does


def _shipped_topics() -> list[Topic]:
    from pathlib import Path

    from monitor.config import load_config

    return list(load_config(str(Path(__file__).resolve().parent.parent / "feeds.yaml")).topics)


def test_matching_agrees_with_explain_on_every_shipped_example() -> None:
    topics = _shipped_topics()
    texts = [t for topic in topics for t in (*topic.examples.match, *topic.examples.no_match)]
    assert len(texts) > 100
    for normalise in (True, False):
        matcher = Matcher(topics, normalise=normalise)
        got = matcher.matching(texts)
        for i, text in enumerate(texts):
            explained = matcher.explain(text)
            assert [i in rows for rows in got] == [e.matched for e in explained], text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(
    [*"akz qzt тқаыңі.-'\n", "Kazakhstan ", "Тоқаев ", "OSCE ", "strike ", "ереуіл ",
     "журналист ", "blocked ", "Almaty ", "Алматыда "]),
    max_size=12).map("".join), min_size=1, max_size=5))
def test_matching_agrees_with_explain_on_any_text(texts: list[str]) -> None:
    matcher = _MATCHER_ALL
    got = matcher.matching(texts)
    for i, text in enumerate(texts):
        assert [i in rows for rows in got] == [e.matched for e in matcher.explain(text)]


_MATCHER_ALL = Matcher(_shipped_topics())


def _where_by_characters(highlighted: str) -> tuple[str, list[int]]:
    """For each character of the text without markers, its index in
    ``highlighted`` (plus one for the end), one character at a time."""
    plain, where, i = [], [], 0
    while i < len(highlighted):
        if highlighted.startswith((HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE), i):
            i += len(HIGHLIGHT_OPEN)
            continue
        plain.append(highlighted[i])
        where.append(i)
        i += 1
    return "".join(plain), [*where, len(highlighted)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*"ab [", "[[", "]]", " "]), max_size=40).map("".join))
def test_unmarked_maps_each_plain_character_back_to_its_place(highlighted: str) -> None:
    assert len(HIGHLIGHT_OPEN) == len(HIGHLIGHT_CLOSE) == 2
    plain, where = _where_by_characters(highlighted)
    unmarked = _Unmarked(highlighted)
    assert unmarked.plain == plain
    assert [unmarked.at(i) for i in range(len(plain) + 1)] == where


LONG_ENTRIES = st.lists(
    st.tuples(FIELD, st.lists(WORD, max_size=60).map(" ".join)), min_size=1, max_size=4).map(
    lambda pairs: [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(FAMILIES)), st.sampled_from(sorted(FAMILIES)), LONG_ENTRIES)
def test_a_clause_snippet_left_unmarked_gives_the_window_a_marked_one_gives(
        first: str, second: str, entries: list[Entry]) -> None:
    # The chosen clause's snippet is only a window, re-cut from the whole
    # query's highlights; marking the raw words behind its norm hits (skipped
    # when SQLite's snippet is raw text) must not move that window.
    from monitor.match.batch import _Batch, _normalised
    from monitor.match.evidence import _rehighlight

    clauses = [_normalised(FAMILIES[first][0]), _normalised(FAMILIES[second][-1])]
    whole = f"({clauses[0]}) AND ({clauses[1]})"
    batch = _Batch(entries)
    try:
        for row in batch.hits(whole):
            for clause in clauses:
                fetched = batch.fetch_row(clause, row.rowid)
                assert fetched is not None
                fast = _rehighlight(batch.snippet(fetched), row.columns)
                full = _rehighlight(batch.finish(fetched).snippet, row.columns)
                assert fast == full
    finally:
        batch.close()
