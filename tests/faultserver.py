"""A misbehaving HTTP server on 127.0.0.1 for fetcher tests.

Raw sockets, one thread per connection, one request per connection, so a
handler can do what http.server cannot: never answer, drip bytes, lie about
Content-Length, reset the connection, send a 200 KB header or an endless
gzip bomb. Every request is recorded (path, raw header values) and the server
counts requests in flight, so tests can check conditional GET headers and
per-host limits. Its lifetime is bounded: ``stop()`` (or leaving the ``with``
block) wakes every waiting handler, closes every socket and joins every thread.

    with FaultServer() as server:
        server.route("/feed", static(body, etag='"v1"'))
        url = server.url("/feed")
"""

from __future__ import annotations

import contextlib
import email.utils
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MAX_REQUEST_HEAD = 64 * 1024
JOIN_TIMEOUT = 5.0


@dataclass
class Request:
    method: str
    target: str
    path: str
    headers: list[tuple[str, bytes]]  # names lowercased, values raw bytes

    def header(self, name: str) -> bytes | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k == lname), None)


Handler = Callable[["Exchange"], None]


@dataclass
class Exchange:
    """One connection as a handler sees it."""

    conn: socket.socket
    request: Request
    server: FaultServer
    responded: bool = False

    def send(self, data: bytes) -> bool:
        """Send bytes; False once the client has gone or the server stops."""
        self._mark_responded()
        if self.server.stopping.is_set():
            return False
        try:
            self.conn.sendall(data)
            return True
        except OSError:
            return False

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        reason: str = "",
        content_length: bool = True,
    ) -> bool:
        head = [(k, v) for k, v in (headers or [])]
        if content_length:
            head.append(("Content-Length", str(len(body))))
        return self.send(response_head(status, head, reason=reason) + body)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False early if the client closed or the
        server is stopping."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.server.stopping.is_set() or self.client_closed(min(left, 0.05)):
                return False
        return True

    def client_closed(self, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([self.conn], [], [], timeout)
            if not readable:
                return False
            return self.conn.recv(4096, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _mark_responded(self) -> None:
        if not self.responded:
            self.responded = True
            self.server._leave(self.request.path)


def response_head(status: int, headers: list[tuple[str, str]], *, reason: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {
    200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 404: "Not Found", 410: "Gone",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}


class FaultServer:
    """A threaded raw-socket HTTP/1.1 server on 127.0.0.1 with per-path handlers."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.disconnects: dict[str, int] = {}
        self.max_in_flight = 0
        self._in_flight = 0
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0

    # lifetime
    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop)

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _quietly(conn.shutdown, socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(JOIN_TIMEOUT)
        if self._listener is not None:
            self._listener.close()
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"fault server threads still running: {alive}"

    # configuration and inspection
    def route(self, path: str, handler: Handler) -> str:
        self._routes[path] = handler
        return self.url(path)

    def url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def count(self, path: str) -> int:
        return len(self.requests_to(path))

    # internals
    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self._handshake(conn, self.tls)
            request = _read_request(conn, self.stopping)
            if request is None:
                return
            self._enter(request)
            exchange = Exchange(conn, request, self)
            try:
                handler = self._routes.get(request.path, not_found)
                handler(exchange)
            finally:
                exchange._mark_responded()
                if exchange.client_closed(0):
                    with self._lock:
                        self.disconnects[request.path] = self.disconnects.get(request.path, 0) + 1
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            _quietly(conn.close)

    def _handshake(self, conn: socket.socket, tls: ssl.SSLContext) -> socket.socket:
        conn.settimeout(JOIN_TIMEOUT)
        with self._lock:
            self._conns.discard(conn)
        wrapped = tls.wrap_socket(conn, server_side=True)  # raises when the client refuses us
        with self._lock:
            self._conns.add(wrapped)
        return wrapped

    def _enter(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self, path: str) -> None:
        # Counted until the first response byte: the client cannot start its
        # next request on this slot before then, so the count has no race.
        with self._lock:
            self._in_flight -= 1


def _read_request(conn: socket.socket, stopping: threading.Event) -> Request | None:
    conn.settimeout(0.05)
    data = b""
    while b"\r\n\r\n" not in data:
        if stopping.is_set() or len(data) > MAX_REQUEST_HEAD:
            return None
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return None
        data += chunk
    conn.settimeout(None)
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    method, target, _ = head[0].decode("latin-1").split(" ", 2)
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").strip().lower(), value.strip()))
    return Request(method, target, target.split("?", 1)[0], headers)


def _quietly(func: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(OSError):
        func(*args)


# ---------------------------------------------------------------- handlers


def not_found(ex: Exchange) -> None:
    ex.respond(404, b"not found", [("Content-Type", "text/plain")])


def static(
    body: bytes,
    *,
    content_type: str = "application/rss+xml; charset=utf-8",
    etag: str | None = None,
    last_modified: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    not_modified_headers: list[tuple[str, str]] | None = None,
) -> Handler:
    """A file with validators; answers 304 when the request's validators match."""

    def handle(ex: Exchange) -> None:
        validators = [("ETag", etag)] if etag else []
        validators += [("Last-Modified", last_modified)] if last_modified else []
        inm, ims = ex.request.header("if-none-match"), ex.request.header("if-modified-since")
        etag_hit = etag is not None and inm == etag.encode("latin-1")
        date_hit = last_modified is not None and ims == last_modified.encode("latin-1")
        if etag_hit or (inm is None and date_hit):
            extra = not_modified_headers or []
            names = {k.lower() for k, _ in extra}
            kept = [(k, v) for k, v in validators if k.lower() not in names]
            ex.respond(304, b"", kept + extra, content_length=False)
            return
        ex.respond(200, body, [("Content-Type", content_type), *validators, *(headers or [])])

    return handle


def status(code: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Handler:
    def handle(ex: Exchange) -> None:
        ex.respond(code, body, [("Content-Type", "text/plain"), *(headers or [])])

    return handle


def fail_then(times: int, code: int, then: Handler) -> Handler:
    """``code`` for the first ``times`` requests, then ``then``."""
    seen = [0]

    def handle(ex: Exchange) -> None:
        seen[0] += 1
        (status(code) if seen[0] <= times else then)(ex)

    return handle


def redirect(code: int, location: str) -> Handler:
    return status(code, [("Location", location)])


def never_reply(ex: Exchange) -> None:
    """Accept, read the request, say nothing until the client gives up."""
    ex.wait(60)


def sleep_then(seconds: float, then: Handler) -> Handler:
    def handle(ex: Exchange) -> None:
        if ex.wait(seconds):
            then(ex)

    return handle


def drip(interval: float = 0.5, total: int = 200) -> Handler:
    """A 200 whose body arrives one byte every ``interval`` seconds."""

    def handle(ex: Exchange) -> None:
        head = [("Content-Type", "application/rss+xml"), ("Content-Length", str(total))]
        if not ex.send(response_head(200, head)):
            return
        for _ in range(total):
            if not ex.send(b"x") or not ex.wait(interval):
                return

    return handle


def length_lie(declared: int = 1000, sent: bytes = b"<rss>") -> Handler:
    """Content-Length ``declared``, fewer bytes sent, then close."""

    def handle(ex: Exchange) -> None:
        ex.send(response_head(200, [("Content-Type", "application/rss+xml"),
                                    ("Content-Length", str(declared))]) + sent)

    return handle


def reset_mid_body(ex: Exchange) -> None:
    """Half a body, then an RST (SO_LINGER 0) instead of a FIN."""
    head = response_head(200, [("Content-Type", "application/rss+xml"), ("Content-Length", "100000")])
    ex.send(head + b"<rss>" + b" " * 1000)
    time.sleep(0.05)
    ex.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ex.conn.close()


def empty(*, content_length: bool) -> Handler:
    """200 with no body: ``Content-Length: 0``, or delimited by closing."""

    def handle(ex: Exchange) -> None:
        ex.respond(200, b"", [("Content-Type", "application/rss+xml")], content_length=content_length)

    return handle


def huge_header(size: int = 200_000) -> Handler:
    def handle(ex: Exchange) -> None:
        ex.respond(200, b"<rss/>", [("Content-Type", "application/rss+xml"), ("X-Big", "a" * size)])

    return handle


def gzip_bomb(inflated: int = 1 << 30) -> Handler:
    """``Content-Encoding: gzip`` body inflating to ``inflated`` zero bytes
    (1 GiB by default, about 1 MB on the wire), compressed while it streams so
    only the part the client reads is ever produced."""
    def packer() -> _Packer:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        return c.compress, c.flush

    return _bomb("gzip", packer, inflated)


def brotli_bomb(inflated: int = 1 << 30) -> Handler:
    """``Content-Encoding: br`` body inflating to ``inflated`` zero bytes (1 GiB
    by default, about 190 KB on the wire: a few network reads), compressed
    while it streams. Needs the optional ``brotli`` package."""
    import brotli

    def packer() -> _Packer:
        c = brotli.Compressor(quality=1)
        return c.process, c.finish

    return _bomb("br", packer, inflated)


# A compressor's (compress, finish) pair, made fresh for each request.
_Packer = tuple[Callable[[bytes], bytes], Callable[[], bytes]]


def _bomb(encoding: str, packer: Callable[[], _Packer], inflated: int) -> Handler:
    """Zeros compressed as they stream, sent in full-size writes (one network
    read then inflates to tens of MB)."""
    block = bytes(1 << 20)

    def handle(ex: Exchange) -> None:
        head = [("Content-Type", "application/rss+xml"), ("Content-Encoding", encoding)]
        if not ex.send(response_head(200, head)):
            return
        compress, finish = packer()
        pending = b""
        for _ in range(inflated // len(block)):
            pending += compress(block)
            if len(pending) >= 64 * 1024:
                if not ex.send(pending):
                    return
                pending = b""
        ex.send(pending + finish())

    return handle


def endless(*, chunked: bool, limit: int = 1 << 30) -> Handler:
    """A body that does not end (up to ``limit`` bytes), chunked or close-delimited."""
    piece = b"<item>" + b"x" * 65530 + b"\n"

    def handle(ex: Exchange) -> None:
        head = [("Content-Type", "application/rss+xml")]
        head += [("Transfer-Encoding", "chunked")] if chunked else []
        if not ex.send(response_head(200, head)):
            return
        frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
        for _ in range(limit // len(piece)):
            if not ex.send(frame):
                return

    return handle


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def self_signed_tls(folder: Path, *names: str) -> ssl.SSLContext:
    """A server-side TLS context for ``FaultServer(tls=...)`` with a fresh self-signed
    EC certificate made in ``folder``; ``names`` are more ``openssl req`` arguments
    (the subject, alternative names). Skips the test where openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", *names, "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: new connections hang in SYN_SENT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(8):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", listener.getsockname()[1]))
        fillers.append(client)
    time.sleep(0.05)
    try:
        yield listener.getsockname()[1]
    finally:
        for client in fillers:
            client.close()
        listener.close()


__all__ = [
    "Exchange", "FaultServer", "Request", "closed_port", "drip", "empty", "endless",
    "fail_then", "fault_server", "full_backlog", "gzip_bomb", "http_date",
    "huge_header", "length_lie", "never_reply", "not_found", "redirect", "reset_mid_body",
    "self_signed_tls", "sleep_then", "static", "status",
]
