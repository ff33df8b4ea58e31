"""Normalisation of words for matching: one function for stored text and query terms.

Owns DESIGN.md "Matching every form of a word": a word is reduced to a
*normal form* so that its scripts, spellings and endings meet. The normal forms
of a text go into their own FTS5 column (``norm``), filled by normalize_text;
query terms are reduced by normalize_term, so a term written once matches every
form of it. Plain ``sqlite3`` and Datasette read the column as ordinary words.

Canonical script: **Cyrillic, folded**. Kazakh and Russian are written in
Cyrillic natively and the Russian Snowball stemmer works on Cyrillic; the three
Kazakh Latin alphabets (2017 apostrophes, 2018 acutes, 2021 diacritics) and the
informal ASCII of slugs all map many-to-one onto Cyrillic, whereas Cyrillic to
Latin would have to pick one of those competing spellings. English words stay
Latin (they have no Cyrillic form and need the English stemmer).

Steps for one token (lowercased, NFC):

1. **Which reading** (no language detector: the token's script and letters
   decide, the same for a stored word and a query term, so both always get
   the same normal form):
   - Cyrillic with a Kazakh letter (ә ғ қ ң ө ұ ү һ і) -> *Kazakh*; so is
     Cyrillic ending in -ыда/-ыдан/-ыны (Алматыда: no Kazakh letter, and no
     Russian word ends so). Cyrillic ending in -ада/-адан after at least six
     letters loses the -да/-дан (Астанада -> Астана; блокада, Канада are too
     short to be touched). Other Cyrillic -> *Russian*.
   - Latin with a Kazakh Latin letter (ä ö ü ū ğ ñ ş ç ı of 2021, á ó ú ǵ ń ý
     of 2018) or an apostrophe digraph of 2017 (``s'``, ``a'``...) -> Kazakh,
     transliterated to Cyrillic.
   - ASCII with a Kazakh cue (``_KAZAKH_CUE``: ``q`` not before ``u``, ``gh``
     before a vowel, ``eui``, a past tense -ldy/-ldi) -> Kazakh, transliterated.
   - ASCII with a Russian cue (``_RUSSIAN_CUE``: ``zh``, ``kh``, ``shch``, a
     consonant before ``ya``/``yo``/``yu``, -ovka/-ovku..., -enie/-enia,
     -nika/-niki, -ov/-ev/-ova/-eva, -ovich, -skiy) -> transliterated, then
     read as Cyrillic (golodovka, uvolnenia, neftyaniki, Tokayev, Kazakhstan).
   - Other ASCII -> *English*, after an unmistakable Kazakh case ending is cut
     (-yda/-ydan, -ada after six letters, -dagy/-degi/-tagy/-tegi): Almatyda
     and Almaty meet in Latin, Алматыда and Алматы in Cyrillic; the two
     scripts of a name without a cue meet through the ``entities:`` lists.
     Uncued informal Kazakh (``jurnalist``) is read as English and meets its
     own English forms only.
2. **Kazakh suffix stripping** (Kazakh reading only, ``_strip_kazakh``): one
   case ending (locative -да/-де/-та/-те, -дағы/-дегі/-тағы/-тегі, genitive
   -ның/-нің/-дың/-дің/-тың/-тің, dative -ға/-ге/-қа/-ке, accusative
   -ны/-ні/-ды/-ді/-ты/-ті, ablative -дан/-ден/-тан/-тен/-нан/-нен), then
   possessive -ы/-і, then one plural (-лар/-лер/-дар/-дер/-тар/-тер), each only
   when at least ``KAZAKH_MIN_STEM`` letters remain (one more for an ending
   of one or two letters), so short names survive: Ақорда is not Ақор + -да,
   әкімнің is әкім + -нің, but әкімге stays whole. After -с a т- ending
   keeps its т (журналис|тің -> журналист, and the -стан of Қазақстан).
3. **Folding** Kazakh letters to their Russian neighbours (ә->а, ғ->г, қ->к,
   ң->н, ө->о, ұ->у, ү->у, һ->х, і->и), so теңге/тенге and Тоқаев/Токаев meet.
4. **Snowball** (PyStemmer): Russian for Cyrillic, English for Latin, repeated
   until the stem no longer changes but never below ``MIN_STEM`` letters
   (Snowball alone is not idempotent: a quarter of Russian stems lose more on
   a second pass). Russian stems also lose a deverbal -(н)ени/-нен/-ня or a
   -н after a consonant, so уволили and увольнение meet (``увол``).
5. **Final fold**: ё->е, й->и, ы->и, ь and ъ dropped (transliteration cannot
   tell them apart), combining marks removed.

normalize_token applies these steps again until the form stops changing (a
stem can read differently from its word), so a normal form normalises to
itself and normalize_text is idempotent. Known limits: a Kazakh word with no
Kazakh letter and a Russian-looking ending (журналистке, Шымкентте) is read
as Russian; a two-letter ending on a four-letter stem stays (әкімге); Snowball
joins some surnames (Курманов, Курманова): quote a name to keep it exact.

Holds no state but two memos: normal forms by word (LRU) and by chunk of text
(see normalize_text). Imports nothing of the project.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import Stemmer

__all__ = [
    "KAZAKH_MIN_STEM",
    "MIN_STEM",
    "norm_document",
    "norm_with",
    "normalize_term",
    "normalize_text",
    "normalize_token",
    "tokens",
]

KAZAKH_MIN_STEM = 4
# Memo bounds, set by a parser worker's memory (every item's norm is made
# there). Measured on first polls of 1,000 real feeds (benchmarks.poll's
# feeds, two workers), run in turn: chunks 49,152 and words 16,384, workers
# 6.7-6.9 CPU s and 59-72 MB PSS each; 98,304 and 32,768: 6.1-6.6 s and
# 66-80 MB; 196,608: no faster (6.3-6.5 s). Before, one 200,000-word LRU memo:
# 6.5-6.7 s and 62-78 MB in an earlier, faster hour of the same machine.
FORMS_MAX = 32_768
CHUNKS_MAX = 98_304
# The shortest stem Snowball may leave, and the deverbal strip.
MIN_STEM = 4



@functools.cache
def _stemmer(language: str) -> Stemmer.Stemmer:
    # Loaded at the first word, not at import: the store imports this module,
    # and a command that normalises nothing (a poll with nothing due) should
    # not pay for PyStemmer.
    import Stemmer
    return Stemmer.Stemmer(language)

_KAZAKH_LETTERS = frozenset("әғқңөұүһі")
_KAZAKH_LATIN = frozenset("äöüūğñşçıáóúǵńýі")
_FOLD_KAZAKH = str.maketrans("әғқңөұүһі", "агкноуухи")
_FOLD_FINAL = str.maketrans({"ё": "е", "й": "и", "ы": "и", "ь": None, "ъ": None})

# A token as FTS5 unicode61 cuts one: letters, digits, private use and the
# combining marks remove_diacritics drops; an apostrophe inside a Latin word
# is kept here only to read 2017 Kazakh digraphs (see tokens).
_TOKEN_RE = re.compile(r"(?:[^\W_]|[\u0300-\u036f\ue000-\uf8ff])+(?:['’ʼ](?:[^\W_]|[\u0300-\u036f])+)*")
# The same words for a text with no combining mark and no private-use
# character (nearly all NFC text): one character class is several times
# faster than the alternation, and norm_document runs on every item.
_PLAIN_TOKEN_RE = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)*")
_ODD_RE = re.compile(r"[\u0300-\u036f\ue000-\uf8ff]")
_APOSTROPHES = "'’ʼ"
# English contractions keep their apostrophe a separator, as in the index.
_CONTRACTION_RE = re.compile(r"['’ʼ](?:s|t|ll|re|ve|d|m)$")

# 2017 alphabet: a letter followed by an apostrophe.
_KZ2017 = {"a": "ә", "o": "ө", "u": "ү", "g": "ғ", "n": "ң", "s": "ш", "c": "ч",
           "i": "и", "y": "у"}
_TRANSLIT_MULTI = [
    ("shch", "щ"), ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"),
    ("gh", "ғ"), ("ya", "я"), ("yu", "ю"), ("yo", "ё"), ("ye", "е"),
]
_TRANSLIT_ONE = {
    "a": "а", "b": "б", "c": "ц", "d": "д", "e": "е", "f": "ф", "g": "г", "h": "х",
    "i": "и", "j": "ж", "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п",
    "q": "қ", "r": "р", "s": "с", "t": "т", "u": "у", "v": "в", "w": "у", "x": "х",
    "y": "ы", "z": "з",
    # 2018 acutes and 2021 diacritics
    "á": "ә", "ä": "ә", "ó": "ө", "ö": "ө", "ú": "ү", "ü": "ү", "ū": "ұ", "ǵ": "ғ",
    "ğ": "ғ", "ń": "ң", "ñ": "ң", "ş": "ш", "ç": "ч", "ı": "ы", "ý": "у", "і": "і",
}
_TRANSLIT_RE = re.compile("|".join(m for m, _ in _TRANSLIT_MULTI) + "|.", re.S)
_MULTI = dict(_TRANSLIT_MULTI)
_VOWELS = "aeiouy"

# Cues that an ASCII word is Kazakh (checked first) or transliterated Russian.
_KAZAKH_CUE = re.compile(r"q(?!u)|gh[aeiouy]|eui|(?:ldy|ldi)$")
_RUSSIAN_CUE = re.compile(
    r"zh|kh|shch|[bcdfghjklmnpqrstvwxz]y[aou]"
    r"|[oe]vk[aiueo]|(?:enie|eniye|enia|eniya|nik[aiu]|ov|ev|ova|eva|ovich|evich|skiy|skii)$")

# Longest first, so -дағы goes before -да.
_KZ_CASE = (
    "дағы", "дегі", "тағы", "тегі", "ның", "нің", "дың", "дің", "тың", "тің",
    "дан", "ден", "тан", "тен", "нан", "нен",
    "да", "де", "та", "те", "ға", "ге", "қа", "ке", "ны", "ні", "ды", "ді", "ты", "ті",
)
_KZ_PLURAL = ("лар", "лер", "дар", "дер", "тар", "тер")
_KZ_POSSESSIVE = ("ы", "і")
# A Cyrillic word without Kazakh letters is read as Kazakh only with an
# ending Russian words hardly have: -ыда/-ыдан/-ыны (Алматыда), or -ада after a
# stem of at least _KZ_ADA_STEM letters (Астанада; блокада, Канада stay).
_KZ_PLAIN_RE = re.compile(r"ы(?:дан?|ны)$")
_KZ_ADA_STEM = 6
_KZ_ADA_RE = re.compile(r"ада(?:н)?$")
# The same for an ASCII word read as English: Almatyda, Astanada -> Almaty, Astana.
_ASCII_CASE_RE = re.compile(r"(?:(?<=y)da|(?<=y)dan|dagy|degi|tagy|tegi|daghy)$")
_ASCII_ADA_RE = re.compile(r"(?<=a)da$")
_RU_DEVERBAL = ("нени", "нен", "ени", "ня")
_RU_VOWELS = "аеёиоуыэюяьй"
_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")


def _is_cyrillic(token: str) -> bool:
    return not token.isascii() and _CYRILLIC_RE.search(token) is not None


def _strip_marks(text: str) -> str:
    # ASCII has no marks to strip: most words, each looked at once per
    # process (cold, normal forms were ~40 % of a parser worker's time).
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(c))


def _transliterate(token: str) -> str:
    """Latin (ASCII, 2017, 2018, 2021) to Kazakh Cyrillic; other letters stay."""
    token = _kz2017(token)
    out: list[str] = []
    for m in _TRANSLIT_RE.finditer(token):
        s = m.group(0)
        prev = token[m.start() - 1] if m.start() else ""
        if s == "ye" and (not prev or prev in _VOWELS):
            out.append("е")
        elif s == "y" and prev in _VOWELS and prev:
            out.append("й")
        else:
            out.append(_MULTI.get(s) or _TRANSLIT_ONE.get(s, s))
    return "".join(out)


def _kz2017(token: str) -> str:
    for a in _APOSTROPHES:
        if a in token:
            token = re.sub(rf"([aougnsciy]){a}", lambda m: _KZ2017[m.group(1)], token)
    return token.replace("'", "").replace("’", "").replace("ʼ", "")


def _strip_kazakh(word: str, endings: tuple[str, ...] = _KZ_CASE) -> str:
    # Kazakh stacks stem + plural + possessive + case: peel from the end.
    for group in (endings, _KZ_POSSESSIVE, _KZ_PLURAL):
        for e in group:
            if word.endswith(e):
                cut = len(word) - len(e)
                # After -с a т- ending keeps its т: журналис|тің is журналист|ің,
                # and Қазақс|тан is the -стан of a name, not an ablative.
                if e[0] == "т" and word[cut - 1 : cut] == "с":
                    cut += 1
                # A short ending is more often part of a word: Ақорда is not
                # Ақор + -да, while әкім + -нің is.
                if cut >= KAZAKH_MIN_STEM + (len(e) <= 2):
                    word = word[:cut]
                    break
    return word


def _stem_fixed(stemmer: Stemmer.Stemmer, word: str, extra: Callable[[str], str] | None = None,
                fold: Callable[[str], str] = str) -> str:
    """Snowball repeated until the stem stops changing, a step kept only while
    at least MIN_STEM letters remain: Snowball alone is not idempotent (a
    quarter of Russian stems lose more on a second pass), and the floor keeps
    the repeats from cutting stems down to collisions (токаев -> тока, not ток)."""
    for _ in range(8):
        stem = str(stemmer.stemWord(word))
        if extra is not None:
            stem = extra(stem)
        if stem == word or len(fold(stem)) < MIN_STEM:
            break
        word = stem
    return word


def _deverbal(stem: str) -> str:
    """Russian verbal nouns to their verb stem: увольнен-, увольн- -> увол-."""
    for e in _RU_DEVERBAL:
        if stem.endswith(e) and len(stem) - len(e) >= MIN_STEM:
            return stem[: -len(e)]
    if (len(stem) > MIN_STEM and stem.endswith("н") and stem[-2] not in _RU_VOWELS):
        return stem[:-1].rstrip("ь")
    return stem


def _fold_final(word: str) -> str:
    return _strip_marks(word.translate(_FOLD_FINAL))


def _russian(word: str) -> str:
    """A Cyrillic word (Kazakh letters already folded) to its normal form."""
    return _fold_final(_stem_fixed(_stemmer("russian"), word, _deverbal, _fold_final))


def _english(word: str) -> str:
    return _strip_marks(_stem_fixed(_stemmer("english"), word))


def _kazakh(word: str) -> str:
    return _russian(_strip_kazakh(word).translate(_FOLD_KAZAKH))


def _cyrillic(word: str) -> str:
    if _KAZAKH_LETTERS & set(word) or _KZ_PLAIN_RE.search(word):
        return _kazakh(word)
    m = _KZ_ADA_RE.search(word)
    if m and m.start() + 1 >= _KZ_ADA_STEM:
        return _russian(word[: m.start() + 1])
    return _russian(word)


def _latin(token: str) -> str:
    """A Latin token (see the module docstring for how it is read)."""
    ascii_only = token.isascii()
    if ("'" in token if ascii_only else
            _KAZAKH_LATIN & set(token) or any(a in token for a in _APOSTROPHES)):
        return _kazakh(_transliterate(token))
    if not ascii_only:
        return _strip_marks(token)
    if _KAZAKH_CUE.search(token):
        return _kazakh(_transliterate(token))
    if _RUSSIAN_CUE.search(token):
        return _cyrillic(_transliterate(token))
    stripped = _ASCII_CASE_RE.sub("", token)
    if stripped == token and len(token) - 2 >= _KZ_ADA_STEM:
        stripped = _ASCII_ADA_RE.sub("", token)
    if stripped != token and len(stripped) >= KAZAKH_MIN_STEM:
        return _latin(stripped)
    return _english(token)


def _once(token: str) -> str:
    if _is_cyrillic(token):
        return _cyrillic(token)
    if token.isdigit():
        return token
    return _latin(token)


def normalize_token(token: str) -> str:
    """The normal form of one token; "" when nothing is left. Applied again
    until it no longer changes (a stem may read differently from its word:
    an English stem may look transliterated), so normal forms are fixed points."""
    return _normal_form(unicodedata.normalize("NFC", token).lower())


def clear_cache() -> None:
    """Forget every remembered normal form (benchmarks measure a cold start)."""
    _CHUNKS.forget()
    _normal_form.cache_clear()


def cached_forms() -> int:
    """How many words' and chunks' normal forms are remembered."""
    return _normal_form.cache_info().currsize + len(_CHUNKS) + len(_CHUNKS.old)


@functools.lru_cache(maxsize=FORMS_MAX)
def _normal_form(form: str) -> str:
    """normalize_token of a token already in NFC and lower case: "The" and
    "the" are one computation."""
    if _is_cyrillic(form):
        form = re.sub(r"['’ʼ]", "", form)
    for _ in range(6):
        nxt = _once(form)
        if nxt == form or not nxt:
            return nxt
        form = nxt
    return form


_K = TypeVar("_K", str, bytes)


class _Generations(dict[_K, str]):
    """A bounded memo read by plain dict lookups (a C call per key through
    ``map``): LRU order would cost a wrapper call per key. It ages by
    generations instead: once it holds ``size`` keys they become the old
    generation and a new one starts; a key found only in the old one moves
    back, so frequent keys stay, and at most twice ``size`` are held."""

    def __init__(self, compute: Callable[[_K], str], size: int) -> None:
        super().__init__()
        self.compute: Callable[[_K], str] = compute
        self.size = size
        self.old: dict[_K, str] = {}

    def __missing__(self, key: _K) -> str:
        value = self.old.get(key)
        if value is None:
            value = self.compute(key)
        if len(self) >= self.size:
            self.old = dict(self)
            self.clear()
        self[key] = value
        return value

    def forget(self) -> None:
        self.clear()
        self.old = {}


def tokens(text: str) -> list[str]:
    """``text`` cut into words as FTS5 unicode61 cuts it, except that a Latin
    apostrophe digraph of the 2017 Kazakh alphabet stays inside its word."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    words: list[str] = (_TOKEN_RE if _ODD_RE.search(text) else _PLAIN_TOKEN_RE).findall(text)
    # Most texts have no apostrophe at all: the per-word check below was most
    # of the cost of norm_document, which every stored item pays.
    if not any(a in text for a in _APOSTROPHES):
        return words
    out: list[str] = []
    for word in words:
        if not word.isalnum() and any(a in word for a in _APOSTROPHES) and (
                _CONTRACTION_RE.search(word.lower()) or _is_cyrillic(word)):
            out.extend(w for w in re.split(r"['’ʼ]", word) if w)
        else:
            out.append(word)
    return out


def _chunk_forms(chunk: bytes) -> str:
    text = chunk.decode("utf-8", "surrogatepass")
    # The chunk is a piece of an NFC text, cut at ASCII separators, and so is
    # NFC: normalize_token's own NFC step would change nothing. A chunk of
    # letters and digits alone (most of them) is one word, as tokens() cuts
    # it: re's [^\W_] is str.isalnum.
    if text.isalnum():
        return _normal_form(text.lower())
    return " ".join(filter(None, map(normalize_token, tokens(text))))


# A text cut at its ASCII separators (every ASCII byte but letters, digits
# and the apostrophe) falls into chunks that no word of tokens() crosses, and
# feeds repeat their chunks as they repeat their words: normalize_text looks
# each chunk's normal forms up whole, so an item costs an encode, a
# translate, a split and one dict lookup per chunk, all in C, where cutting
# it into words with a regex took most of its time.
_CHUNK_SEP = bytes(c if 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A
                   or c == 0x27 or c >= 0x80 else 0x20 for c in range(256))
# chunk (UTF-8) -> the normal forms of its words, space-joined.
_CHUNKS: _Generations[bytes] = _Generations(_chunk_forms, CHUNKS_MAX)


def normalize_text(text: str) -> str:
    """The normal forms of every word of ``text`` (see tokens), space-joined
    in order."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    chunks = text.encode("utf-8", "surrogatepass").translate(_CHUNK_SEP).split()
    return " ".join(filter(None, map(_CHUNKS.__getitem__, chunks)))


def norm_document(*fields: str) -> str:
    """The value of an item's ``norm`` column: the normal forms of its fields
    (title, summary, article, in that order) joined by spaces. The archive's
    write path and the live matcher both call this, so a stored item and the
    same item matched live hold exactly the same normal forms."""
    return " ".join(n for n in map(normalize_text, fields) if n)


def norm_with(made: str, title: str, summary: str, article: str) -> str:
    """norm_document(title, summary, article), taking ``made`` as the normal
    forms of title and summary when it is not "" (they were made where the
    entry was parsed: see Entry.norm)."""
    head = made or norm_document(title, summary)
    tail = normalize_text(article) if article else ""
    return f"{head} {tail}" if head and tail else head or tail


def normalize_term(term: str) -> str | None:
    """A one-word query term's normal form; ``foo*`` keeps its star on the
    normal form of ``foo``. None when nothing is left, or when the term is
    several words (a phrase stays exact)."""
    prefix = term.rstrip().endswith("*")
    body = term.rstrip().rstrip("*") if prefix else term
    words = tokens(body)
    if len(words) != 1:
        return None
    form = normalize_token(words[0])
    if not form:
        return None
    return form + "*" if prefix else form
