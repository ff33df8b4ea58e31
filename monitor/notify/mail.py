"""Mailing a digest: SMTP settings from the environment, one multipart/alternative
message (text + HTML) built with the email package, sent with smtplib.

Owns the mail seam only: what goes in the message is the digest's business.
Headers are built by the email package from values made single-line first, so
a feed title carrying ``\\r\\nBcc: x@y`` stays inert text in the subject.
Every failure (connection, TLS, login, a refused sender or recipient) becomes a
``MailError`` whose message carries the SMTP server's own answer; missing or
invalid settings are a ``ConfigError``.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from monitor.errors import ConfigError, MailError

SECURITY_MODES = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
TIMEOUT = 30.0  # seconds per SMTP operation
MAX_SUBJECT = 200
# Deliberately narrow: no spaces, quotes, brackets, commas or line breaks, so an
# address can never smuggle a second recipient or header.
ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+")

ENV_HOST = "MONITOR_SMTP_HOST"
ENV_PORT = "MONITOR_SMTP_PORT"
ENV_USER = "MONITOR_SMTP_USER"
ENV_PASSWORD = "MONITOR_SMTP_PASSWORD"
ENV_SECURITY = "MONITOR_SMTP_SECURITY"
ENV_FROM = "MONITOR_SMTP_FROM"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str = "none"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "monitor@localhost"
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings:
        """Read MONITOR_SMTP_*; security defaults to ssl on port 465, starttls
        on 587 or when a user is set, else none."""
        env = os.environ if env is None else env
        host = env.get(ENV_HOST, "").strip()
        if not host:
            raise ConfigError(f"{ENV_HOST} is not set: cannot send mail", field=ENV_HOST)
        user = env.get(ENV_USER) or None
        security = env.get(ENV_SECURITY, "").strip().lower()
        port = _port(env.get(ENV_PORT, "").strip())
        if not security:
            security = {465: "ssl", 587: "starttls"}.get(port or 0,
                                                          "starttls" if user else "none")
        if security not in SECURITY_MODES:
            raise ConfigError(f"must be one of {', '.join(SECURITY_MODES)}, got {security!r}",
                              field=ENV_SECURITY)
        sender = (env.get(ENV_FROM) or "").strip()
        if not sender:
            sender = user if user and ADDRESS.fullmatch(user) else "monitor@localhost"
        if not ADDRESS.fullmatch(sender):
            raise ConfigError(f"not an e-mail address: {sender!r}", field=ENV_FROM)
        return cls(host=host, port=port or DEFAULT_PORTS[security], security=security,
                   user=user, password=env.get(ENV_PASSWORD), sender=sender)


def _port(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"not a port number: {text!r}", field=ENV_PORT)
    return int(text)


def one_line(text: str, limit: int = MAX_SUBJECT) -> str:
    """``text`` as one header-safe line: every control, format and separator
    character (CR, LF, NUL, bidi overrides...) becomes a space."""
    chars = (" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    flat = " ".join("".join(chars).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def header_text(text: str, limit: int = MAX_SUBJECT) -> str:
    """``one_line`` for a header value, with RFC 2047 encoded-word syntax broken
    up: the email package decodes ``=?UTF-8?Q?=0A?=`` in a value it is given
    and would write the decoded line break out raw (an injected header)."""
    return one_line(text, limit).replace("=?", "= ?")


def check_address(addr: str) -> str:
    if not ADDRESS.fullmatch(addr) or "=?" in addr:
        raise MailError(f"not an e-mail address: {addr!r}")
    return addr


def build_message(*, sender: str, to: Sequence[str], subject: str, text: str, html: str,
                  now: datetime | None = None) -> EmailMessage:
    """A multipart/alternative message: the plain text first, the HTML preferred."""
    if not to:
        raise MailError("no recipient")
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = header_text(subject)
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in str(msg["Subject"])):
        raise MailError("refusing a subject that would span several header lines")
    msg["From"] = check_address(sender)
    msg["To"] = ", ".join(check_address(a) for a in to)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    # The sender's domain, not socket.getfqdn(): that can block on DNS for seconds.
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver ``message`` to every address of its To header, or raise MailError
    with the server's answer."""
    where = {"host": settings.host, "port": settings.port}
    try:
        refused = _deliver(settings, message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"the SMTP server refused every recipient: {_refusals(exc.recipients)}",
                        **where) from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"the SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}",
                        **where) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"the SMTP server does not support this: {exc}", **where) from None
    except smtplib.SMTPException as exc:
        raise MailError(f"SMTP failure: {exc}", **where) from None
    except ssl.SSLError as exc:
        raise MailError(f"TLS failure: {exc.reason or exc}", **where) from None
    except TimeoutError:
        raise MailError(f"the SMTP server did not answer within {settings.timeout:g} s",
                        **where) from None
    except OSError as exc:
        raise MailError(f"cannot connect to the SMTP server: {exc.strerror or exc}",
                        **where) from None
    if refused:
        raise MailError(f"the SMTP server refused some recipients (the others got the "
                        f"message): {_refusals(refused)}", **where)


def _deliver(settings: SmtpSettings, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.security == "ssl":
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                  context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with client:
        if settings.security == "starttls":
            client.starttls(context=context)
        if settings.user:
            client.login(settings.user, settings.password or "")
        return client.send_message(message)


def _text(answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer
    return one_line(text, 500)


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in recipients.items())
