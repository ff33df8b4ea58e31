"""The language of an item, from its own text, offline.

Owns detection for items whose feed config and document name no language:
py3langid's model, bundled in its wheel (nothing is downloaded, ever), run on
the title and the start of the summary. Also owns how a language code is
compared (``primary``: "ru-RU" and "ru" are both Russian), so the config, the
matcher and the store agree. The model is loaded on first use, once per
process (about 0.3 s), since most polls store items whose feed says its
language.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from monitor.types import Entry

__all__ = ["MIN_LETTERS", "MIN_PROBABILITY", "detect", "load", "loaded", "primary", "warm_up",
           "with_languages"]

# Below this many letters a headline says too little ("Live", "Video: 3-1").
MIN_LETTERS = 12
# On the topic-eval set, guesses under this were wrong more often than right
# (lower-case URL slugs read as Polish or Uzbek): no language beats a wrong one.
MIN_PROBABILITY = 0.5
# The classifier walks the text byte by byte in Python: about 120 µs an item
# at 120 characters, 240 µs at 300, for 3 in 150 more right on the topic-eval
# set. A headline and the start of a sentence decide it.
MAX_CHARS = 120

# py3langid 0.4 unpacks its model through a temporary file: with the disk (or
# TMPDIR) full that fails, and a poll must not fail with it. Items then get no
# language, and loading is tried again this much later.
RETRY_LOAD_AFTER = 600.0  # seconds

log = logging.getLogger("monitor.language")
_lock = threading.Lock()
_identifier: Any = None
_failed_at: float | None = None


def _model() -> Any:
    """The identifier, loaded on first use; None while it cannot be loaded."""
    global _identifier, _failed_at
    with _lock:
        if _identifier is not None:
            return _identifier
        if _failed_at is not None and time.monotonic() - _failed_at < RETRY_LOAD_AFTER:
            return None
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        except Exception as exc:  # OSError (disk full), MemoryError, a broken install
            _failed_at = time.monotonic()
            log.warning("language detection unavailable, items get no language for now: %s",
                        exc)
        return _identifier


def loaded() -> bool:
    """Whether this process holds the model already."""
    return _identifier is not None


def load() -> bool:
    """Load the model now, in this thread (once per process); whether it is usable."""
    return _model() is not None


def warm_up() -> None:
    """Load the model in a background thread (once per process), so that the
    first detect() of a poll does not wait for it."""
    if _identifier is None and _failed_at is None:
        threading.Thread(target=_model, name="langid-load", daemon=True).start()


def detect(title: str, summary: str = "") -> str | None:
    """The ISO 639-1 code of the text's language ("ru", "kk", "en"), or None
    when the text is too short or the model is unsure."""
    text = f"{title}\n{summary}"[:MAX_CHARS] if summary else title[:MAX_CHARS]
    if sum(1 for c in text if c.isalpha()) < MIN_LETTERS:
        return None
    model = _model()
    if model is None:
        return None
    lang, probability = model.classify(text)
    return str(lang) if float(probability) >= MIN_PROBABILITY else None


def primary(language: str | None) -> str | None:
    """The primary subtag of a language tag, lower case: "ru-RU" -> "ru"."""
    if not language:
        return None
    return language.replace("_", "-").split("-", 1)[0].lower() or None


def with_languages(entries: Sequence[Entry]) -> list[Entry]:
    """``entries``, each without a language given one by detect() (or left
    without one); a language the feed or the document gave is kept as is."""
    return [e if e.language else dataclasses.replace(e, language=detect(e.title, e.summary))
            for e in entries]
