"""What keeps the desk safe: the bind check (loopback unless a token or a
password hash is configured), the login with its rate limit, sessions, the
per-session CSRF token checked on every POST, and the headers every response
carries (a strict Content-Security-Policy among them)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.errors import ConfigError

TOKEN_ENV = "MONITOR_DESK_TOKEN"
PASSWORD_ENV = "MONITOR_DESK_PASSWORD_HASH"
CSRF_COOKIE = "desk_csrf"
SESSION_COOKIE = "desk_session"
LOGIN_ATTEMPTS = 5  # failed logins per client within LOGIN_WINDOW before 429s
LOGIN_WINDOW = 60.0
PBKDF2_ITERATIONS = 200_000

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The MONITOR_DESK_PASSWORD_HASH of ``password``: pbkdf2_sha256$iterations$salt$hash."""
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, expected = encoded.strip().split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                     int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


@dataclass
class DeskAuth:
    """The login the desk asks for: none, a shared token, or a password hash."""

    token: str | None = None
    password_hash: str | None = None
    sessions: set[str] = field(default_factory=set)
    failures: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeskAuth:
        env = os.environ if env is None else env
        token = env.get(TOKEN_ENV) or None
        password = env.get(PASSWORD_ENV) or None
        if password and not password.startswith("pbkdf2_sha256$"):
            raise ConfigError("not a pbkdf2_sha256$iterations$salt$hash value "
                              "(make one with `monitor serve --hash-password`)",
                              field=PASSWORD_ENV)
        return cls(token=token, password_hash=password)

    @property
    def required(self) -> bool:
        return bool(self.token or self.password_hash)

    def limited(self, client: str, now: float | None = None) -> bool:
        """Whether ``client`` used up its failed attempts of the window."""
        now = time.monotonic() if now is None else now
        with self.lock:
            recent = [t for t in self.failures.get(client, []) if now - t < LOGIN_WINDOW]
            self.failures[client] = recent
            return len(recent) >= LOGIN_ATTEMPTS

    def login(self, client: str, secret: str) -> str | None:
        """A new session id when ``secret`` is the token or the password; a
        failure counts against ``client``."""
        ok = bool(self.token) and hmac.compare_digest(secret.encode(), (self.token or "").encode())
        if not ok and self.password_hash:
            ok = check_password(secret, self.password_hash)
        with self.lock:
            if not ok:
                self.failures.setdefault(client, []).append(time.monotonic())
                return None
            session = secrets.token_urlsafe(32)
            self.sessions.add(session)
            return session

    def valid(self, session: str | None) -> bool:
        with self.lock:
            return session is not None and session in self.sessions


def check_bind(host: str, auth: DeskAuth) -> None:
    """A bind beyond loopback needs a login: ConfigError (exit 2) without one."""
    if not is_loopback(host) and not auth.required:
        raise ConfigError(f"refusing to serve on {host}, which is not a loopback address, "
                          f"without a login: set {TOKEN_ENV} or {PASSWORD_ENV}, "
                          "or serve on 127.0.0.1", field="--host")


def csrf_ok(cookie: str | None, sent: str | None) -> bool:
    return bool(cookie) and bool(sent) and hmac.compare_digest(str(cookie), str(sent))


class SecurityHeaders:
    """Adds HEADERS to every response, errors and static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items()
                         if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
