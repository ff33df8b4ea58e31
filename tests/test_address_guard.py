"""The address guard (monitor.fetch.guard, catalogue K2, issue 19): the host
checked is the host connected to.

DNS is a resolver the test controls (no real lookup). No packet leaves
127.0.0.0/8: the guard's connections go through ``Routed``, which stands in for
the network below httpcore, routes the few 'public' addresses a test names to
a server on 127.0.0.1, connects loopback addresses as they are and refuses
anything else, recording every address the guard asked it to connect to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from faultserver import FaultServer, redirect, self_signed_tls, static
from helpers import run_cli, write_config
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.fetch import Fetcher, Network, refusal, vet_host
from monitor.poll import run_poll
from monitor.store import Store
from monitor.types import FeedState, FetchResult, Settings

BODY = (Path(__file__).parent / "data" / "fetch" / "rss_2.0_bbc.xml").read_bytes()
PUBLIC = "93.184.216.34"  # a global address; Routed sends it to a local server
GUARDED = Settings(timeout=5.0, connect_timeout=2.0, allow_private=False)
ALLOWED = Settings(timeout=5.0, connect_timeout=2.0, allow_private=True)


class StubDNS:
    """A resolver: host -> a list of answers, the next one per lookup (the
    last repeats), every host asked recorded."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    @classmethod
    def fixed(cls, table: dict[str, list[str]]) -> StubDNS:
        return cls({host: [addresses] for host, addresses in table.items()})

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(f"stub DNS: no such name {host}")
        return queue.pop(0) if len(queue) > 1 else queue[0]


class Routed(httpcore.AsyncNetworkBackend):
    """The network below httpcore, for tests: see the module docstring."""

    def __init__(self, routes: dict[str, int] | None = None) -> None:
        self.routes = routes or {}
        self.asked: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.asked.append((host, port))
        if host in self.routes:
            host, port = "127.0.0.1", self.routes[host]
        elif host != "127.0.0.1":
            raise httpcore.ConnectError(f"test network: no route to {host}")
        return await self._real.connect_tcp(host, port, timeout=timeout,
                                            local_address=local_address,
                                            socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def fetch(url: str, settings: Settings, network: Network) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(settings, network=network) as fetcher:
            return await fetcher.fetch(FeedState("f", url))
    return asyncio.run(run())


def failure(result: FetchResult) -> tuple[str, str]:
    assert result.failure is not None, "expected a failure"
    return result.failure.kind, result.failure.reason


# ----------------------------------------------------------------- the classifier

REFUSED = {
    # IPv4
    "0.0.0.0": "this network 0.0.0.0/8", "0.1.2.3": "this network 0.0.0.0/8",
    "10.1.2.3": "private 10.0.0.0/8", "172.16.0.1": "private 172.16.0.0/12",
    "192.168.1.1": "private 192.168.0.0/16", "100.64.0.1": "shared 100.64.0.0/10",
    "127.0.0.1": "loopback 127.0.0.0/8", "127.255.0.9": "loopback 127.0.0.0/8",
    "169.254.169.254": "link-local 169.254.0.0/16", "192.0.0.8": "IETF protocol assignments 192.0.0.0/24",
    "192.0.2.1": "documentation 192.0.2.0/24", "198.18.0.1": "benchmarking 198.18.0.0/15",
    "224.0.0.1": "multicast 224.0.0.0/4", "239.255.255.250": "multicast 224.0.0.0/4",
    "240.0.0.1": "reserved 240.0.0.0/4", "255.255.255.255": "broadcast 255.255.255.255",
    # IPv6
    "::": "unspecified ::", "::1": "loopback ::1",
    "::127.0.0.1": "IPv4-compatible ::/96", "::10.0.0.1": "IPv4-compatible ::/96",
    "::8.8.8.8": "IPv4-compatible ::/96", "1::1": "reserved ::/8", "ff::1": "reserved ::/8",
    "::ffff:127.0.0.1": "IPv4-mapped ::ffff:0:0/96 embedding 127.0.0.1 (loopback 127.0.0.0/8)",
    "::ffff:a9fe:a9fe":
        "IPv4-mapped ::ffff:0:0/96 embedding 169.254.169.254 (link-local 169.254.0.0/16)",
    "64:ff9b::a9fe:a9fe":
        "NAT64 64:ff9b::/96 embedding 169.254.169.254 (link-local 169.254.0.0/16)",
    "64:ff9b::7f00:1": "NAT64 64:ff9b::/96 embedding 127.0.0.1 (loopback 127.0.0.0/8)",
    "64:ff9b:1::1": "local-use NAT64 64:ff9b:1::/48",
    "2002:7f00:1::": "6to4 2002::/16 embedding 127.0.0.1 (loopback 127.0.0.0/8)",
    "2002:a00:1:ffff::1": "6to4 2002::/16 embedding 10.0.0.1 (private 10.0.0.0/8)",
    "fec0::1": "site-local fec0::/10", "fc00::1": "unique-local fc00::/7",
    "fd12:3456::1": "unique-local fc00::/7", "fe80::1": "link-local fe80::/10",
    "fe80::1%eth0": "link-local fe80::/10", "ff02::1": "multicast ff00::/8",
    "100::1": "discard 100::/64", "2001::1": "Teredo 2001::/32",
    "2001:db8::1": "documentation 2001:db8::/32", "5f00::1": "outside global unicast 2000::/3",
    "4000::1": "outside global unicast 2000::/3",
}
PUBLIC_ADDRESSES = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111",
                    "2a00:1450:4001::200e", "::ffff:93.184.216.34", "64:ff9b::5db8:d822",
                    "2002:5db8:d822::1"]


@pytest.mark.parametrize(("address", "why"), REFUSED.items())
def test_classifier_refuses_every_non_public_range(address: str, why: str) -> None:
    assert refusal(address) == why


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_classifier_lets_public_addresses_through(address: str) -> None:
    assert refusal(address) is None


def test_an_answer_mixing_public_and_private_is_refused_and_literals_skip_dns() -> None:
    dns = StubDNS.fixed({"mixed.test": [PUBLIC, "10.0.0.1"], "pub.test": [PUBLIC]})
    with pytest.raises(Exception, match=r"private address 10\.0\.0\.1 \(mixed\.test\) refused"):
        asyncio.run(vet_host("mixed.test", allow_private=False, resolver=dns))
    assert asyncio.run(vet_host("pub.test", allow_private=False, resolver=dns)) == [PUBLIC]
    assert asyncio.run(vet_host("10.0.0.1", allow_private=True, resolver=dns)) == ["10.0.0.1"]
    assert dns.asked == ["mixed.test", "pub.test"]


# ----------------------------------------------------------------- properties

def _ipv4s_in(nets: Sequence[str]) -> st.SearchStrategy[ipaddress.IPv4Address]:
    def one(net: str) -> st.SearchStrategy[ipaddress.IPv4Address]:
        n = ipaddress.IPv4Network(net)
        return st.integers(int(n.network_address), int(n.broadcast_address)).map(
            ipaddress.IPv4Address)
    return st.one_of(*(one(net) for net in nets))


PRIVATE_V4 = _ipv4s_in(["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                        "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4",
                        "240.0.0.0/4"])
EMBEDDINGS = {
    "mapped": lambda v4, low: (0xFFFF << 32) | v4,
    "compatible": lambda v4, low: v4,
    "nat64": lambda v4, low: (0x64FF9B << 96) | v4,
    "6to4": lambda v4, low: (0x2002 << 112) | (v4 << 80) | (low & ((1 << 80) - 1)),
}


@given(v4=PRIVATE_V4, how=st.sampled_from(sorted(EMBEDDINGS)),
       low=st.integers(0, (1 << 80) - 1))
def test_ipv6_addresses_embedding_a_private_ipv4_are_refused(
    v4: ipaddress.IPv4Address, how: str, low: int
) -> None:
    v6 = ipaddress.IPv6Address(EMBEDDINGS[how](int(v4), low))
    assert refusal(str(v4)) is not None
    assert refusal(str(v6)) is not None, f"{v6} ({how} of {v4})"


@given(v4=st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
       how=st.sampled_from(["mapped", "nat64", "6to4"]), low=st.integers(0, (1 << 80) - 1))
def test_an_embedded_ipv4_is_judged_as_that_ipv4(
    v4: ipaddress.IPv4Address, how: str, low: int
) -> None:
    v6 = ipaddress.IPv6Address(EMBEDDINGS[how](int(v4), low))
    assert (refusal(str(v6)) is None) == (refusal(str(v4)) is None), f"{v6} ({how} of {v4})"


# ----------------------------------------------------------------- a real poll per range

RANGE_ADDRESSES = {
    "loopback": "127.0.0.2", "this-network": "0.0.0.0", "private-10": "10.1.2.3",
    "private-172": "172.16.5.4", "private-192": "192.168.1.1", "shared": "100.64.0.1",
    "metadata": "169.254.169.254", "multicast": "224.0.0.251", "reserved": "240.0.0.1",
    "broadcast": "255.255.255.255", "v6-loopback": "::1", "mapped": "::ffff:127.0.0.1",
    "compatible": "::127.0.0.1", "nat64": "64:ff9b::a9fe:a9fe", "nat64-local": "64:ff9b:1::1",
    "sixtofour": "2002:7f00:1::1", "site-local": "fec0::1", "reserved-v6": "1::1",
    "unique-local": "fd00::1", "link-local": "fe80::1", "teredo": "2001::1",
}
EMBEDS = {"mapped": "127.0.0.1", "nat64": "169.254.169.254", "sixtofour": "127.0.0.1"}


def _poll(tmp_path: Path, feeds: list[dict[str, str]], network: Network) -> dict[str, Any]:
    config_path = write_config(tmp_path / "feeds.yaml", feeds, topics=False,
                               settings={"allow_private": False, "parse_workers": 0})
    config, db = load_config(config_path), tmp_path / "m.db"
    with Store(db) as store:
        store.sync_feeds(config.feeds, datetime.now(UTC))
        run_poll(config, store, force=True, network=network)
    shown = run_cli("feeds", "--json", config=config_path, db=db)
    assert shown.exit_code == 0, shown.output
    return {row["id"]: row for row in json.loads(shown.output)["feeds"]}


def test_a_poll_refuses_every_name_resolving_into_a_refused_range(tmp_path: Path) -> None:
    with FaultServer() as server:
        server.route("/feed", static(BODY))
        port = server.port
        names = {f"{r}.test": [a] for r, a in RANGE_ADDRESSES.items()}
        names |= {"mixed.test": [PUBLIC, "10.0.0.1"], "public.test": [PUBLIC],
                  "nat64-public.test": ["64:ff9b::5db8:d822"]}
        feeds = [{"id": n.removesuffix(".test"), "name": n, "url": f"http://{n}:{port}/feed"}
                 for n in names]
        routed = Routed({PUBLIC: port, "64:ff9b::5db8:d822": port})
        rows = _poll(tmp_path, feeds, Network(StubDNS.fixed(names), routed))
        requests = server.count("/feed")
    for name, address in RANGE_ADDRESSES.items():
        row = rows[name]
        notes = f"{name}.test" + (f", embeds {EMBEDS[name]}" if name in EMBEDS else "")
        assert (row["last_error_kind"], row["last_error"]) == \
            ("refused", f"private address {address} ({notes}) refused"), name
    assert rows["mixed"]["last_error"] == "private address 10.0.0.1 (mixed.test) refused"
    # The public names were fetched, and only they reached the network.
    assert rows["public"]["last_error_kind"] is None and rows["public"]["items"] > 0
    assert rows["nat64-public"]["last_error_kind"] is None
    assert requests == 2
    assert sorted(a for a, _ in routed.asked) == sorted([PUBLIC, "64:ff9b::5db8:d822"])


# ----------------------------------------------------------------- IDNA: the host checked is the host connected to

IDN = [("faß.de", "xn--fa-hia.de"), ("ςa.gr", "xn--a-xmb.gr")]


@pytest.mark.parametrize(("name", "raw"), IDN)
def test_idn_host_is_vetted_under_the_name_httpcore_connects_to(name: str, raw: str) -> None:
    # The two spellings differ: the stdlib codec (IDNA 2003, what getaddrinfo
    # did to url.host) maps ß to ss and ς to σ; httpx connects to IDNA 2008.
    assert httpx.URL(f"http://{name}/").raw_host.decode() == raw
    assert name.encode("idna").decode() != raw
    with FaultServer() as server:
        url = server.route("/feed", static(BODY)).replace("127.0.0.1", name)
        dns = StubDNS.fixed({raw: ["127.0.0.1"], name.encode("idna").decode(): [PUBLIC],
                             name: [PUBLIC]})
        refused = fetch(url, GUARDED, Network(dns, Routed()))
        assert failure(refused) == ("refused", f"private address 127.0.0.1 ({raw}) refused")
        assert server.count("/feed") == 0
        allowed = fetch(url, ALLOWED, Network(dns, Routed()))
        assert allowed.ok, allowed.failure
        assert allowed.body == BODY
        (request,) = server.requests_to("/feed")
    assert request.header("host") == f"{raw}:{server.port}".encode()
    assert dns.asked == [raw, raw]


# ----------------------------------------------------------------- rebinding and redirects

def test_rebinding_the_address_connected_is_the_address_vetted() -> None:
    with FaultServer() as internal, FaultServer() as public:
        internal.route("/feed", static(b"<rss>internal secrets</rss>"))
        public.route("/feed", static(BODY))
        url = f"http://rebind.test:{internal.port}/feed"
        # A resolver that answers a public address once, then loopback: a
        # check-then-connect guard would vet the first and connect to the second.
        dns = StubDNS({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
        routed = Routed({PUBLIC: public.port})
        first = fetch(url, GUARDED, Network(dns, routed))
        second = fetch(url, GUARDED, Network(dns, routed))
        seen_internal, seen_public = internal.count("/feed"), public.count("/feed")
    assert first.ok and first.body == BODY
    assert failure(second) == ("refused", "private address 127.0.0.1 (rebind.test) refused")
    assert seen_internal == 0 and seen_public == 1
    assert dns.asked == ["rebind.test", "rebind.test"]  # one lookup per connection
    assert routed.asked == [(PUBLIC, internal.port)]


@pytest.mark.parametrize(("answer", "shown"), [
    (["127.0.0.1"], "127.0.0.1 (intranet.test)"),
    (["::ffff:127.0.0.1"], "::ffff:127.0.0.1 (intranet.test, embeds 127.0.0.1)"),
    ([PUBLIC, "127.0.0.1"], "127.0.0.1 (intranet.test)"),
])
def test_redirect_to_a_name_resolving_private_is_refused(answer: list[str], shown: str) -> None:
    with FaultServer() as internal, FaultServer() as public:
        internal.route("/admin", static(b"<rss>admin</rss>"))
        public.route("/feed", redirect(302, f"http://intranet.test:{internal.port}/admin"))
        dns = StubDNS.fixed({"feeds.test": [PUBLIC], "intranet.test": answer})
        result = fetch(f"http://feeds.test:{public.port}/feed", GUARDED,
                       Network(dns, Routed({PUBLIC: public.port})))
        reached = internal.count("/admin")
    assert failure(result) == ("refused", f"private address {shown} refused")
    assert result.status == 302 and reached == 0
    assert dns.asked == ["feeds.test", "intranet.test"]


def test_dns_failure_through_the_guard_is_recorded_as_dns() -> None:
    result = fetch("http://nowhere.test/feed", GUARDED, Network(StubDNS({}), Routed()))
    assert failure(result) == ("dns", "DNS lookup failed for nowhere.test")


# ----------------------------------------------------------------- TLS keeps the name

@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed_tls(tmp_path_factory.mktemp("tls"), "-subj", "/CN=feed.test")


def test_tls_sni_is_the_url_name_not_the_vetted_address(server_tls: ssl.SSLContext) -> None:
    names: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
    with FaultServer(tls=server_tls) as server:
        url = server.route("/feed", static(BODY)).replace("127.0.0.1", "faß.de")
        dns = StubDNS.fixed({"xn--fa-hia.de": ["127.0.0.1"]})
        result = fetch(url, ALLOWED, Network(dns, Routed()))
    # Our certificate is self-signed, so verification fails; the handshake
    # got as far as the server name, which must be the URL's (IDNA 2008) name.
    assert failure(result)[0] == "tls"
    assert names == ["xn--fa-hia.de"]


def test_an_address_that_cannot_be_reached_falls_back_to_the_next_one() -> None:
    with FaultServer() as server:
        url = server.route("/feed", static(BODY)).replace("127.0.0.1", "dual.test")
        routed = Routed()
        dns = StubDNS.fixed({"dual.test": ["2001:4860::1", "2001:4860::2", "127.0.0.1"]})
        result = fetch(url, ALLOWED, Network(dns, routed))
    assert result.ok and result.body == BODY
    # The families alternate, so the IPv4 address is tried second, not last.
    assert [a for a, _ in routed.asked] == ["2001:4860::1", "127.0.0.1"]
