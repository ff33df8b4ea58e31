"""Imported by the forkserver of parse workers that detect languages, and by
nothing else: it loads the language model there, once, before any worker is
forked from it.

A worker forked from that server shares the model's arrays (about 67 MB of
its 86) copy-on-write instead of loading a copy of its own, so two workers
cost little more memory than one; ``gc.freeze`` keeps the collector from
touching the shared objects' pages. Owns nothing but that side effect.
"""

from __future__ import annotations

import gc

from monitor.language import load

load()
gc.freeze()
