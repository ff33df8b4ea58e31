"""A real HTTP server on 127.0.0.1 serving feed files, for end-to-end tests.

Serves ``{path: bytes}`` with an ETag and Last-Modified per body, answers
conditional requests with 304, and logs every request (path and headers) so a
test can assert what the poller sent. Started and stopped by the test.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = ""
    last_modified: str = ""
    status: int = 200


@dataclass
class FeedServer:
    host: str = "127.0.0.1"
    port: int = 0
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _version: int = 0

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def put(self, path: str, body: bytes, content_type: str | None = None,
            status: int = 200) -> None:
        """Serve ``body`` at ``path`` with fresh validators."""
        with self.lock:
            self._version += 1
            digest = hashlib.sha256(body).hexdigest()[:16]
            served = Served(body, etag=f'W/"{digest} v{self._version}"',
                            last_modified=formatdate(1_700_000_000 + self._version, usegmt=True),
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


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with server.lock:
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                served = server.files.get(self.path)
            if served is None:
                self._send(404, b"not found", "text/plain", {})
                return
            headers = {"ETag": served.etag, "Last-Modified": served.last_modified}
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            if (inm and inm == served.etag) or (not inm and ims and ims == served.last_modified):
                self._send(304, b"", None, headers)
                return
            self._send(served.status, served.body, served.content_type, headers)

        def _send(self, status: int, body: bytes, ctype: str | None,
                  headers: dict[str, str]) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed mid-response (the crash tests do it on purpose) is not news.
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serving(httpd: ThreadingHTTPServer) -> Iterator[int]:
    """Run ``httpd`` in a thread; yields its port, and stops it on exit."""
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def serve() -> Iterator[FeedServer]:
    state = FeedServer()
    with serving(_QuietServer(("127.0.0.1", 0), _handler(state))) as port:
        state.port = port
        yield state
