"""Content-Encoding: br through the real Fetcher and a real server: a real feed
inflated and parsed, a brotli bomb stopped at the cap, cut and corrupt streams
as protocol errors, and br offered only when the brotli extra can bound it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from faultserver import FaultServer, brotli_bomb, fault_server, static
from test_fetch import (
    BODY,
    FAST,
    assert_failed,
    beside_healthy,
    fetch_one,
    traced_beside_healthy,
)

from monitor.fetch.failure import _Failed
from monitor.fetch.http import accept_encoding
from monitor.fetch.inflate import _Inflater
from monitor.parse import parse_feed

__all__ = ["fault_server"]  # fixture, used by name

brotli = pytest.importorskip("brotli", minversion="1.2")
BR = [("Content-Encoding", "br")]
MISMATCH = "body does not match its Content-Encoding"


def test_br_feed_is_inflated_and_parsed(fault_server: FaultServer) -> None:
    packed = brotli.compress(BODY)
    result = fetch_one(fault_server.route("/feed", static(packed, headers=BR)))
    assert result.ok, result.failure
    assert result.body == BODY and result.bytes_read == len(packed)
    parsed = parse_feed(result.body, url=result.final_url, headers=result.headers,
                        fetched_at=datetime.now(UTC))
    plain = parse_feed(BODY, url=result.final_url, headers=result.headers,
                       fetched_at=datetime.now(UTC))
    assert parsed.entries and parsed.entries == plain.entries


def test_br_is_offered_when_the_brotli_extra_is_installed(fault_server: FaultServer) -> None:
    url = fault_server.route("/feed", static(BODY))
    assert fetch_one(url).ok
    [request] = fault_server.requests_to("/feed")
    assert request.header("accept-encoding") == b"gzip, deflate, br"


def test_accept_encoding_names_br_only_when_it_can_be_bounded() -> None:
    assert accept_encoding(True) == "gzip, deflate, br"
    assert accept_encoding(False) == "gzip, deflate"


def test_without_a_bounded_brotli_br_stays_unsupported() -> None:
    with pytest.raises(_Failed) as caught:
        _Inflater.for_encoding("br", brotli=False)
    assert caught.value.failure.kind == "protocol"
    assert caught.value.failure.reason == "unsupported Content-Encoding 'br'"


def test_brotli_bomb_stops_at_the_cap_with_bounded_memory(fault_server: FaultServer) -> None:
    url = fault_server.route("/bomb", brotli_bomb(1 << 30))
    result, peak = traced_beside_healthy(fault_server, url)
    assert_failed(result, "too-large", "body larger than 1 MB")
    # The first 64 KB of this bomb inflate to ~350 MB: without output_buffer_limit
    # one process() call would hold all of it.
    assert result.bytes_read <= 128 * 1024
    assert peak < 8 * FAST.max_bytes


def test_cut_br_stream_is_a_protocol_error(fault_server: FaultServer) -> None:
    packed = brotli.compress(BODY)[:-20]
    result = beside_healthy(fault_server, fault_server.route("/cut", static(packed, headers=BR)))
    assert_failed(result, "protocol", f"{MISMATCH}: brotli stream cut short")


@pytest.mark.parametrize("body", [BODY, b"\xff" * 64], ids=["plain-text", "junk"])
def test_corrupt_br_body_is_a_protocol_error(fault_server: FaultServer, body: bytes) -> None:
    result = beside_healthy(fault_server, fault_server.route("/liar", static(body, headers=BR)))
    assert_failed(result, "protocol", f"{MISMATCH}: brotli: decoder failed")
