"""Topic matching: FTS5 percolation of batches of entries, with provenance.

Matching is percolation in two stages. First, in Python, each entry's tokens
(exactly those of SQLite's tokenizer, see ``tokens``) are checked against what
each topic's query needs (``cnf``, indexed by ``prefilter``), which leaves the
few (topic, entry) pairs that could match. Then those entries go into a fresh
in-memory FTS5 table and each remaining topic's query, pruned to the batch
(``prune``) and rewritten onto the ``norm`` column of normal forms
(``norm``, monitor.normquery), runs once against it (``batch``): SQLite has
the last word. Each hit carries its matched words, raw words of the item even
where a normal form matched, and a snippet (``evidence``).

The topic language itself (``@name`` expansion, validation, size limits, the
reading of a search, highlight markers) is ``monitor.query``'s; its names are
re-exported here because callers have always imported them from here. This
package must not touch the archive database or HTTP.
"""

from monitor.match.batch import (
    FoldedMatch,
    Matcher,
    NearMiss,
    TopicExplanation,
    entry_from_text,
    folded_matches,
    near_misses,
    shared_matcher,
)
from monitor.match.cnf import necessary
from monitor.match.evidence import MAX_TERMS, SNIPPET_TOKENS, _rehighlight
from monitor.match.tokens import ordered_tokens, text_tokens, token_bytes
from monitor.query import (
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    MAX_PHRASE_TOKENS,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    PLAIN_WORDS,
    QUERY,
    TOKENIZER,
    SearchReading,
    build_fts_query,
    expand_query,
    plain_words,
    read_search,
    split_clauses,
    validate_query,
)
from monitor.query import scrub as _clean

__all__ = [
    "HIGHLIGHT_CLOSE",
    "HIGHLIGHT_OPEN",
    "MAX_PHRASE_TOKENS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "MAX_TERMS",
    "PLAIN_WORDS",
    "QUERY",
    "SNIPPET_TOKENS",
    "TOKENIZER",
    "FoldedMatch",
    "Matcher",
    "NearMiss",
    "SearchReading",
    "TopicExplanation",
    "_clean",
    "_rehighlight",
    "build_fts_query",
    "entry_from_text",
    "expand_query",
    "folded_matches",
    "near_misses",
    "necessary",
    "ordered_tokens",
    "plain_words",
    "read_search",
    "shared_matcher",
    "split_clauses",
    "text_tokens",
    "token_bytes",
    "validate_query",
]
