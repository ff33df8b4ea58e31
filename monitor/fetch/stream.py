"""Connections on asyncio itself: the network streams httpcore reads and writes.

Owns the TCP connection of every fetch below HTTP: connecting to an address
already vetted (by monitor.fetch.guard, which calls ``connect_tcp``), the TLS
upgrade, reads, writes and close, on an asyncio transport and a protocol of
its own. httpcore's default backend (AnyIOBackend) runs every read and write
through an anyio cancel scope, an exception map and anyio's stream layer:
on an unchanged re-poll, where a fetch is one small request and one 304, that
was about a quarter of the event loop's time. Here a read served from data
already received does not suspend at all, and a timer is armed only when a
read or write has to wait. Failures surface as httpcore's exceptions, as
AnyIOBackend raises them (ConnectError, ReadTimeout, ...), with the original
error as their cause. It decides nothing about which addresses may be used.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

# Past this much unread data the transport stops reading until the reader
# catches up: a body is capped while it is read, never while it is buffered.
_HIGH_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    """What arrived on a connection, and who waits for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: BaseException | None = None
        self.paused = False  # writing: the transport's buffer is full
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    def wait_readable(self) -> asyncio.Future[None]:
        self._reader = asyncio.get_running_loop().create_future()
        return self._reader

    def wait_writable(self) -> asyncio.Future[None]:
        self._writer = asyncio.get_running_loop().create_future()
        return self._writer

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self.reading_paused and len(self.buffer) <= _HIGH_WATER // 2:
            assert self.transport is not None
            self.reading_paused = False
            self.transport.resume_reading()
        return data


async def _wait(future: asyncio.Future[None], timeout: float | None) -> bool:
    """Whether ``future`` completed within ``timeout`` seconds (None: no limit)."""
    try:
        async with asyncio.timeout(timeout):
            await future
    except TimeoutError:
        return False
    return True


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, plain or TLS, as httpcore's network stream."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self._protocol
        if not p.buffer and not p.eof and not await _wait(p.wait_readable(), timeout):
            raise httpcore.ReadTimeout(f"no data for {timeout} s")
        if p.buffer:
            return p.take(max_bytes)
        if p.lost is not None:
            raise httpcore.ReadError(p.lost) from p.lost
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self._protocol
        if p.lost is not None or self._transport.is_closing():
            raise httpcore.WriteError(p.lost or "the connection is closed")
        self._transport.write(buffer)
        if p.paused and not await _wait(p.wait_writable(), timeout):
            raise httpcore.WriteTimeout(f"could not send for {timeout} s")
        if p.lost is not None:
            raise httpcore.WriteError(p.lost) from p.lost

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"TLS handshake not done in {timeout} s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(exc) from exc
        if transport is None:  # the connection was lost during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        assert isinstance(transport, asyncio.Transport)
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        t = self._transport
        if info == "ssl_object":
            return t.get_extra_info("ssl_object")
        if info == "client_addr":
            return t.get_extra_info("sockname")
        if info == "server_addr":
            return t.get_extra_info("peername")
        if info == "socket":
            return t.get_extra_info("socket")
        if info == "is_readable":
            # An idle kept-alive connection that became readable was closed
            # (or spoken to) by the server: httpcore then drops it.
            p = self._protocol
            return bool(p.buffer) or p.eof or t.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's own transports (see the module)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(_Protocol, host, port,
                                                                   local_addr=local)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        assert isinstance(transport, asyncio.Transport)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"Unix sockets are not supported: {path}")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
