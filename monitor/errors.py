"""The one error root of `monitor` and its branches.

Every error carries the context a user needs to act on it (the file, the feed or
topic id, the field, the URL), and ``str(error)`` reads as one line naming it.
The CLI turns ``ConfigError`` into exit code 2 and any other ``MonitorError``
into exit code 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.clean import clean_lines

if TYPE_CHECKING:
    from monitor.types import FailureKind


class MonitorError(Exception):
    """Root of every error `monitor` raises on purpose."""

    def __init__(self, message: str, **context: object) -> None:
        # Cleaned once here: messages quote servers (an SMTP answer, a parser's
        # complaint about a body) and reach the terminal, the log and the database.
        message = clean_lines(message)
        super().__init__(message)
        self.message = message
        self.context = {k: clean_lines(v) if isinstance(v, str) else v
                        for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in self.context.items())
        return f"{where}: {self.message}" if where else self.message


class ConfigError(MonitorError):
    """feeds.yaml (or a command-line value standing in for it) is invalid.

    Context keys: ``file``, ``feed``/``topic``/``digest``, ``field``, ``line``.
    """


class ConfigErrors(ConfigError):
    """Every error found in one config file, in file order. It reads as the
    first of them and a count, so a command that only needs a valid config
    stays one line; ``monitor check`` lists ``errors`` in full."""

    def __init__(self, errors: list[ConfigError] | tuple[ConfigError, ...]) -> None:
        first = errors[0]
        more = len(errors) - 1
        message = first.message
        if more:
            message += (f" (and {more} more error{'s' if more > 1 else ''}; "
                        "`monitor check` lists them all)")
        super().__init__(message, **first.context)
        self.errors = tuple(errors)


class UsageError(MonitorError):
    """A command-line value that is not valid (a date, an address, an id);
    ``param_hint`` names the option. The CLI shows it as click's bad parameter
    (exit 2)."""

    def __init__(self, message: str, *, param_hint: str | None = None) -> None:
        super().__init__(message)
        self.param_hint = param_hint


class FetchError(MonitorError):
    """A feed could not be fetched. ``kind`` is one of FAILURE_KINDS."""

    def __init__(self, message: str, *, kind: FailureKind, **context: object) -> None:
        super().__init__(message, **context)
        self.kind = kind


class ParseError(MonitorError):
    """A fetched body is not a feed we can read (context: feed, url)."""

    def __init__(self, message: str, *, kind: FailureKind = "parse",
                 **context: object) -> None:
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


class AlertDeliveryError(MonitorError):
    """An alert could not be delivered to its target (context: alert, target,
    the target's URL redacted to what holds no secret). ``reason`` is the
    human reason; ``retryable`` says whether the outbox should try again
    (timeouts, 5xx, network trouble) or give up (4xx, a refused address, a
    target URL nothing can send to)."""

    def __init__(self, reason: str, *, alert_id: str, retryable: bool,
                 target: str | None = None) -> None:
        super().__init__(reason, alert=alert_id, target=target)
        self.alert_id = alert_id
        self.reason = self.message
        self.retryable = retryable
