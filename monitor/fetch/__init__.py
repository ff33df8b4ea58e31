"""Fetching: HTTP -> FetchResult, one polite, bounded GET per feed.

The package, module by module:
- ``client``: ``Fetcher``, the exchange (limits, deadline, redirects by hand,
  body cap) and the classification of failures into kinds;
- ``pool``: the per-origin connection pool and its releasing body stream;
- ``inflate``: the bounded Content-Encoding inflater;
- ``guard``: the address guard (which addresses may be connected to, and the
  one place a name becomes an address), for feeds, article pages and webhooks;
- ``http``: request and response headers (Retry-After, max-age, HTTP dates,
  validators, Location); ``failure``: the internal failure and its wording.

Must not parse feeds (monitor.parse) nor touch the database (monitor.store).
"""

from monitor.fetch.client import Fetcher, classify_transport_error
from monitor.fetch.failure import format_seconds, format_size
from monitor.fetch.guard import (
    AddressRefused,
    GuardedBackend,
    GuardedTransport,
    LookupFailed,
    Network,
    Resolver,
    embedded_ipv4,
    guarded_transport,
    refusal,
    system_resolver,
    vet_host,
)
from monitor.fetch.http import (
    ACCEPT,
    ACCEPT_ENCODING,
    MAX_RETRY_AFTER,
    PERMANENT_STATUSES,
    RATE_LIMIT_STATUSES,
    REDIRECT_STATUSES,
    parse_max_age,
    parse_retry_after,
)
from monitor.fetch.pool import KEEPALIVE_EXPIRY

__all__ = [
    "ACCEPT",
    "ACCEPT_ENCODING",
    "KEEPALIVE_EXPIRY",
    "MAX_RETRY_AFTER",
    "PERMANENT_STATUSES",
    "RATE_LIMIT_STATUSES",
    "REDIRECT_STATUSES",
    "AddressRefused",
    "Fetcher",
    "GuardedBackend",
    "GuardedTransport",
    "LookupFailed",
    "Network",
    "Resolver",
    "classify_transport_error",
    "embedded_ipv4",
    "format_seconds",
    "format_size",
    "guarded_transport",
    "parse_max_age",
    "parse_retry_after",
    "refusal",
    "system_resolver",
    "vet_host",
]
