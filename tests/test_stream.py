"""The fetcher's own network streams (monitor.fetch.stream) under httpcore, on
real servers on 127.0.0.1: plain and TLS bodies larger than the read buffer's
high-water mark read by a slow reader, read timeouts, refused connections and
refused certificates surfacing as httpcore's errors with their cause, and a
kept-alive connection the server closed while idle never reused.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpcore
import pytest
from faultserver import FaultServer, closed_port, never_reply, self_signed_tls, static

from monitor.fetch.stream import _HIGH_WATER, AsyncioBackend

BIG = bytes(range(256)) * (3 * _HIGH_WATER // 256 * 4)  # 3 MB, 12x the high-water mark


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it)."""
    folder = tmp_path_factory.mktemp("tls")
    server = self_signed_tls(folder, "-subj", "/CN=127.0.0.1",
                             "-addext", "subjectAltName=IP:127.0.0.1")
    return server, ssl.create_default_context(cafile=str(folder / "cert.pem"))


async def _get(url: str, *, tls: ssl.SSLContext | None = None, slow: bool = False,
               read_timeout: float = 5.0) -> tuple[int, bytes]:
    timeouts = {"connect": 5.0, "read": read_timeout, "write": 5.0, "pool": 5.0}
    async with (httpcore.AsyncConnectionPool(network_backend=AsyncioBackend(),
                                             ssl_context=tls) as pool,
                pool.stream("GET", url, extensions={"timeout": timeouts}) as resp):
        chunks = []
        async for chunk in resp.aiter_stream():
            chunks.append(chunk)
            if slow:  # let the server's bytes pile up past the high-water mark
                await asyncio.sleep(0.002)
        return resp.status, b"".join(chunks)


@pytest.mark.parametrize("slow", [False, True])
def test_a_large_plain_body_arrives_whole(slow: bool) -> None:
    with FaultServer() as server:
        url = server.route("/big", static(BIG, content_type="application/octet-stream"))
        status, body = asyncio.run(asyncio.wait_for(_get(url, slow=slow), 30))
    assert status == 200
    assert body == BIG


@pytest.mark.parametrize("slow", [False, True])
def test_a_large_tls_body_arrives_whole(tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
                                        slow: bool) -> None:
    server_tls, client_tls = tls_pair
    with FaultServer(tls=server_tls) as server:
        url = server.route("/big", static(BIG, content_type="application/octet-stream"))
        status, body = asyncio.run(asyncio.wait_for(_get(url, tls=client_tls, slow=slow), 30))
    assert status == 200
    assert body == BIG


def test_an_untrusted_certificate_is_a_connect_error_caused_by_the_tls_check(
        tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_tls, _ = tls_pair
    with FaultServer(tls=server_tls) as server, pytest.raises(httpcore.ConnectError) as caught:
        url = server.route("/feed", static(b"<rss/>"))
        asyncio.run(_get(url, tls=ssl.create_default_context()))
    assert isinstance(caught.value.args[0], ssl.SSLCertVerificationError)


def test_a_refused_connection_is_a_connect_error(closed_port: int) -> None:
    with pytest.raises(httpcore.ConnectError) as caught:
        asyncio.run(_get(f"http://127.0.0.1:{closed_port}/feed"))
    assert isinstance(caught.value.args[0], ConnectionRefusedError)


def test_a_silent_server_is_a_read_timeout() -> None:
    with FaultServer() as server:
        url = server.route("/silent", never_reply)
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            asyncio.run(_get(url, read_timeout=0.3))
        assert time.monotonic() - started < 5


class _ClosesWhenIdle:
    """An HTTP/1.1 server that keeps the connection alive after each answer,
    then closes it once it has been idle 50 ms; counts its connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.05)
            data = b""
            while not self.stopping.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    if not data:
                        return  # idle: close the kept-alive connection
                    continue
                if not chunk:
                    return
                data += chunk
                if b"\r\n\r\n" in data:
                    data = b""
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 b"Connection: keep-alive\r\n\r\nok")

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


@pytest.fixture
def closes_when_idle() -> Iterator[_ClosesWhenIdle]:
    server = _ClosesWhenIdle()
    yield server
    server.stop()


def test_a_connection_the_server_closed_while_idle_is_not_reused(
        closes_when_idle: _ClosesWhenIdle) -> None:
    url = f"http://127.0.0.1:{closes_when_idle.port}/feed"

    async def twice() -> list[bytes]:
        bodies = []
        async with httpcore.AsyncConnectionPool(network_backend=AsyncioBackend()) as pool:
            for _ in range(2):
                resp = await pool.request("GET", url)
                bodies.append(resp.content)
                await asyncio.sleep(0.3)  # the server closes the idle connection meanwhile
        return bodies

    assert asyncio.run(asyncio.wait_for(twice(), 10)) == [b"ok", b"ok"]
    assert closes_when_idle.connections == 2


def test_a_connection_kept_alive_is_reused(closes_when_idle: _ClosesWhenIdle) -> None:
    url = f"http://127.0.0.1:{closes_when_idle.port}/feed"

    async def three() -> list[bytes]:
        async with httpcore.AsyncConnectionPool(network_backend=AsyncioBackend()) as pool:
            return [(await pool.request("GET", url)).content for _ in range(3)]

    assert asyncio.run(asyncio.wait_for(three(), 10)) == [b"ok"] * 3
    assert closes_when_idle.connections == 1



__all__ = ["closed_port"]  # a fixture, used by name
