"""Normalisation (monitor.normalize) and its query rewriting (monitor.normquery),
proven against scratch FTS5 tables with our tokenizer, filled by normalize_text."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.errors import QueryError
from monitor.normalize import normalize_term, normalize_text, normalize_token, tokens
from monitor.normquery import normalised_query
from monitor.query import TOKENIZER, validate_query

DATA = Path(__file__).parent / "data"
SCHEMA = f"CREATE VIRTUAL TABLE t USING fts5(title, summary, norm, tokenize='{TOKENIZER}')"


def _table(rows: Sequence[tuple[str, str]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(SCHEMA)
    db.executemany(
        "INSERT INTO t(rowid, title, summary, norm) VALUES (?, ?, ?, ?)",
        [(i, title, summary, normalize_text(title + " " + summary))
         for i, (title, summary) in enumerate(rows)])
    return db


def _hits(db: sqlite3.Connection, query: str, *, normalised: bool = True) -> set[int]:
    # The exact reading searches every column but norm, as normalised_query's does.
    fts = normalised_query(query) if normalised else f"-norm:({query})"
    return {r[0] for r in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (fts,))}


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = _table([(text, "") for text in ROWS])
    yield conn
    conn.close()


ROWS = [
    "Тоқаев Алматыда сөйледі",  # 0 Kazakh
    "Президент Токаев провёл совещание",  # 1 Russian
    "Toqaev Qazaqstanda jurnalisterdi qabyldady",  # 2 Kazakh, 2021-style ASCII
    "Курс тенге упал",  # 3
    "Теңгенің бағамы түсті",  # 4
    "Рабочих уволили с завода",  # 5
    "Массовое увольнение нефтяников",  # 6
    "neftyaniki-ob-yavili-golodovku-v-zhanaozene",  # 7 transliterated slug
    "Голодовка продолжается",  # 8
    "Miners strike in Astana",  # 9
    "Астана готовится к саммиту",  # 10
    "Rally held in Almatyda and Astanada",  # 11 Kazakh ASCII case endings
    "Әкім отставкаға кетті",  # 12
    "Аким области ушёл в отставку",  # 13
    "Айнур Курманов выступил",  # 14
    "Алия Курманова победила",  # 15
    "Токаев приехал в Алматы",  # 16
    "Қазақстанның мұнайшылары ереуілге шықты",  # 17
]

EXAMPLES = [
    # (query term, a row it must now meet, exact reading missed it)
    ("Toqaev", 0), ("Toqaev", 1), ("Токаев", 0), ("Тоқаев", 1), ("Tokayev", 1),
    ("Qazaqstanda", 17), ("Қазақстан", 2), ("ereuil", 17),
    ("Almaty", 11), ("Astana", 11),
    ("Алматы", 0), ("Алматыдағы", 16), ("Астанада", 10),
    ("теңге", 3), ("тенге", 4),
    ("уволили", 6), ("увольнение", 5), ("увольнени*", 5), ("uvolnenia", 5),
    ("golodovka", 8), ("голодовка", 7), ("нефтяники", 7),
    ("әкім", 13), ("аким", 12),
]


@pytest.mark.parametrize(("term", "row"), EXAMPLES)
def test_term_meets_its_other_form(db: sqlite3.Connection, term: str, row: int) -> None:
    assert row not in _hits(db, term, normalised=False)
    assert row in _hits(db, term)


@pytest.mark.parametrize(("a", "b"), [
    ("Toqaev", "Тоқаев"), ("Тоқаев", "Токаев"), ("Tokayev", "Токаева"),
    ("Qazaqstanda", "Қазақстан"), ("Қазақстанда", "Қазақстанның"),
    ("Almatyda", "Almaty"), ("Алматыда", "Алматы"), ("Алматыдағы", "Алматы"),
    ("Астанада", "Астана"), ("Astanada", "Astana"),
    ("теңге", "тенге"), ("әкім", "аким"), ("акимов", "аким"),
    ("уволили", "увольнение"), ("uvolnenia", "увольнения"),
    ("golodovka", "голодовку"), ("neftyaniki", "нефтяники"),
    ("ереуіл", "ereuil"), ("ұсталды", "ustaldy"), ("Şymkent", "s'ymkent"),
    ("ákim", "әкім"), ("strikes", "striking"),
])
def test_forms_share_one_normal_form(a: str, b: str) -> None:
    assert normalize_token(a) == normalize_token(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Kurmanov", "Kurmanova"),  # stemming joins them...
])
def test_quoted_name_stays_exact(db: sqlite3.Connection, a: str, b: str) -> None:
    assert normalize_token(a) == normalize_token(b)
    assert {14, 15} <= _hits(db, "Курманов")
    # ...a quoted term is the exact marker: only the word as written.
    assert _hits(db, '"Курманов"') == {14}
    assert _hits(db, '"Курманова"') == {15}


def test_short_words_and_names_keep_their_ending() -> None:
    # A minimum stem keeps short words whole: Ақорда is not Ақор + locative.
    assert normalize_token("Ақорда") == normalize_token("Ақордада")
    assert normalize_token("Қазақстан") == normalize_token("Қазақстанда")
    assert normalize_token("журналист") == normalize_token("журналистің")
    # блокада is Russian: not блок + Kazakh locative.
    assert normalize_token("блокада") != normalize_token("блок")


def test_normalize_term_prefix_and_nothing_left() -> None:
    assert normalize_term("увольнени*") == normalize_token("увольнение") + "*"
    assert normalize_term("Strikes") == "strike"
    assert normalize_term("...") is None
    assert normalize_term("two words") is None


# --------------------------------------------------------------------------
# The rewritten query: what stays exact, and that SQLite accepts it


@pytest.mark.parametrize("query", [
    "Токаев", "strike*", '"Курманов"', "title:Токаев", "{title summary}:Astana",
    "-title:strike", "^strike", "NEAR(Токаев уволили, 3)", 'NEAR("Курманов" x)',
    "strike OR (Astana NOT Kurmanov)", "a AND (b OR c*) NOT d", "summary:(a OR b)",
    '"a" + "b"', "Putin's war",
])
def test_rewritten_query_is_valid_when_the_original_is(query: str) -> None:
    db = _table([])
    try:
        validate_query(query)
    except QueryError:
        with pytest.raises(sqlite3.OperationalError):
            db.execute("SELECT rowid FROM t WHERE t MATCH ?", (normalised_query(query),))
        return
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", (normalised_query(query),)).fetchall()


def test_column_filters_quoted_and_first_token_stay_exact() -> None:
    for query in ("title:Токаев", "{title summary}:Astana", "-title:x", 'title : "a b"',
                  "title:(a OR b)", '"a" + "b"'):
        assert normalised_query(query) == query
    assert normalised_query('"Курманов"') == '-norm:"Курманов"'
    assert normalised_query("^strike") == "-norm:^strike"
    assert normalised_query("Токаев") == '(-norm:Токаев OR norm:"тока")'
    assert normalised_query("увольнени*") == '(-norm:увольнени* OR norm:"увол"*)'


def test_column_filter_does_not_widen_to_summary() -> None:
    db = _table([("Токаев", ""), ("", "Токаева встретили")])
    assert _hits(db, "title:Токаев") == {0}
    assert _hits(db, "Токаев") == {0, 1}


def test_near_is_matched_through_normal_forms() -> None:
    db = _table([("Рабочих уволили, сообщил Токаев", ""), ("Токаев", "далеко " * 20 + "уволили")])
    assert _hits(db, "NEAR(Токаева увольнение, 5)", normalised=False) == set()
    assert _hits(db, "NEAR(Токаева увольнение, 5)") == {0}


# --------------------------------------------------------------------------
# Real text: Kazakh and Russian items of the shared topic-eval set


def _items() -> dict[str, str]:
    out = {}
    for line in (DATA / "topic-eval" / "items.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out[d["id"]] = d["title"] + " " + d.get("summary", "")
    return out


def test_real_kazakh_and_russian_items() -> None:
    items = _items()
    ids = sorted(items)
    db = _table([(items[i], "") for i in ids])
    row = {i: n for n, i in enumerate(ids)}
    # Kazakh (tengri-110): тұрғындардың / тұрғындарының, "of the residents".
    assert row["tengri-110"] not in _hits(db, "тұрғындар", normalised=False)
    assert row["tengri-110"] in _hits(db, "тұрғындар")
    # Russian (tengri-123): "предупредил акимов", Акорды.
    assert row["tengri-123"] not in _hits(db, "аким", normalised=False)
    assert row["tengri-123"] in _hits(db, "аким")
    assert row["tengri-123"] in _hits(db, "Ақорда")
    assert normalize_token("тұрғындардың") == normalize_token("тұрғындарының")
    # Kazakh (rferlnews-24): жағалауынан, "from the shore".
    assert row["rferlnews-24"] in _hits(db, "жағалау")


def test_tokens_cut_real_text_as_fts5_does() -> None:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE w USING fts5(x, tokenize='{TOKENIZER}')")
    db.execute("CREATE VIRTUAL TABLE wv USING fts5vocab(w, instance)")
    for text in _items().values():
        db.execute("DELETE FROM w")
        db.execute("INSERT INTO w(rowid, x) VALUES (1, ?)", (text,))
        fts = [r[0] for r in db.execute("SELECT term FROM wv ORDER BY offset")]
        assert len(tokens(text)) == len(fts)
    db.close()


def test_real_items_normalise_idempotently() -> None:
    for text in _items().values():
        once = normalize_text(text)
        assert normalize_text(once) == once


# --------------------------------------------------------------------------
# Properties

_ALPHABET = st.sampled_from(
    list("abcdeghijklmnopqrstuvwxyzqäöüūğñşıáóúǵńý'’ ")
    + list("абвгдежзийклмнопрстуфхцчшщъыьэюяёәғқңөұүһі ")
    + list("АӘҚ-.,!0123456789\u0301\t"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(_ALPHABET, max_size=60), st.text(max_size=40)))
def test_normalising_twice_equals_once(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == " ".join(once.split())
    for word in tokens(text):
        normalize_term(word + "*")


_SEPARATED = st.sampled_from(
    list("abcqäöş'’ʼ _-<=>/\"\u00a0\u2003\u0301\u0338\ue000\ud800İΣ“”«»0")
    + list("алматыдаҚазақәё "))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(_SEPARATED, max_size=40), st.text(max_size=40)))
def test_text_normalised_by_chunks_equals_word_by_word(text: str) -> None:
    """normalize_text cuts the text at ASCII separators and remembers each
    chunk's normal forms: the same words, in order, as tokens() of the whole,
    whether the chunk is new or remembered."""
    by_words = " ".join(n for n in map(normalize_token, tokens(text)) if n)
    assert normalize_text(text) == by_words
    assert normalize_text(text) == by_words  # remembered this time


# (base, its inflected forms): Kazakh case endings by vowel harmony, Russian
# and English paradigms, and the Latin spellings of the Kazakh names.
PARADIGMS: list[tuple[str, list[str]]] = [
    ("Қазақстан", ["Қазақстанда", "Қазақстанның", "Қазақстанға", "Қазақстанды", "Қазақстаннан",
                   "Қазақстандағы", "Qazaqstan", "Qazaqstanda", "Qazaqstannyń"]),
    ("Тоқаев", ["Тоқаевтың", "Тоқаевқа", "Тоқаевты", "Тоқаевтан", "Токаев", "Токаева",
                "Токаеву", "Токаевым", "Toqaev", "Tokayev"]),
    ("Алматы", ["Алматыда", "Алматының", "Алматыға", "Алматыдан", "Алматыдағы", "Алматыны"]),
    ("Астана", ["Астанада", "Астананың", "Астанаға", "Астанадан", "Астанадағы"]),
    ("Almaty", ["Almatyda", "Almatydagy"]),
    ("теңге", ["теңгенің", "теңгеге", "теңгеден", "тенге"]),
    ("ереуіл", ["ереуілде", "ереуілдер", "ереуілдің", "ереуілге", "ereuil"]),
    ("журналист", ["журналистің", "журналисті", "журналисты", "журналистов",
                   "журналистами"]),
    # әкімге stays apart: a two-letter ending needs a stem of five letters.
    ("әкім", ["әкімнің", "әкімдер", "әкімдердің", "аким", "акима", "акимов", "акиму"]),
    ("голодовка", ["голодовки", "голодовке", "голодовку", "голодовкой", "golodovka",
                   "golodovku"]),
    ("уволили", ["уволил", "уволен", "уволенных", "увольнение", "увольнения", "увольнений",
                 "uvolnenia"]),
    ("нефтяники", ["нефтяник", "нефтяников", "нефтяникам", "neftyaniki"]),
    ("protest", ["protests", "protested", "protesting"]),
    ("strike", ["strikes", "striking"]),
]
_FILLER = ["погода", "weather", "футбол", "ауа райы", "концерт", "market"]


def _paradigm_rows() -> list[tuple[str, str]]:
    rows = [(f"{_FILLER[i % len(_FILLER)]} {form} жаңалық", "")
            for i, (base, forms) in enumerate(PARADIGMS) for form in [base, *forms]]
    return rows + [(f, "") for f in _FILLER]


@pytest.fixture(scope="module")
def paradigm_db() -> Iterator[sqlite3.Connection]:
    conn = _table(_paradigm_rows())
    yield conn
    conn.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PARADIGMS).flatmap(
    lambda p: st.tuples(st.just(p), st.sampled_from(p[1]))))
def test_term_and_its_forms_match_the_same_rows(
        paradigm_db: sqlite3.Connection, case: tuple[tuple[str, list[str]], str]) -> None:
    (base, forms), form = case
    expected = _hits(paradigm_db, base)
    assert _hits(paradigm_db, form) == expected
    rows = _paradigm_rows()
    own = {i for i, (title, _) in enumerate(rows) if any(f in title.split() for f in [base, *forms])}
    assert own <= expected


# --------------------------------------------------------------------------
# Plain sqlite3 opens and searches the normalised table

_PLAIN = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid", (sys.argv[2],)).fetchall()
print(",".join(str(r[0]) for r in rows))
"""


def test_plain_sqlite3_opens_and_searches(tmp_path: Path) -> None:
    path = tmp_path / "norm.db"
    db = sqlite3.connect(path)
    db.execute(SCHEMA)
    for i, text in enumerate(ROWS):
        db.execute("INSERT INTO t(rowid, title, summary, norm) VALUES (?, ?, '', ?)",
                   (i, text, normalize_text(text)))
    db.commit()
    db.close()
    here = _table([(text, "") for text in ROWS])
    for query, expected in [("голодовка", "7,8"), ("Toqaev", "0,1,2,16"),
                            ("Алматы AND Toqaev", "0,16")]:
        # -I: isolated, neither the project nor its venv's site-packages on the path.
        out = subprocess.run([sys.executable, "-I", "-c", _PLAIN, str(path),
                              normalised_query(query)],
                             capture_output=True, text=True, check=True, timeout=30)
        assert out.stdout.strip() == expected
        assert expected == ",".join(map(str, sorted(_hits(here, query))))


_WORDS = st.sampled_from(["Токаев", "Qazaqstanda", "strike*", '"Курманов"', "title:Астана",
                          "NEAR(a b, 3)", "теңге", "OR", "AND", "NOT", "(", ")", "^x", "ü", "_"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS, min_size=1, max_size=8).map(" ".join))
def test_sqlite_accepts_every_rewrite_of_a_valid_query(query: str) -> None:
    db = _table([])
    try:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
    except sqlite3.OperationalError:
        return
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", (normalised_query(query),)).fetchall()


_SIMPLE = st.sampled_from(["a", "b", "c", "d*", '"a b"', "title:c", "NOT", "OR", "AND", "(", ")",
                           "NEAR(a c, 2)", "^b"])
_SIMPLE_ROWS = ["a b c", "b d", "c a", "a", "dd b", "b c a d"]


@settings(max_examples=200, deadline=None)
@example("a ) NOT ( a")
@given(st.lists(_SIMPLE, min_size=1, max_size=9).map(" ".join))
def test_rewrite_keeps_the_meaning_of_the_query(query: str) -> None:
    # With the norm column empty only the exact reading can match: the
    # rewritten query must then find exactly what the query as written finds.
    db = sqlite3.connect(":memory:")
    db.execute(SCHEMA)
    db.executemany("INSERT INTO t(rowid, title, summary, norm) VALUES (?, ?, ?, '')",
                   [(i, r, r[::-1]) for i, r in enumerate(_SIMPLE_ROWS)])
    try:
        # As written first: wrapped in -norm:(...), "a ) NOT ( a" reads as valid.
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
        want = _hits(db, query, normalised=False)
    except sqlite3.OperationalError:
        return
    assert _hits(db, query) == want


def test_a_negated_column_filter_with_a_space_stays_one_unit() -> None:
    # FTS5 reads "- title:x" as "-title:x"; the rewrite used to cut it in two
    # ("- AND title:x"), which SQLite rejects.
    db = _table([("Strike", "a strike")])
    for query in ("(a - title:strike)", "(- title:strike a)", "- {title summary}:strike"):
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (normalised_query(query),)).fetchall()
