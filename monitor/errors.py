"""The one error root of `monitor` and its branches.

Every error carries the context a user needs to act on it (the file, the feed or
topic id, the field, the URL), and ``str(error)`` reads as one line naming it.
The CLI turns ``ConfigError`` into exit code 2 and any other ``MonitorError``
into exit code 1.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error `monitor` raises on purpose."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in self.context.items())
        return f"{where}: {self.message}" if where else self.message


class ConfigError(MonitorError):
    """feeds.yaml (or a command-line value standing in for it) is invalid.

    Context keys: ``file``, ``feed``/``topic``/``digest``, ``field``, ``line``.
    """


class FetchError(MonitorError):
    """A feed could not be fetched. ``kind`` is one of FAILURE_KINDS."""

    def __init__(self, message: str, *, kind: str, **context: object) -> None:
        super().__init__(message, **context)
        self.kind = kind


class ParseError(MonitorError):
    """A fetched body is not a feed we can read (context: feed, url)."""

    def __init__(self, message: str, *, kind: str = "parse", **context: object) -> None:
        super().__init__(message, **context)
        self.kind = kind


class StorageError(MonitorError):
    """The database cannot be opened, migrated, read or written (context: db)."""


class QueryError(MonitorError):
    """A topic or search query SQLite's FTS5 rejects (context: topic, query)."""


class MailError(MonitorError):
    """A digest could not be mailed; the message carries the SMTP server's
    answer (context: host, port)."""


class QueryTooLarge(QueryError):
    """A query over one of the size limits of the topic language (context:
    topic; the message names the limit): refused before SQLite spends time on it."""
