"""The one HTTP server of the tests and benchmarks: real files and programmable
routes on loopback addresses.

Owns ``FeedServer`` (what is served and what was asked) and ``serve()``, which
runs one threaded HTTP/1.1 server per address and stops them on exit. Files put
with ``put`` get an ETag and Last-Modified per body and are answered with 304
to a matching conditional request; a route (``server.routes[path] = fn``) is
called with the request handler and answers as it likes (``respond`` writes a
whole response). Every request is counted and, unless ``log_requests`` is off,
logged with its headers so a test can assert what the poller sent.

Used by the ``server`` fixture in tests/conftest.py and by benchmarks/common.py
and benchmarks/soak.py. It speaks well-formed HTTP only: raw socket faults
(resets, stalls, broken framing) belong to tests/faultserver.py.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Served:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = ""
    last_modified: str = ""
    status: int = 200


@dataclass
class FeedServer:
    addresses: tuple[str, ...] = ("127.0.0.1",)
    # Off for the benchmarks: thousands of requests need no header log.
    log_requests: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    files: dict[str, Served] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    hits: int = 0  # every request, logged or not
    not_modified: int = 0
    connections: int = 0  # accepted: fewer than hits when a client keeps them alive
    # perf_counter of the first and last full (200) file response since reset_counts().
    first_body_at: float | None = None
    last_body_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _version: int = 0

    @property
    def host(self) -> str:
        return self.addresses[0]

    @property
    def port(self) -> int:
        return self.ports[self.host]

    def url(self, path: str, index: int = 0) -> str:
        """The URL of ``path`` on the ``index``-th address (several addresses stand in
        for several sites, so a per-host limit applies as it would on real feeds)."""
        host = self.addresses[index % len(self.addresses)]
        return f"http://{host}:{self.ports[host]}{path}"

    def put(self, path: str, body: bytes, content_type: str | None = None,
            status: int = 200, *, etag: str | None = None,
            last_modified: str | None = None) -> None:
        """Serve ``body`` at ``path`` with fresh validators (or the ones given)."""
        with self.lock:
            self._version += 1
            digest = hashlib.sha256(body).hexdigest()[:16]
            served = Served(
                body, etag=etag or f'W/"{digest} v{self._version}"',
                last_modified=last_modified or http_date(1_700_000_000 + self._version),
                status=status)
            if content_type:
                served.content_type = content_type
            self.files[path] = served

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def headers_for(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.requests if p == path]

    def counts(self) -> tuple[int, int]:
        """(connections accepted, requests answered)."""
        with self.lock:
            return self.connections, self.hits

    def reset_counts(self) -> None:
        with self.lock:
            self.hits = self.not_modified = self.connections = 0
            self.first_body_at = self.last_body_at = None

    def body_span(self) -> float | None:
        """Seconds from the first to the last full response since reset_counts()."""
        with self.lock:
            if self.first_body_at is None or self.last_body_at is None:
                return None
            return self.last_body_at - self.first_body_at


def http_date(stamp: int) -> str:
    return formatdate(stamp, usegmt=True)


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes,
            headers: dict[str, str] | None = None, *, length: int | None = None) -> None:
    """One whole response with a Content-Length (``length`` may lie, to cut a body short)."""
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    if body:
        handler.wfile.write(body)


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: a connection serves requests until the client closes it or
        # sends "Connection: close" (every response has a Content-Length).
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the
        # body of a response on a kept-alive connection could wait for the
        # client's delayed ACK of the headers.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with server.lock:
                server.connections += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with server.lock:
                server.hits += 1
                if server.log_requests:
                    server.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path)
                served = server.files.get(self.path)
            if route is not None:
                route(self)
            elif served is None:
                respond(self, 404, b"not found", {"Content-Type": "text/plain"})
            else:
                self._file(served)

        def _file(self, served: Served) -> None:
            validators = {"ETag": served.etag, "Last-Modified": served.last_modified}
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            if (inm and inm == served.etag) or (not inm and ims == served.last_modified):
                with server.lock:
                    server.not_modified += 1
                respond(self, 304, b"", validators)
                return
            respond(self, served.status, served.body,
                    {"Content-Type": served.content_type, **validators})
            now = time.perf_counter()
            with server.lock:
                server.first_body_at = server.first_body_at or now
                server.last_body_at = now

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark opens hundreds of connections at once

    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed mid-response, or one dropping an over-the-cap body, is not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serve(addresses: tuple[str, ...] = ("127.0.0.1",), *,
          log_requests: bool = True) -> Iterator[FeedServer]:
    """A FeedServer listening on every address (port chosen by the system); stopped on exit."""
    state = FeedServer(addresses, log_requests)
    running: list[tuple[_QuietServer, threading.Thread]] = []
    try:
        for address in addresses:
            httpd = _QuietServer((address, 0), _handler(state))
            state.ports[address] = int(httpd.server_address[1])
            thread = threading.Thread(target=httpd.serve_forever,
                                      kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            running.append((httpd, thread))
        yield state
    finally:
        for httpd, thread in running:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)


@contextmanager
def post_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A server on 127.0.0.1 passing every POST to ``handle``; yields the URL
    of its ``/hook``. Webhook receivers of the tests and benchmarks use it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            handle(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
