"""Imported by the forkserver of parse workers that detect languages, and by
nothing else: it loads the language model there, once, before any worker is
forked from it.

A worker forked from that server shares the model (about 6 MB) and every
module imported so far copy-on-write instead of loading copies of its own;
``gc.freeze`` keeps the collector from touching the shared objects' pages,
so two workers cost little more memory than one. Owns nothing but that side
effect.
"""

from __future__ import annotations

import gc

from monitor.language import load

load()
gc.freeze()
