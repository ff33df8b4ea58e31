"""monitor.match: @name expansion, validation, percolation with provenance,
explain(), and the shipped topics of feeds.yaml on the seed article and their
own examples."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.errors import QueryError, QueryTooLarge
from monitor.match import (
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    MAX_PHRASE_TOKENS,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    MAX_TERMS,
    PLAIN_WORDS,
    QUERY,
    Matcher,
    build_fts_query,
    entry_from_text,
    expand_query,
    read_search,
    shared_matcher,
    split_clauses,
    validate_query,
)
from monitor.types import Entry, Topic

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
TOPIC_IDS = {
    "kz-osce-chair", "kz-human-rights", "kz-labour-protests", "kz-internet-freedom",
    "kz-regime", "kz-economy-crisis", "socialist-resistance", "osce-russia-security",
}
TERMS = {
    "kz": ["Kazakhstan", "Kazakh*", "Казахстан*", "Қазақ*", "Qazaq*", "Nur-Sultan"],
    "osce": ["OSCE", "ОБСЕ", "Organization for Security and Co-operation in Europe"],
    "quoted": ['say "hi"'],
    "strike": ["strike*", "забастов*", "ереуіл*"],
}
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def topic(topic_id: str, query: str, exclude: str | None = None) -> Topic:
    fts = build_fts_query(query, exclude, TERMS, topic_id=topic_id)
    validate_query(fts, topic_id=topic_id)
    return Topic(id=topic_id, name=topic_id, query=query, fts_query=fts, exclude=exclude)


def entry(key: str, title: str, summary: str = "") -> Entry:
    return Entry(key=key, title=title, summary=summary, url=None, published_at=EPOCH)


def marked(snippet: str) -> list[str]:
    pattern = re.escape(HIGHLIGHT_OPEN) + r"(.*?)" + re.escape(HIGHLIGHT_CLOSE)
    return re.findall(pattern, snippet)


@pytest.fixture(scope="module")
def shipped() -> tuple[Topic, ...]:
    return tuple(load_config(ROOT / "feeds.yaml").topics)


# ---------------------------------------------------------------- expansion


def test_expand_quotes_terms_and_keeps_prefixes() -> None:
    # A one-word term is bare (the normalised matching widens it), others quoted.
    assert expand_query("@kz", TERMS) == (
        '(Kazakhstan OR Kazakh* OR Казахстан* OR Қазақ* OR Qazaq* OR "Nur-Sultan")'
    )
    assert expand_query("@x", {"x": ['"Kurmanov"', "AND", "or*", "x_y"]}) == (
        '("Kurmanov" OR "AND" OR "or"* OR "x_y")')


def test_expand_phrase_and_embedded_quote() -> None:
    assert expand_query("@osce", TERMS) == (
        '(OSCE OR ОБСЕ OR "Organization for Security and Co-operation in Europe")'
    )
    assert expand_query("@quoted", TERMS) == '("say ""hi""")'


def test_expand_leaves_the_rest_of_the_query_alone() -> None:
    assert expand_query('title:@osce AND (x OR "@kz") NOT y*', TERMS) == (
        'title:(OSCE OR ОБСЕ OR "Organization for Security and Co-operation in Europe")'
        ' AND (x OR "@kz") NOT y*'
    )


def test_undefined_name_names_the_topic_and_the_name() -> None:
    with pytest.raises(QueryError) as err:
        expand_query("@kz AND @nope", TERMS, topic_id="kz-test")
    assert "@nope" in str(err.value)
    assert "kz-test" in str(err.value)
    assert err.value.context["topic"] == "kz-test"


def test_empty_term_list_is_an_error() -> None:
    with pytest.raises(QueryError, match="empty"):
        expand_query("@none", {"none": ["  ", "*"]}, topic_id="t")


def test_build_fts_query_folds_exclude_in() -> None:
    assert build_fts_query("@strike", "football", TERMS) == (
        '((strike* OR забастов* OR ереуіл*)) NOT (football)'
    )
    assert build_fts_query("a", None, TERMS) == "a"
    assert build_fts_query("a", "  ", TERMS) == "a"


# ---------------------------------------------------------------- validation


def test_valid_queries_pass() -> None:
    for q in ['"a b"* AND NEAR(c d, 5)', "title:x OR summary:(y AND z)", "^a + b"]:
        validate_query(q)


@pytest.mark.parametrize("query", [
    "a AND", '"unterminated', "nosuchcolumn:x", "a-b", "*", "", "   ", "a\x00b", "(a OR",
])
def test_invalid_queries_raise_query_error(query: str) -> None:
    with pytest.raises(QueryError) as err:
        validate_query(query, topic_id="t9")
    assert err.value.message.startswith("invalid query")
    assert err.value.context["topic"] == "t9"


def test_expansion_makes_punctuated_terms_safe() -> None:
    # Unquoted, "Nur-Sultan" is a column filter SQLite rejects; expanded it is a phrase.
    with pytest.raises(QueryError):
        validate_query("Nur-Sultan")
    validate_query(expand_query("@kz OR @quoted", TERMS))


# ---------------------------------------------------------------- size limits


def test_size_limits_are_inclusive() -> None:
    at_chars = "a" * MAX_QUERY_CHARS
    assert expand_query(at_chars, TERMS) == at_chars
    with pytest.raises(QueryTooLarge, match=f"{MAX_QUERY_CHARS:,} characters") as err:
        expand_query(at_chars + "a", TERMS, topic_id="t1")
    assert err.value.context == {"topic": "t1"}  # the query itself is not echoed
    validate_query(" ".join(["a"] * MAX_QUERY_TERMS))
    with pytest.raises(QueryTooLarge, match=f"{MAX_QUERY_TERMS + 1:,} words and phrases"):
        validate_query(" ".join(["a"] * (MAX_QUERY_TERMS + 1)))
    # Operators and column names are not terms; every string is one.
    validate_query("title:" + " OR ".join(['"a b"'] * MAX_QUERY_TERMS))
    validate_query('"' + " ".join(["a"] * MAX_PHRASE_TOKENS) + '"')
    with pytest.raises(QueryTooLarge, match=f"{MAX_PHRASE_TOKENS + 1} words"):
        validate_query('"' + "-".join(["a"] * (MAX_PHRASE_TOKENS + 1)) + '"')


def test_term_limit_counts_expanded_lists() -> None:
    many = {"many": [f"t{i}" for i in range(MAX_QUERY_TERMS // 2 + 1)]}
    validate_query(expand_query("@many", many))
    with pytest.raises(QueryTooLarge, match="after @name expansion"):
        validate_query(expand_query("@many OR @many", many))


# ---------------------------------------------------------------- reading a search


@pytest.mark.parametrize(("text", "fts"), [
    ("Putin's war", '"Putin\'s" AND "war"'),
    ("Russia-Ukraine", '"Russia-Ukraine"'),
    ("U.S.", '"U.S."'),
    ("Kazakhstan: OSCE", '"Kazakhstan:" AND "OSCE"'),
    ('"Kazakh protests', '"Kazakh" AND "protests"'),
    ("@strike at Karaganda's mine", '(strike* OR забастов* OR ереуіл*) AND "at" AND '
                                    '"Karaganda\'s" AND "mine"'),
    ("Kazakh* mine's", '"Kazakh"* AND "mine\'s"'),
    ("a - : b", '"a" AND "b"'),
    ("!!! ...", '""'),
])
def test_text_that_is_not_a_query_is_read_as_plain_words(text: str, fts: str) -> None:
    reading = read_search(text, TERMS)
    assert (reading.kind, reading.fts_query) == (PLAIN_WORDS, fts)
    assert reading.reason


@pytest.mark.parametrize("text", ["title:kazakhstan", "a OR b", "NEAR(a b, 3)", '"a b"*',
                                  "@kz AND @strike", "x NOT y", "—"])
def test_a_valid_query_is_read_as_a_query(text: str) -> None:
    reading = read_search(text, TERMS)
    assert (reading.kind, reading.fts_query, reading.reason) == (
        QUERY, expand_query(text, TERMS), None)


def test_reading_a_search_keeps_its_errors() -> None:
    with pytest.raises(QueryError, match="undefined term list @nope"):
        read_search("@nope Putin's", TERMS)
    with pytest.raises(QueryError, match="empty"):
        read_search("  ", TERMS)
    with pytest.raises(QueryTooLarge, match="query too long"):  # never retried as plain words
        read_search("a'" * MAX_QUERY_CHARS, TERMS)
    with pytest.raises(QueryTooLarge, match="too many terms"):
        read_search(" ".join(["a'"] * (MAX_QUERY_TERMS + 1)), TERMS)


# ---------------------------------------------------------------- percolation


def test_hits_carry_terms_and_snippet() -> None:
    m = Matcher([topic("t", "@kz AND @strike")])
    hits = m.match([
        entry("a", "Miners strike in Kazakhstan", "Workers at the Karaganda coalfield walked out."),
        entry("b", "Weather in Kazakhstan"),
    ])
    assert [h.entry_key for h in hits] == ["a"]
    assert hits[0].topic_id == "t"
    assert hits[0].terms == ("strike", "kazakhstan")
    assert set(marked(hits[0].snippet)) == {"strike", "Kazakhstan"}


def test_russian_inflected_text_matches_cyrillic_prefixes() -> None:
    m = Matcher([topic("t", "@kz AND @strike")])
    hits = m.match([entry("ru", "Забастовка нефтяников в Казахстане продолжается")])
    assert hits and hits[0].terms == ("забастовка", "казахстане")


@pytest.mark.parametrize("text", [
    "Қазақстанда мұнайшылар ереуілге шықты",  # Kazakh Cyrillic
    "Qazaqstanda ereuil: strike at the oilfield",  # Kazakh Latin
    "KAZAKHSTÁN: STRIKE",  # case and diacritics folded
])
def test_kazakh_scripts_and_folding(text: str) -> None:
    m = Matcher([topic("t", "@kz AND @strike")])
    assert len(m.match([entry("k", text)])) == 1


def test_title_filter_sees_only_titles() -> None:
    m = Matcher([topic("t", "title:@kz")])
    hits = m.match([entry("t", "Kazakhstan votes"), entry("s", "Elections", "in Kazakhstan")])
    assert [h.entry_key for h in hits] == ["t"]


def test_terms_are_distinct_lowercase_in_order_and_capped() -> None:
    m = Matcher([topic("t", "@kz")])
    words = " ".join(f"Kazakh{i}" for i in range(30))
    (hit,) = m.match([entry("x", "KAZAKHSTAN kazakhstan Kazakhs", words)])
    assert hit.terms[:2] == ("kazakhstan", "kazakhs")
    assert len(hit.terms) == MAX_TERMS


def test_feed_text_cannot_forge_highlight_markers() -> None:
    m = Matcher([topic("t", "@kz")])
    for fake in (f"{HIGHLIGHT_OPEN}fake{HIGHLIGHT_CLOSE}", "[[[fake]]]", "]]]x[[[["):
        (hit,) = m.match([entry("x", f"{fake} news from Kazakhstan")])
        assert marked(hit.snippet) == ["Kazakhstan"]
        assert hit.terms == ("kazakhstan",)


def test_one_bad_entry_or_topic_does_not_lose_the_others() -> None:
    good = topic("good", "@kz")
    broken = Topic(id="broken", name="broken", query="a AND", fts_query="a AND")
    m = Matcher([broken, good])
    hits = m.match([
        entry("surrogate", "Kazakhstan \ud800 lone surrogate"),
        entry("nul", "Kazakhstan\x00after the NUL"),
        entry("huge", "Kazakhstan", "word " * 200_000),
        entry("plain", "Astana", "nothing about it"),
    ])
    assert [(h.topic_id, h.entry_key) for h in hits] == [
        ("good", "surrogate"), ("good", "nul"), ("good", "huge")]


def test_empty_inputs() -> None:
    assert Matcher([topic("t", "@kz")]).match([]) == []
    assert Matcher([]).match([entry("a", "Kazakhstan")]) == []


def test_snippet_shows_the_topic_words_not_the_context() -> None:
    places = "Almaty, Astana, Kazakhstan and the Kazakh steppe. " * 5
    summary = places + "Later that month the economic crisis reached the mines. " + places
    m = Matcher([topic("t", '@kz AND ("economic crisis" OR inflation)')])
    (hit,) = m.match([entry("x", "A long report", summary)])
    assert "economic crisis" in marked(hit.snippet)


# ---------------------------------------------------------------- explain


def test_entry_from_text_puts_first_line_in_title_and_all_in_summary() -> None:
    e = entry_from_text("\n  Headline here \nBody text")
    assert e.title == "Headline here"
    assert e.summary == "\n  Headline here \nBody text"
    assert entry_from_text("body", title="T").title == "T"


def test_explain_matched_and_close_clauses() -> None:
    m = Matcher([topic("t", "@kz AND @osce AND @strike"), topic("u", "@osce")])
    near, other = m.explain("Kazakhstan hosts a summit\nMiners strike in Karaganda")
    assert not near.matched
    assert near.close_clauses == ("@kz", "@strike")
    assert near.terms == () and near.snippet == ""
    assert not other.matched and other.close_clauses == ()
    hit = m.explain("OSCE says Kazakh miners' strike is legal")[0]
    assert hit.matched
    assert hit.terms == ("osce", "kazakh", "strike")
    assert HIGHLIGHT_OPEN in hit.snippet


def test_explain_reports_an_exclusion() -> None:
    m = Matcher([topic("t", "@kz AND @strike", exclude="football")])
    (e,) = m.explain("Kazakhstan football team strikes late")
    assert not e.matched and e.excluded
    assert e.close_clauses == ("@kz", "@strike")


@pytest.mark.parametrize(("query", "clauses"), [
    ("@kz AND @strike", ["@kz", "@strike"]),
    ('@kz AND (a OR "b AND c") AND title:x', ["@kz", '(a OR "b AND c")', "title:x"]),
    ("a NOT b AND c", ["a NOT b", "c"]),
    ("a OR b AND c", ["a OR b AND c"]),
    ("a b", ["a b"]),
    ("NEAR(a b, 5) AND c", ["NEAR(a b, 5)", "c"]),
    ("", []),
])
def test_split_clauses(query: str, clauses: list[str]) -> None:
    assert split_clauses(query) == clauses


# ---------------------------------------------------------------- shipped topics


def test_shipped_topics_are_the_designed_eight(shipped: tuple[Topic, ...]) -> None:
    assert {t.id for t in shipped} == TOPIC_IDS
    cyrillic = re.compile("[\u0400-\u04ff]")
    for t in shipped:
        assert len(t.examples.match) >= 3 and len(t.examples.no_match) >= 3, t.id
        assert any(cyrillic.search(x) for x in t.examples.match + t.examples.no_match), t.id


def test_seed_article_matches_every_topic(shipped: tuple[Topic, ...]) -> None:
    title, _, summary = (DATA / "seed-article.txt").read_text(encoding="utf-8").partition("\n")
    hits = Matcher(shipped).match([entry("seed", title.strip(), summary)])
    assert {h.topic_id for h in hits} == TOPIC_IDS
    for h in hits:
        assert h.terms and marked(h.snippet), h.topic_id


@pytest.mark.parametrize("topic_id", sorted(TOPIC_IDS))
def test_shipped_examples_behave(shipped: tuple[Topic, ...], topic_id: str) -> None:
    (t,) = [t for t in shipped if t.id == topic_id]
    m = Matcher([t])
    for text in t.examples.match:
        assert m.explain(text)[0].matched, text
    for text in t.examples.no_match:
        assert not m.explain(text)[0].matched, text


def test_shipped_feeds_cover_the_sources() -> None:
    feeds = load_config(ROOT / "feeds.yaml").feeds
    assert len(feeds) >= 24
    assert len({f.id for f in feeds}) == len(feeds)
    assert {f.language for f in feeds} == {"en", "ru", "kk"}
    for f in feeds:
        assert re.fullmatch(r"[a-z0-9-]+", f.id) and f.url.startswith("https://") and f.tags


# ---------------------------------------------------------------- properties

ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=5))
def test_match_never_raises(pairs: list[tuple[str, str]]) -> None:
    m = Matcher([topic("a", "@kz AND @strike"), topic("b", "title:@osce OR NEAR(x y, 3)")])
    entries = [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)]
    for h in m.match(entries):
        assert h.entry_key in {e.key for e in entries}
    for t, _ in pairs[:1]:
        assert len(m.explain(t)) == 2


NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
BODY = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="*"), min_size=1,
    max_size=12,
).map(str.strip).filter(bool)
TERM = st.tuples(BODY, st.booleans()).map(lambda bp: bp[0] + ("*" if bp[1] else ""))
STRING = re.compile(r'"((?:[^"]|"")*)"(\*?)|([^\W_]+\*?)')
QUOTED_TERM = re.compile(r'"((?:[^"]|"")+)"(\*?)')


def _as_read(term: str) -> str:
    """A term as the expansion's units read back: a term quoted in the list
    is its string, unquoted."""
    m = QUOTED_TERM.fullmatch(term)
    return m.group(1).replace('""', '"') + m.group(2) if m else term


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(NAMES, st.lists(TERM, min_size=1, max_size=5), min_size=1, max_size=4))
def test_expand_round_trip(terms: dict[str, list[str]]) -> None:
    names = list(terms)
    expanded = expand_query(" AND ".join(f"@{n}" for n in names), terms)
    groups = split_clauses(expanded)
    assert len(groups) == len(names)
    for name, group in zip(names, groups, strict=True):
        assert group.startswith("(") and group.endswith(")")
        found = [bare if bare else body.replace('""', '"') + star
                 for body, star, bare in STRING.findall(group[1:-1]) if bare != "OR"]
        assert found == [_as_read(t) for t in terms[name]]
    validate_query(expanded)  # SQLite accepts whatever the term lists hold


def test_rehighlight_keeps_marked_spans_whole() -> None:
    from monitor.match import _rehighlight

    h = "Intro. The [[OSCE]] chair goes to [[Kazakhstan]] in [[two thousand ten]] says Moscow."
    assert _rehighlight("…chair goes to Kazakhstan in two…", [h]) == (
        "…chair goes to [[Kazakhstan]] in [[two thousand ten]]…")
    assert _rehighlight("…SCE chair goes…", [h]) == "…[[OSCE]] chair goes…"
    assert _rehighlight("Intro. The OSCE…", ["x", h]) == "Intro. The [[OSCE]]…"
    assert _rehighlight("not there", [h]) is None


# Pruning (only the alternatives a batch can match reach SQLite) must never
# change a result: compare with the full queries run on a plain FTS5 table.

def _shipped_words() -> list[str]:
    import yaml

    data = yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))
    lists = [*data["terms"].values(), *(e["names"] for e in data["entities"].values())]
    words = [w.rstrip("*") for terms in lists for w in terms]
    # Letters of FTS5's keywords too: a pruner that read "OR" as "R" kept them.
    return [*words, "the", "и", "в", "strike", "Kazakhstan's", "news", "2024", "-", ":",
            "r", "or", "OR", "near", "d", "t"]


WORDS = _shipped_words()
SUFFIXES = ["", "", "а", "е", "ы", "да", "s", "'s", "ing", "ов"]
WORD = st.tuples(st.sampled_from(WORDS), st.sampled_from(SUFFIXES)).map("".join)
TEXT = st.lists(WORD, max_size=25).map(" ".join)


def _reference(topics: tuple[Topic, ...], entries: list[Entry]) -> set[tuple[str, str]]:
    import sqlite3

    from monitor.match import TOKENIZER

    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE r USING fts5(title, summary, tokenize='{TOKENIZER}')")
    db.executemany("INSERT INTO r(rowid, title, summary) VALUES (?, ?, ?)",
                   [(i, e.title, e.summary) for i, e in enumerate(entries)])
    out = {(t.id, entries[rowid].key) for t in topics
           for (rowid,) in db.execute("SELECT rowid FROM r WHERE r MATCH ?", (t.fts_query,))}
    db.close()
    return out


@functools.cache
def _shipped_matcher() -> tuple[tuple[Topic, ...], Matcher]:
    topics = tuple(load_config(ROOT / "feeds.yaml").topics)
    return topics, Matcher(topics)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([("R news", "or r"), ("Kazakh Almaty", "тенге OR")])
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6))
def test_pruned_queries_find_exactly_what_full_queries_find(
        pairs: list[tuple[str, str]]) -> None:
    topics, matcher = _shipped_matcher()
    entries = [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)]
    got = {(h.topic_id, h.entry_key) for h in matcher.match(entries)}
    assert got == _norm_reference(topics, entries)


def _norm_reference(topics: tuple[Topic, ...], entries: list[Entry]) -> set[tuple[str, str]]:
    """Every query rewritten by normalised_query, unpruned, on a plain FTS5
    table of (title, summary, article, norm): what the archive's search runs."""
    import sqlite3

    from monitor.match import TOKENIZER
    from monitor.normalize import norm_document
    from monitor.normquery import normalised_query

    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE r USING fts5(title, summary, article, norm, "
               f"tokenize='{TOKENIZER}')")
    db.executemany("INSERT INTO r(rowid, title, summary, article, norm) VALUES (?, ?, ?, ?, ?)",
                   [(i, e.title, e.summary, e.article,
                     norm_document(e.title or "", e.summary or "", e.article or ""))
                    for i, e in enumerate(entries)])
    out = {(t.id, entries[rowid].key) for t in topics
           for (rowid,) in db.execute("SELECT rowid FROM r WHERE r MATCH ?",
                                      (normalised_query(t.fts_query),))}
    db.close()
    return out


@functools.cache
def _shipped_exact_matcher() -> tuple[tuple[Topic, ...], Matcher]:
    topics = tuple(load_config(ROOT / "feeds.yaml").topics)
    return topics, Matcher(topics, normalise=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([("R news", "or r"), ("Kazakh Almaty", "тенге OR")])
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6))
def test_exact_matcher_finds_exactly_what_full_exact_queries_find(
        pairs: list[tuple[str, str]]) -> None:
    topics, matcher = _shipped_exact_matcher()
    entries = [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)]
    got = {(h.topic_id, h.entry_key) for h in matcher.match(entries)}
    assert got == _reference(topics, entries)


# The first stage of percolation reads tokens in Python and the needs of each
# query from its text; both must agree with SQLite or true hits are lost.

def _sqlite_tokens(text: str) -> set[str]:
    import sqlite3

    from monitor.match import TOKENIZER, _clean

    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{TOKENIZER}')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    db.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", (_clean(text),))
    out = {str(term) for (term,) in db.execute("SELECT term FROM v")}
    db.close()
    return out


ODD_CHARS = ("_'’“”—–…\u00a0\u00ad\u0301\u0307İıßøÆŒﬁẞ\ue000\U0001f600\U00010400\x1a"
             "ЁёЙйҚқҒғӘәӨөҮүҰұІі\u200b\u2028\ud800\x00[[]]")
ANY_TEXT = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(ODD_CHARS)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_python_tokens_are_sqlite_tokens(text: str) -> None:
    from monitor.match import text_tokens

    assert text_tokens(text) == _sqlite_tokens(text)


def test_python_tokens_on_every_plane_character() -> None:
    from monitor.match import text_tokens

    # Every character of the first plane once, between letters, in one text.
    chars = [chr(c) for c in range(1, 0x10000, 7) if not 0xD800 <= c <= 0xDFFF]
    text = " ".join(f"a{c}b" for c in chars)
    assert text_tokens(text) == _sqlite_tokens(text)


def _haystack_tokens(text: str) -> set[str]:
    from monitor.match.tokens import token_text

    return set(token_text(text).decode().split())


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_token_text_holds_every_sqlite_token(text: str) -> None:
    from monitor.match.tokens import _plain

    # The first stage's one-pass text: never a token fewer than SQLite makes
    # (a hit would be lost), and exactly them where C calls alone made it.
    found = _haystack_tokens(text)
    assert _sqlite_tokens(text) <= found
    if _plain().odd.search(text) is None:
        assert found == _sqlite_tokens(text)


def test_token_text_on_every_plane_character() -> None:
    chars = [chr(c) for c in range(1, 0x10000, 7) if not 0xD800 <= c <= 0xDFFF]
    text = " ".join(f"a{c}b" for c in chars)
    assert _sqlite_tokens(text) <= _haystack_tokens(text)


@pytest.mark.parametrize("text", [
    "«Забастовка» нефтяников\u00a0в Жанаозене — «ҚазМұнайГаз» … ЁЛКА",
    "Tokayev’s “new” decree — the Mazhilis… • Astana",
    "Алматыдағы ереуіл: жұмысшылар «жалақы» талап етті",
])
def test_token_text_of_plain_text_is_its_tokens_in_order(text: str) -> None:
    from monitor.match.tokens import ordered_tokens, token_text

    assert token_text(text).decode().split() == ordered_tokens(text)


def test_every_shipped_topic_has_a_necessary_condition(shipped: tuple[Topic, ...]) -> None:
    from monitor.match import necessary

    # Without one, every item of every feed would go through SQLite.
    assert all(necessary(t.fts_query) for t in shipped)


_ATOMS = ["kazakhstan", "kazakh*", "strike", "strik*", '"air strike"', '"air strike"*',
          "осбе", "забастов*", "ereuil", "tokayev", "astana", '"st" + "petersburg"',
          "qazaq*", "osce", "protest*", "a", "x_y"]


def _query(depth: int) -> st.SearchStrategy[str]:
    atom = st.tuples(st.sampled_from(["", "", "title:", "summary:", "- title:",
                                      "{title summary}:", "^"]),
                     st.sampled_from(_ATOMS)).map("".join)
    if depth == 0:
        return atom
    sub = _query(depth - 1)
    return st.one_of(
        atom,
        st.tuples(sub, st.sampled_from([" AND ", " OR ", " NOT ", " "]), sub).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.lists(st.sampled_from(_ATOMS[:6]), min_size=2, max_size=3).map(
            lambda ws: f"NEAR({' '.join(ws)}, 3)"),
        st.tuples(st.sampled_from(["title:", "summary:", ""]), sub).map(
            lambda t: f"{t[0]}({t[1]})"))


_VOCAB = ["Kazakhstan", "Kazakhstani", "strike", "striking", "air", "Air-strike", "strikes",
          "ОСБЕ", "забастовка", "Ereuil", "Tokayev", "Astana", "St", "Petersburg", "Qazaqstan",
          "OSCE", "protesters", "a", "x_y", "x", "y", "news", "the", "é", "Ёж"]
# Words joined as real text joins them: curly quotes, guillemets, dashes, the
# no-break space and symbols the first stage folds only word by word.
_SEPS = [" ", " ", " ", "’", " «", "» ", " — ", "\u00a0", "…", "-", "★", "→", "ü"]
_FIELD = st.lists(st.tuples(st.sampled_from(_VOCAB), st.sampled_from(_SEPS)),
                  max_size=12).map(lambda ws: "".join(w + s for w, s in ws))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A negated column filter reads the norm column: it was left empty, and the
# title's normal form escaped the NOT (found by this test, stop 15).
@example(["(NEAR(kazakhstan kazakh*, 3) NOT - title:осбе)"], [("Kazakhstan ОСБЕ", "")])
@example(["kazakhstan NOT -{title summary}: осбе"], [("Kazakhstan ОСБЕ", "")])
@given(st.lists(_query(3), min_size=1, max_size=4),
       st.lists(st.tuples(_FIELD, _FIELD), min_size=1, max_size=8))
def test_matcher_finds_exactly_what_plain_fts5_finds(queries: list[str],
                                                    pairs: list[tuple[str, str]]) -> None:
    topics = []
    for i, q in enumerate(queries):
        try:
            validate_query(q)
        except QueryError:
            continue
        topics.append(Topic(id=f"t{i}", name=f"t{i}", query=q, fts_query=q))
    entries = [entry(str(i), t, s) for i, (t, s) in enumerate(pairs)]
    got = {(h.topic_id, h.entry_key) for h in Matcher(topics).match(entries)}
    assert got == _norm_reference(tuple(topics), entries)
    exact = {(h.topic_id, h.entry_key) for h in Matcher(topics, normalise=False).match(entries)}
    assert exact == _reference(tuple(topics), entries)


def test_near_with_overlapping_phrases_still_hits() -> None:
    # SQLite 3.40's snippet() fails ("database disk image is malformed") on
    # this valid query; the hit must survive with evidence made in Python.
    q = 'kazakhstan OR NEAR("air strike" strike, 3)'
    validate_query(q)
    t = Topic(id="near", name="near", query=q, fts_query=q)
    hits = Matcher([t]).match([entry("a", "", "Kazakhstan Air-strike"),
                               entry("b", "Nothing", "here")])
    assert [h.entry_key for h in hits] == ["a"]
    assert HIGHLIGHT_OPEN in hits[0].snippet
    assert Matcher([t]).explain("An air strike strike in Kazakhstan")[0].matched


def test_shared_matcher_is_built_once_per_set_of_topics() -> None:
    # The examples check and the poll after it share one Matcher; a topic
    # edited (a daemon's reload) gets its own, matching the new query.
    strike = Topic(id="t", name="T", query="strike", fts_query='"strike"')
    assert shared_matcher((strike,)) is shared_matcher((Topic(**vars(strike)),))
    walkout = Topic(id="t", name="T", query="walkout", fts_query='"walkout"')
    entry = Entry(key="k", title="A walkout at the port", summary="", url=None,
                  published_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert shared_matcher((walkout,)) is not shared_matcher((strike,))
    assert [h.entry_key for h in shared_matcher((walkout,)).match([entry])] == ["k"]
    assert shared_matcher((strike,)).match([entry]) == []
