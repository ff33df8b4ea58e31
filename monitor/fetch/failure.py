"""How a fetch ends badly: the internal exception that carries a failure of
a known kind out of an exchange, and the short texts of its reasons.

Owns the wording of reasons (sizes, seconds, the length cap). Must not do
I/O.
"""

from __future__ import annotations

from monitor.types import FailureKind, FetchFailure


class _Failed(Exception):
    """Internal: ends an exchange with a failure of a known kind."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.failure = FetchFailure(kind=kind, reason=reason)


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


def format_size(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("MiB", 2**20), ("kB", 1000), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
