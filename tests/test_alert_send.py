"""Alert delivery with real parts: a webhook receiver on 127.0.0.1 that checks
the signature like a real one would, aiosmtpd receiving apprise's mailto://,
the text a phone shows, and the pure cap and quiet-hours policy."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decide import alert_split, in_quiet_hours, quiet_hours_end
from monitor.durations import parse_quiet_hours
from monitor.errors import AlertDeliveryError, MonitorError
from monitor.notify.alerts import (
    AlertMessage,
    AlertStory,
    AlertTarget,
    AlertTopic,
    plan_delivery,
    render_for_markup,
    render_text,
    send_alert,
    verify_signature,
)
from monitor.types import Settings

SECRET = b"s3cret-key"
FAST = Settings(timeout=1.0, connect_timeout=1.0, user_agent="monitor-test/1")
HOSTILE = ("Arrests\r\nBcc: evil@example.net \x1b[31m\u202eevil <!channel> <b>bold</b> "
           "[click](https://evil.example/) =?UTF-8?Q?=0ABcc:_x@example.net?=")
BIDI_AND_BREAKS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def story(title: str = "Activists detained in Almaty", **kw: Any) -> AlertStory:
    base: dict[str, Any] = dict(
        story_id="st-1", title=title, url="https://news.example/kz/1",
        topics=(AlertTopic("kz-rights", "Human rights", ("detained", "activists"),
                           "Police [[detained]] six [[activists]] outside the akimat"),),
        feeds=("Radio Azattyq",), language="en", published_at="2026-12-06T23:50:00+00:00")
    base.update(kw)
    return AlertStory(**base)


def message(s: AlertStory | None = None, kind: str = "story") -> AlertMessage:
    s = s or story()
    return AlertMessage(alert_id="desk", key=f"desk:{s.story_id}", kind=kind,  # type: ignore[arg-type]
                        stories=(s,))


# --- a webhook receiver ---------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """Answers ``status`` (or hangs when ``hang``); verifies every request's
    signature against ``SECRET`` with its clock moved by ``skew`` seconds."""

    status: int = 200
    hang: bool = False
    skew: float = 0.0
    signed: bool = True  # False: an apprise json:// target, which does not sign
    got: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify_signature(SECRET, self.headers.get("X-Monitor-Timestamp", ""), body,
                                  self.headers.get("X-Monitor-Signature", ""),
                                  now=time.time() + rx.skew)
            rx.got.append(Received(self.path, dict(self.headers.items()), body, ok))
            if rx.hang:
                rx.release.wait(10)  # bounded: the test releases it on the way out
                return
            status = rx.status if ok or not rx.signed else 401
            location = [("Location", rx.url("/elsewhere"))] if 300 <= status < 400 else []
            self.send_response(status)
            for k, v in [("Content-Length", "0"), *location]:
                self.send_header(k, v)
            self.end_headers()

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        rx.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def target(url: str, *, allow_private: bool = True) -> AlertTarget:
    return AlertTarget(to=url, secret=SECRET, allow_private=allow_private)


def deliver(t: AlertTarget, m: AlertMessage | None = None) -> None:
    asyncio.run(send_alert(t, m or message(), settings=FAST))


def failure(t: AlertTarget, m: AlertMessage | None = None) -> AlertDeliveryError:
    with pytest.raises(AlertDeliveryError) as info:
        deliver(t, m)
    assert isinstance(info.value, MonitorError)
    assert info.value.alert_id == "desk"
    return info.value


def test_webhook_posts_signed_json_the_receiver_verifies(receiver: Receiver) -> None:
    deliver(target(receiver.url()), message(story(HOSTILE)))
    [got] = receiver.got
    assert got.verified
    assert got.headers["X-Monitor-Key"] == "desk:st-1"
    assert got.headers["User-Agent"] == "monitor-test/1"
    assert got.headers["X-Monitor-Signature"].startswith("sha256=")
    doc = json.loads(got.body)
    assert doc["kind"] == "story" and doc["key"] == "desk:st-1" and doc["alert"] == "desk"
    [s] = doc["stories"]
    assert s["story_id"] == "st-1" and s["url"] == "https://news.example/kz/1"
    assert s["feeds"] == ["Radio Azattyq"] and s["language"] == "en"
    assert s["published_at"] == "2026-12-06T23:50:00+00:00"
    assert s["topics"] == [{"id": "kz-rights", "name": "Human rights",
                            "terms": ["detained", "activists"],
                            "snippet": "Police [[detained]] six [[activists]] outside the akimat"}]
    assert not any(c in s["title"] for c in "\r\n\x1b\u202e")


def test_a_replayed_or_tampered_request_is_rejected(receiver: Receiver) -> None:
    deliver(target(receiver.url()))
    [first] = receiver.got
    replay = {k: v for k, v in first.headers.items()
              if k.lower() in ("x-monitor-timestamp", "x-monitor-signature", "content-type")}
    receiver.skew = 301  # the same request, resent five minutes and a second later
    assert httpx.post(receiver.url(), content=first.body, headers=replay).status_code == 401
    receiver.skew = 0
    tampered = first.body.replace(b"Almaty", b"Astana")
    assert httpx.post(receiver.url(), content=tampered, headers=replay).status_code == 401
    assert [r.verified for r in receiver.got] == [True, False, False]


def test_verify_signature_tolerance_and_form() -> None:
    from monitor.notify.alerts import sign
    body = b'{"a":1}'
    header = sign(SECRET, "1000", body)
    assert verify_signature(SECRET, "1000", body, header, now=1300)
    assert not verify_signature(SECRET, "1000", body, header, now=1301)
    assert not verify_signature(SECRET, "1000", body, header, now=699)
    assert not verify_signature(b"other", "1000", body, header, now=1000)
    assert not verify_signature(SECRET, "1000", body, header.removeprefix("sha256="), now=1000)
    assert not verify_signature(SECRET, "１０００", body, header, now=1000)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True),
                                                   (404, False), (400, False)])
def test_receiver_errors_are_classified(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.status = status
    err = failure(target(receiver.url("/hooks/T0K3N/x?token=T0K3N")))
    assert err.retryable is retryable
    assert str(status) in err.reason
    assert "T0K3N" not in str(err)  # the hook's token is its path and query
    assert f"127.0.0.1:{receiver.port}" in str(err)


def test_a_hanging_receiver_times_out_retryable(receiver: Receiver) -> None:
    receiver.hang = True
    err = failure(target(receiver.url()))
    assert err.retryable and "no answer within 1 s" in err.reason
    assert len(receiver.got) == 1


def test_nothing_listening_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert failure(target(f"http://127.0.0.1:{port}/hook")).retryable


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    err = failure(target(receiver.url()))
    assert not err.retryable and "302" in err.reason
    assert [r.path for r in receiver.got] == ["/hook"]


def test_a_private_address_is_refused_without_allow_private(receiver: Receiver) -> None:
    err = failure(target(receiver.url(), allow_private=False))
    assert not err.retryable and "127.0.0.1 refused" in err.reason
    assert receiver.got == []


# --- apprise: mailto:// into aiosmtpd ------------------------------------------------------

class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def mailto(port: int) -> AlertTarget:
    # mailto:// (not mailtos://) is plain SMTP: no TLS, no login without a user.
    return AlertTarget(to=f"mailto://127.0.0.1:{port}?from=monitor@example.org"
                          f"&to=desk@example.org", secret=None, allow_private=False)


def test_mailto_delivers_a_hostile_title_inert(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    deliver(mailto(port), message(story(HOSTILE, feeds=("Feed <i>A</i>",))))
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["desk@example.org"]
    mail = email.message_from_bytes(envelope.original_content, policy=email.policy.compat32)
    assert mail.get_all("Bcc") is None
    assert [k for k in mail if k.lower() in ("bcc", "cc")] == []
    subject = str(make_header(decode_header(mail["Subject"])))
    assert subject.startswith("Arrests Bcc: evil@example.net")
    assert not any(c in subject for c in "\r\n\x1b\u202e<>")
    assert "=?" not in subject  # no encoded word left to be decoded into a line break
    text = mail.get_payload(decode=True).decode("utf-8")
    assert "Sources: Feed ‹i›A‹/i›" in text
    assert "https://news.example/kz/1" in text


def test_mailto_to_nothing_listening_is_retryable() -> None:
    err = failure(mailto(free_port()))
    assert err.retryable


def test_an_apprise_http_target_gets_the_markup_safe_text(receiver: Receiver) -> None:
    receiver.signed = False
    deliver(AlertTarget(to=f"json://127.0.0.1:{receiver.port}/apprise", secret=None,
                        allow_private=True), message(story(HOSTILE)))
    [got] = receiver.got
    doc = json.loads(got.body)
    assert doc["title"].startswith("Arrests Bcc: evil@example.net [31m")
    assert not any(c in doc["title"] + doc["message"] for c in "<>\r\x1b\u202e")
    assert "‹!channel›" in doc["title"] and "[click] (https://evil.example/)" in doc["title"]
    assert "Sources: Radio Azattyq" in doc["message"]


def test_an_unknown_scheme_is_not_retryable_and_keeps_its_secret() -> None:
    err = failure(AlertTarget(to="nosuch://T0K3N@host/T0K3N", secret=None,
                              allow_private=False))
    assert not err.retryable
    assert "T0K3N" not in str(err) and "nosuch://" in str(err)


def test_a_target_repr_shows_no_secret() -> None:
    t = AlertTarget(to="tgram://123:T0K3N/456", secret=SECRET, allow_private=False)
    assert "T0K3N" not in repr(t) and "s3cret" not in repr(t)


# --- the text ------------------------------------------------------------------------------

def test_render_text_golden() -> None:
    s = story("Activists\r\ndetained \u202ein Almaty\x1b[0m",
              feeds=("Radio Azattyq", "Vlast.kz", "KazTAG", "Eurasianet", "Reuters"),
              topics=(AlertTopic("kz-rights", "Human rights", ("detained", "activists"),
                                 "Police [[detained]]\nsix [[activists]] outside the akimat"),
                      AlertTopic("kz-protest", "Protests", ("akimat",), "")))
    assert render_text(message(s)) == (
        "Activists detained in Almaty[0m",
        "Sources: Radio Azattyq, Vlast.kz, KazTAG +2 more\n"
        "Topics: Human rights (detained, activists) · Protests (akimat)\n"
        "“Police detained six activists outside the akimat”\n"
        "Published 2026-12-06 23:50 UTC\n"
        "https://news.example/kz/1")


def test_render_summary_and_test_golden() -> None:
    m = plan_delivery([message(story(f"Story {i}", story_id=f"s{i}",
                                     url="javascript:alert(1)" if i == 3 else
                                     f"https://n.example/{i}")) for i in range(4)],
                      sent_last_hour=18, max_per_hour=20)
    [alone], summary = m
    assert alone.stories[0].story_id == "s0"
    assert summary is not None and summary.kind == "summary"
    assert summary.key.startswith("desk:summary:")
    assert render_text(summary) == (
        "3 new stories for desk",
        "• Story 1 (Radio Azattyq)\n  https://n.example/1\n"
        "• Story 2 (Radio Azattyq)\n  https://n.example/2\n"
        "• Story 3 (Radio Azattyq)")  # a javascript: link is not shown
    title, body = render_text(message(kind="test"))
    assert title == "Test: Activists detained in Almaty"
    assert body.startswith("Test message for alert desk\nSources: Radio Azattyq\n")


def test_render_for_markup_leaves_no_markup_to_inject() -> None:
    hostile = story(HOSTILE + " @everyone", feeds=("<@U123> [x](https://evil.example/)",),
                    url="https://news.example/a<b>(c)",
                    topics=(AlertTopic("t", "<!here>", ("<b>",), "[[<a href=x>]]y</a>"),))
    for text in render_for_markup(message(hostile)):
        assert "<" not in text and ">" not in text and "](" not in text
        assert "@everyone" not in text and "@here" not in text
    title, body = render_for_markup(message(hostile))
    assert "@\u200beveryone" in title and "‹!channel›" in title
    assert body.endswith("https://news.example/a%3Cb%3E%28c%29")
    assert "<!channel>" in render_text(message(hostile))[0]  # plain text stays as written


hostile_text = st.text(st.one_of(st.characters(), st.sampled_from(
    list("\r\n\t\x00\x1b\x7f\x85\x9b\u200e\u200f\u061c\ufeff") + sorted(BIDI_AND_BREAKS))))


def _inert(text: str, *, newlines: bool) -> bool:
    return not any((unicodedata.category(c) == "Cc" and not (newlines and c == "\n"))
                   or c in BIDI_AND_BREAKS for c in text)


@settings(max_examples=200, deadline=None)
@given(title=hostile_text, feed=hostile_text, term=hostile_text, snippet=hostile_text,
       kind=st.sampled_from(["story", "test", "summary"]))
def test_render_output_never_carries_controls_or_bidi(title: str, feed: str, term: str,
                                                       snippet: str, kind: str) -> None:
    s = story(title, feeds=(feed, feed), url=f"https://x.example/{title}",
              topics=(AlertTopic("t", term, (term,), snippet),))
    m = AlertMessage("desk", "k", kind, (s, s) if kind == "summary" else (s,),  # type: ignore[arg-type]
                     also=(title,))
    for render in (render_text, render_for_markup):
        out_title, body = render(m)
        assert _inert(out_title, newlines=False)
        assert _inert(body, newlines=True)
        assert out_title  # a phone always has something to show


# --- the cap and quiet hours ---------------------------------------------------------------

@pytest.mark.parametrize(("queued", "sent", "cap", "expected"), [
    (5, 0, None, (5, 0)), (5, 0, 5, (5, 0)), (6, 0, 5, (4, 2)), (6, 4, 5, (0, 6)),
    (3, 5, 5, (0, 0)), (3, 9, 5, (0, 0)), (0, 5, 5, (0, 0)), (2, 3, 5, (2, 0))])
def test_alert_split(queued: int, sent: int, cap: int | None, expected: tuple[int, int]) -> None:
    assert alert_split(queued, sent, cap) == expected


def test_plan_delivery_folds_the_rest_into_one_summary() -> None:
    queued = [message(story(story_id=f"s{i}")) for i in range(6)]
    now, summary = plan_delivery(queued, sent_last_hour=0, max_per_hour=5)
    assert [m.key for m in now] == ["desk:s0", "desk:s1", "desk:s2", "desk:s3"]
    assert summary is not None and [s.story_id for s in summary.stories] == ["s4", "s5"]
    again = plan_delivery(queued, sent_last_hour=0, max_per_hour=5)[1]
    assert again is not None and again.key == summary.key
    assert plan_delivery(queued, sent_last_hour=5, max_per_hour=5) == ((), None)


def test_quiet_hours() -> None:
    night = parse_quiet_hours("22:00-07:00")
    assert night == (clock(22), clock(7))
    assert in_quiet_hours(clock(23, 59), night) and in_quiet_hours(clock(0), night)
    assert in_quiet_hours(clock(22), night) and not in_quiet_hours(clock(7), night)
    assert not in_quiet_hours(clock(12), night)
    lunch = parse_quiet_hours(" 12:30 - 13:00 ")
    assert in_quiet_hours(clock(12, 45), lunch) and not in_quiet_hours(clock(13), lunch)
    for bad in ("22-07", "24:00-07:00", "22:00-22:00", "10:60-11:00", ""):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)
    tz = ZoneInfo("Asia/Almaty")
    assert quiet_hours_end(datetime(2026, 12, 6, 23, 10, tzinfo=tz), night) == \
        datetime(2026, 12, 7, 7, 0, tzinfo=tz)
    assert quiet_hours_end(datetime(2026, 12, 7, 3, 0, tzinfo=tz), night) == \
        datetime(2026, 12, 7, 7, 0, tzinfo=tz)
    assert quiet_hours_end(datetime(2026, 12, 7, 9, 0, tzinfo=tz), night) is None
