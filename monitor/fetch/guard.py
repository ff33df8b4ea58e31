"""The address guard: which addresses `monitor` may connect to, and the one
place where a host name becomes the address a connection is made to.

A name is resolved once, at connect time, with exactly the ASCII host
httpcore would connect to (``url.raw_host``: ``faß.de`` is ``xn--fa-hia.de``,
never the IDNA 2003 ``fass.de`` the stdlib codec would look up); every address
of the answer is vetted, and the connection goes to a vetted address, not to
the name. So the host checked is the host connected to, and a DNS answer that
changes between a check and the connect (rebinding) cannot slip through:
there is no second lookup. TLS SNI, certificate checking and the Host header
still use the URL's name (httpcore passes ``server_hostname`` from the URL).

Refused unless ``settings.allow_private``: every IPv4 address outside the
public unicast space (this network 0/8, private 10/8, 172.16/12, 192.168/16,
shared 100.64/10, loopback 127/8, link-local 169.254/16, IETF 192.0.0/24,
documentation, benchmarking 198.18/15, multicast 224/4, reserved 240/4,
broadcast) and every IPv6 address outside global unicast 2000::/3 (so ::/8,
site-local fec0::/10, unique-local fc00::/7, link-local fe80::/10, multicast
ff00::/8, discard 100::/64), the non-global parts of 2000::/3 (Teredo,
documentation, ...), and the IPv6 forms that embed an IPv4 address whose
IPv4 is refused: IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96`` and
6to4 ``2002::/16``. IPv4-compatible ``::a.b.c.d`` lies in ::/8 and is always
refused; local-use NAT64 ``64:ff9b:1::/48`` too.

Reuse, for every outgoing request (feeds, each redirect hop, and the article
pages and alert webhook targets to come): build the transport with
``guarded_transport(settings)`` (or give ``GuardedBackend`` to an httpcore
pool) and send through it; a redirect to another origin needs a new
connection, so each hop is vetted whoever follows it. ``vet_host`` answers the
same question without connecting (to check a webhook URL at configuration
time, say), and ``refusal`` classifies one address. A refused address raises
``AddressRefused`` (kind ``refused``), a failed lookup ``LookupFailed`` (kind
``dns``): both are ``FetchError``, and pass through httpx unchanged.

Names are looked up by a ``Resolver`` (host -> IP address strings): the
system's ``getaddrinfo`` by default; tests give their own, so no test needs
real DNS.

Owns the address rules and vetted connecting. Must not decide what to
request, follow redirects or read bodies (monitor.fetch.client does).
"""

from __future__ import annotations

import ipaddress
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from monitor.errors import FetchError
from monitor.fetch.stream import AsyncioBackend
from monitor.types import Settings

Resolver = Callable[[str], Awaitable[Sequence[str]]]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net4 = ipaddress.IPv4Network
_Net6 = ipaddress.IPv6Network

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# Labelled so a refusal can say what the address is; most-specific first
# within each family. One table for both, split by family below.
_REFUSED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), label) for net, label in (
        ("0.0.0.0/8", "this network 0.0.0.0/8"),
        ("10.0.0.0/8", "private 10.0.0.0/8"),
        ("100.64.0.0/10", "shared 100.64.0.0/10"),
        ("127.0.0.0/8", "loopback 127.0.0.0/8"),
        ("169.254.0.0/16", "link-local 169.254.0.0/16"),
        ("172.16.0.0/12", "private 172.16.0.0/12"),
        ("192.0.0.0/24", "IETF protocol assignments 192.0.0.0/24"),
        ("192.0.2.0/24", "documentation 192.0.2.0/24"),
        ("192.168.0.0/16", "private 192.168.0.0/16"),
        ("198.18.0.0/15", "benchmarking 198.18.0.0/15"),
        ("198.51.100.0/24", "documentation 198.51.100.0/24"),
        ("203.0.113.0/24", "documentation 203.0.113.0/24"),
        ("224.0.0.0/4", "multicast 224.0.0.0/4"),
        ("255.255.255.255/32", "broadcast 255.255.255.255"),
        ("240.0.0.0/4", "reserved 240.0.0.0/4"),
        ("::/128", "unspecified ::"),
        ("::1/128", "loopback ::1"),
        ("::/96", "IPv4-compatible ::/96"),
        ("64:ff9b:1::/48", "local-use NAT64 64:ff9b:1::/48"),
        ("::/8", "reserved ::/8"),
        ("fc00::/7", "unique-local fc00::/7"),
        ("fe80::/10", "link-local fe80::/10"),
        ("fec0::/10", "site-local fec0::/10"),
        ("ff00::/8", "multicast ff00::/8"),
        ("100::/64", "discard 100::/64"),
        ("2001::/32", "Teredo 2001::/32"),
        ("2001:db8::/32", "documentation 2001:db8::/32"),
        ("3fff::/20", "documentation 3fff::/20"),
    )
)
_IPV4_REFUSED: tuple[tuple[_Net4, str], ...] = tuple(
    (net, label) for net, label in _REFUSED if isinstance(net, _Net4))
_IPV6_REFUSED: tuple[tuple[_Net6, str], ...] = tuple(
    (net, label) for net, label in _REFUSED if isinstance(net, _Net6))


class AddressRefused(FetchError):
    """A host resolves to an address the guard refuses (context: host,
    address, range)."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message, kind="refused", **context)


class LookupFailed(FetchError):
    """A host name has no address (context: host)."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message, kind="dns", **context)


def refusal(address: str) -> str | None:
    """Why ``address`` (an IP address string, IPv6 zone allowed) is not a
    public unicast address, as the range it lies in; None when it is public.
    An IPv6 address embedding an IPv4 (mapped, NAT64, 6to4) is judged by that
    IPv4: "NAT64 64:ff9b::/96 embedding 169.254.169.254 (link-local ...)"."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_refusal(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        net, v4 = embedded
        why = _ipv4_refusal(v4)
        return None if why is None else f"{net} embedding {v4} ({why})"
    return _ipv6_refusal(ip)


def embedded_ipv4(address: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address carries."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    found = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return None if found is None else found[1]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip in _MAPPED:
        return "IPv4-mapped ::ffff:0:0/96", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64 64:ff9b::/96", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return "6to4 2002::/16", ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _ipv4_refusal(ip: ipaddress.IPv4Address) -> str | None:
    for net, label in _IPV4_REFUSED:
        if ip in net:
            return label
    # The stdlib's table grows with IANA's registry; anything it calls
    # non-global that ours does not list is refused as well.
    return None if ip.is_global else "not globally routable"


def _ipv6_refusal(ip: ipaddress.IPv6Address) -> str | None:
    for net, label in _IPV6_REFUSED:
        if ip in net:
            return label
    if ip not in _GLOBAL_UNICAST:
        return "outside global unicast 2000::/3"
    return None if ip.is_global else "not globally routable"


def _literal(host: str) -> _IP | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def system_resolver(host: str) -> list[str]:
    """The system's answer for ``host`` (getaddrinfo through anyio, in a
    worker thread). An ASCII host is looked up as it is; anyio would encode
    any other with IDNA 2008, as httpx does, never with IDNA 2003."""
    try:
        infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise LookupFailed(f"DNS lookup failed for {host}", host=host) from exc
    return [str(sockaddr[0]) for *_, sockaddr in infos]


async def vet_host(host: str, *, allow_private: bool,
                   resolver: Resolver = system_resolver) -> list[str]:
    """The addresses to connect to for ``host`` (the ASCII host: pass
    ``url.raw_host.decode()``, never ``url.host``): an IP literal as it is, a
    name resolved once; each address vetted unless ``allow_private``.
    Raises ``AddressRefused`` if any address is refused (an answer mixing a
    public and a private address is refused), ``LookupFailed`` if none."""
    if _literal(host) is not None:
        addresses = [host]
    else:
        try:
            answer = await resolver(host)
        except (OSError, UnicodeError) as exc:
            raise LookupFailed(f"DNS lookup failed for {host}", host=host) from exc
        addresses = list(dict.fromkeys(str(a) for a in answer))
        if not addresses:
            raise LookupFailed(f"DNS lookup failed for {host}", host=host)
    if not allow_private:
        for address in addresses:
            _refuse(host, address)
    return addresses


def _refuse(host: str, address: str) -> None:
    try:
        why = refusal(address)
    except ValueError:
        raise LookupFailed(f"DNS lookup for {host} gave a non-address {address!r}",
                           host=host) from None
    if why is None:
        return
    notes = [] if _same(address, host) else [host]
    embedded = embedded_ipv4(address)
    if embedded is not None:
        notes.append(f"embeds {embedded}")
    shown = f"{address} ({', '.join(notes)})" if notes else address
    raise AddressRefused(f"private address {shown} refused", host=host, address=address,
                         range=why)


def _same(address: str, host: str) -> bool:
    literal = _literal(host)
    return literal is not None and literal == _literal(address)


def _interleaved(addresses: Sequence[str]) -> list[str]:
    """IPv6 and IPv4 addresses alternated, each family in its given order
    (RFC 8305 4): a host whose IPv6 is unreachable still gets its IPv4 tried."""
    v6 = [a for a in addresses if ":" in a]
    v4 = [a for a in addresses if ":" not in a]
    first, second = (v6, v4) if addresses and ":" in addresses[0] else (v4, v6)
    out = [a for pair in zip(first, second, strict=False) for a in pair]
    return out + first[len(second):] + second[len(first):]


def _share(deadline: float, attempts_left: int) -> float | None:
    """An attempt's part of the time left: a blackholed address must not use
    up the connect timeout of those after it (no happy eyeballs here: we
    connect to one vetted address at a time)."""
    if math.isinf(deadline):
        return None
    return max(0.0, deadline - time.monotonic()) / attempts_left


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to vetted addresses:
    ``connect_tcp`` is given the URL's raw host, resolves it once through
    ``resolver``, vets every address (unless ``allow_private``) and opens the
    TCP connection to one address after the other (families alternated),
    through ``inner`` (monitor.fetch.stream's by default). The connect
    timeout covers the lookup and every attempt."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allow_private = allow_private
        self._resolver = resolver or system_resolver
        self._inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        try:
            with anyio.fail_after(timeout):
                addresses = await vet_host(host, allow_private=self._allow_private,
                                           resolver=self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from None
        failure: Exception | None = None
        ordered = _interleaved(addresses)
        for i, address in enumerate(ordered):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=_share(deadline, len(ordered) - i),
                    local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # another address of the answer may work
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("Unix sockets are refused", address=path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class Network:
    """Where names are looked up and vetted connections are made: the system
    by default. Tests give their own resolver (no real DNS) and, to route a
    'public' address to a server on 127.0.0.1, their own inner backend."""

    resolver: Resolver = system_resolver
    backend: httpcore.AsyncNetworkBackend | None = None

    def guard(self, settings: Settings) -> GuardedBackend:
        return GuardedBackend(allow_private=settings.allow_private, resolver=self.resolver,
                              inner=self.backend)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport, its connections made by a GuardedBackend."""

    def __init__(self, backend: GuardedBackend, *, tls: ssl.SSLContext,
                 limits: httpx.Limits) -> None:
        super().__init__(verify=tls, limits=limits, trust_env=False)
        # httpx takes no network backend: its pool is rebuilt with the same
        # settings and ours (a transport built by AsyncHTTPTransport(verify=,
        # limits=, trust_env=False) is exactly this pool).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_transport(settings: Settings, *, network: Network | None = None,
                      tls: ssl.SSLContext | None = None,
                      limits: httpx.Limits | None = None) -> GuardedTransport:
    """A transport for any request `monitor` sends: article pages, webhook
    targets. Use it with ``httpx.AsyncClient(transport=..., trust_env=False)``
    (a proxy would connect for us, unvetted)."""
    return GuardedTransport((network or Network()).guard(settings),
                            tls=tls or httpx.create_ssl_context(trust_env=False),
                            limits=limits or httpx.Limits())
