"""monitor.fastparse: wherever the lxml fast path takes a document, it gives the
same ParsedFeed as feedparser.

Every fixture under tests/data (parse/, feeds/, fetch/) and, when it is there,
every file of the shared corpus (../shared/data real-feeds and feedparser-tests)
is parsed twice, with fast=True and fast=False; if the fast path accepts the
document, the two results must be equal, field for field. Small documents
below pin the feedparser rules the replay copies. The HTML-to-text shortcut of
monitor.parse is checked against html.parser the same way.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.parse import (
    _parsed_html_to_text,
    _simple_html_to_text,
    parse_feed,
    takes_fast_path,
)
from monitor.parse import fast as fastparse
from monitor.types import ParsedFeed

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SHARED = Path(os.environ.get("MONITOR_SHARED_DATA", HERE.parent.parent / "shared" / "data"))

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
URL = "https://feeds.example.org/news/feed.xml"
XML = {"Content-Type": "application/xml"}
HEADER_LINE = re.compile(rb"^Header:\s*([^:\r\n]+):[ \t]*(.*?)\s*$", re.MULTILINE)
SKIP_SUFFIXES = (".tsv", ".txt", ".md", ".json", ".jsonl")


def headers_for(body: bytes) -> Any:
    """The simulated HTTP headers feedparser's test files declare in a comment."""
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in HEADER_LINE.findall(body)]
    return pairs or XML


def outcome(body: bytes, headers: Any, *, fast: bool) -> ParsedFeed | tuple[str, str]:
    try:
        return parse_feed(body, url=URL, headers=headers, fetched_at=NOW, fast=fast)
    except ParseError as exc:
        return (exc.kind, str(exc))


def difference(body: bytes, headers: Any = XML) -> str | None:
    """None when both paths agree (or the fast path declines), else what differs."""
    if not takes_fast_path(body, url=URL, headers=headers):
        return None
    fast, slow = outcome(body, headers, fast=True), outcome(body, headers, fast=False)
    if fast == slow:
        return None
    if not (isinstance(fast, ParsedFeed) and isinstance(slow, ParsedFeed)):
        return f"fast {fast!r:.200} / feedparser {slow!r:.200}"
    for name in ("title", "link", "ttl", "bozo_reason"):
        if getattr(fast, name) != getattr(slow, name):
            return f"feed {name}: {getattr(fast, name)!r:.200} / {getattr(slow, name)!r:.200}"
    if len(fast.entries) != len(slow.entries):
        return f"{len(fast.entries)} entries / {len(slow.entries)}"
    for i, (a, b) in enumerate(zip(fast.entries, slow.entries, strict=True)):
        if a != b:
            return f"entry {i}: {a!r:.300} / {b!r:.300}"
    return "differ"


def accepts(body: bytes, headers: Any = XML) -> bool:
    return takes_fast_path(body, url=URL, headers=headers)


def corpus(*roots: Path) -> list[Path]:
    return sorted(
        p
        for root in roots
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in SKIP_SUFFIXES
    )


# ------------------------------------------------------------ whole corpora

LOCAL_FILES = corpus(DATA / "parse", DATA / "feeds", DATA / "fetch")


def agreement(files: list[Path], root: Path) -> tuple[int, list[str]]:
    """(files the fast path took, the ones where it disagreed with feedparser)."""
    taken, failures = 0, []
    for path in files:
        body = path.read_bytes()
        headers = headers_for(body)
        if not accepts(body, headers):
            continue
        taken += 1
        if (diff := difference(body, headers)) is not None:
            failures.append(f"{path.relative_to(root)}: {diff}")
    return taken, failures


def test_local_fixtures_agree_wherever_the_fast_path_is_taken() -> None:
    assert len(LOCAL_FILES) > 200
    taken, failures = agreement(LOCAL_FILES, DATA)
    assert failures == []
    # The fast path is not dead: most real feeds and much of feedparser's suite take it.
    assert taken > 100


@pytest.mark.slow
def test_whole_shared_corpus_agrees_wherever_the_fast_path_is_taken() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED} (set MONITOR_SHARED_DATA)")
    files = corpus(SHARED / "real-feeds", SHARED / "feedparser-tests")
    assert len(files) > 2000
    taken, failures = agreement(files, SHARED)
    assert failures == []
    assert taken > 1200


# ------------------------------------------------------ what is declined


def rss(items: str, channel: str = "<title>T</title><link>https://example.org/</link>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:itunes="http://www.itunes.com/DTDs/PodCast-1.0.dtd"'
        ' xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel>{channel}{items}</channel></rss>"
    ).encode()


def atom(entries: str, head: str = "<title>T</title>", attrs: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom"{attrs}>{head}{entries}</feed>'
    ).encode()


def rdf(root_ns: str, channel_ns: str = "", head: str = "") -> bytes:
    """An RDF document: ``root_ns`` declared on rdf:RDF, ``channel_ns`` on <channel>."""
    return (
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        f"{root_ns}><channel{channel_ns}><title>R</title><link>https://example.org/</link>{head}"
        '<items><rdf:Seq><rdf:li rdf:resource="https://example.org/1"/></rdf:Seq></items></channel>'
        '<item rdf:about="https://example.org/1"><title>one</title>'
        "<link>https://example.org/1</link><description>first &amp; only</description></item>"
        "</rdf:RDF>"
    ).encode()


RSS10_NS = ' xmlns="http://purl.org/rss/1.0/"'
ATOM_NS = ' xmlns:atom="http://www.w3.org/2005/Atom"'


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (rss("<item><title>a</title>") + b"<", XML),  # not well-formed
        (b"<html><body><p>hi</p></body></html>", XML),  # not a feed root
        (b'<feed xmlns="http://purl.org/atom/ns#"><title>old</title></feed>', XML),  # Atom 0.3
        (
            b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "&#233;">]>'
            b'<rss version="2.0"><channel><title>&e;</title></channel></rss>',
            XML,
        ),
        (  # the header says us-ascii, the body is UTF-8: feedparser flags that
            '<rss version="2.0"><channel><title>café</title></channel></rss>'.encode(),
            {"Content-Type": "application/xml; charset=us-ascii"},
        ),
        (
            atom(
                '<entry><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                "<p>x</p></div></content></entry>"
            ),
            XML,
        ),
        (atom('<entry><content type="application/octet-stream">eA==</content></entry>'), XML),
        (rss("<item><title>a <b>bold</b></title></item>"), XML),  # markup in a text field
        (rss("<item><item><title>nested</title></item></item>"), XML),
        (rdf(ATOM_NS + RSS10_NS), XML),  # Atom's namespace first: feedparser says atom10
        (rdf(' xmlns:n="http://my.netscape.com/rdf/simple/0.9/"'), XML),  # 0.9 not default
    ],
    ids=[
        "malformed",
        "html",
        "atom03",
        "doctype",
        "charset-override",
        "xhtml",
        "base64",
        "markup-in-title",
        "nested-item",
        "rdf-atom-first",
        "rdf-rss090-prefixed",
    ],
)
def test_fast_path_declines(body: bytes, headers: Any) -> None:
    assert not accepts(body, headers)
    assert difference(body, headers) is None  # and parse_feed still answers (feedparser)
    outcome(body, headers, fast=True)


def test_fast_path_takes_plain_rss_atom_and_rdf() -> None:
    rdf = (
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="https://example.org/">'
        b"<title>R</title><link>https://example.org/</link></channel>"
        b'<item rdf:about="https://example.org/1"><title>one</title>'
        b"<link>https://example.org/1</link></item></rdf:RDF>"
    )
    for body in (
        rss("<item><title>a</title><link>https://example.org/a</link></item>"),
        atom('<entry><id>urn:x:1</id><title>a</title><link href="https://example.org/a"/></entry>'),
        rdf,
    ):
        assert accepts(body)
        assert difference(body) is None
        feed = parse_feed(body, url=URL, headers=XML, fetched_at=NOW)
        assert len(feed.entries) == 1 and feed.bozo_reason is None


# ------------------------------------------- feedparser rules, one by one

CASES = {
    # feedparser's version of an RDF document: the first RSS 1.0 or Atom
    # namespace declared anywhere, or RSS 0.9's as the default namespace.
    "rdf-rss10-then-atom": rdf(RSS10_NS + ATOM_NS,
                               head='<atom:link rel="self" href="https://example.org/feed"/>'),
    "rdf-rss10-on-channel": rdf("", RSS10_NS),
    "rdf-rss090-default": rdf(' xmlns="http://my.netscape.com/rdf/simple/0.9/"'),
    "first-non-empty-title-wins": rss(
        "<item><title></title><title>second</title><dc:title>third</dc:title></item>"
    ),
    "media-group-title-does-not-win": rss(
        "<item><media:group><media:title>deep</media:title></media:group>"
        "<title>top</title></item>"
        "<item><media:group><media:title>only</media:title>"
        "<media:description>media text</media:description></media:group></item>"
    ),
    "description-then-content-encoded": rss(
        "<item><title>a</title><description>short &amp; plain</description>"
        "<content:encoded><![CDATA[<p>long <b>html</b></p>]]></content:encoded></item>"
    ),
    "content-encoded-then-description": rss(
        "<item><title>a</title><content:encoded><![CDATA[<p>long</p>]]></content:encoded>"
        "<description>short</description></item>"
    ),
    "itunes-summary-then-description": rss(
        "<item><title>a</title><itunes:summary>sum</itunes:summary>"
        "<description>desc &lt;b&gt;x&lt;/b&gt;</description></item>"
    ),
    "plain-title-sniffed-as-html": rss(
        "<item><title>a &lt;b&gt;b&lt;/b&gt; &amp;amp; c</title></item>"
    ),
    "guid-permalink-and-not": rss(
        "<item><guid>https://example.org/p/1</guid><title>a</title></item>"
        '<item><guid isPermaLink="false">12345</guid><title>b</title></item>'
        "<item><guid>relative/3</guid><link>https://example.org/3</link></item>"
    ),
    "links-shared-without-guid": rss(
        "<item><title>a</title><link>https://example.org/live</link></item>"
        "<item><title>b</title><link>https://example.org/live</link></item>"
        "<item><title>c</title><link>https://example.org/x?a=1&amp;b=2</link></item>"
    ),
    "atom-link-in-rss": rss(
        '<item><title>a</title><atom:link rel="alternate" type="text/html"'
        ' href="https://example.org/alt"/><atom:link rel="self" href="https://example.org/s"/>'
        "</item>",
        channel='<title>T</title><atom:link rel="self" href="https://example.org/feed"/>'
        "<link>https://example.org/</link><ttl>30</ttl><language>en_GB</language>",
    ),
    "authors": rss(
        "<item><title>a</title><author>jo@example.org (Jo Bloggs)</author></item>"
        "<item><title>b</title><dc:creator>Ann</dc:creator><itunes:author>Bob</itunes:author></item>"
    ),
    "dates": rss(
        "<item><title>a</title><pubDate>Tue, 10 Jun 2025 04:00:00 GMT</pubDate>"
        "<dc:date>2025-06-11T10:00:00+02:00</dc:date></item>"
        "<item><title>b</title><pubDate>not a date</pubDate></item>"
        "<item><title>c</title><pubDate>Tue, 10 Jun 2099 04:00:00 GMT</pubDate></item>"
    ),
    "cp1252-and-double-encoded-utf8": rss(
        "<item><title>smart &#147;quotes&#148; and caf\u00c3\u00a9</title></item>"
    ),
    "image-and-textinput-in-channel": rss(
        "<item><title>a</title></item>",
        channel="<image><url>https://example.org/i.png</url><title>Logo</title>"
        "<link>https://example.org/</link></image><title>Channel</title>"
        "<textInput><title>Search</title><name>q</name><link>https://example.org/s</link>"
        "</textInput><link>https://example.org/home</link>",
    ),
    "image-url-in-item": rss(
        "<item><title></title><image>https://example.org/i.png</image><title>after</title></item>"
        "<item><title>first</title><image>https://example.org/j.png</image><title>2nd</title></item>"
    ),
    "source-in-item": rss(
        '<item><title>a</title><source url="https://other.example/rss">Other</source>'
        "<title>second</title></item>"
    ),
    "wordpress-default-namespace": rss(
        '<item><title>a</title><post-id xmlns="com-wordpress:feed-additions:1">42</post-id></item>'
    ),
    "atom-entries": atom(
        '<entry xml:lang="de"><id>tag:example.org,2025:1</id><title type="html">a &amp;lt;b&amp;gt;</title>'
        '<link rel="alternate" href="/posts/1"/><updated>2025-01-02T03:04:05Z</updated>'
        "<published>2025-01-01T00:00:00Z</published>"
        "<author><name>Ann</name><email>ann@example.org</email></author>"
        '<summary type="html">&lt;p&gt;sum&lt;/p&gt;</summary>'
        '<content type="html">&lt;p&gt;body&lt;/p&gt;</content></entry>'
        "<entry><id>https://example.org/2</id><title>b</title>"
        '<content type="text">plain body</content>'
        "<author><name>Bob</name><uri>https://example.org/bob</uri></author>"
        "<source><title>src</title><id>urn:src</id></source></entry>",
        head='<title type="text">T</title><link href="https://example.org/"/><id>urn:feed</id>',
        attrs=' xml:lang="en-US" xml:base="https://example.org/base/"',
    ),
    "atom-summary-after-content": atom(
        '<entry><id>urn:1</id><title>t</title><content type="html">&lt;b&gt;c&lt;/b&gt;</content>'
        "<summary>s</summary></entry>"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_constructs_agree(name: str) -> None:
    body = CASES[name]
    assert accepts(body), name
    assert difference(body) is None


def test_content_language_header_is_used_the_same_way() -> None:
    body = CASES["authors"]
    headers = {"Content-Type": "application/xml", "Content-Language": "fr_CA"}
    assert accepts(body, headers)
    assert difference(body, headers) is None
    assert parse_feed(body, url=URL, headers=headers, fetched_at=NOW).entries[0].language == "fr-ca"


def test_extract_never_raises_on_odd_input() -> None:
    for data in (b"", b"\x00", b"<rss", b"<rss version='2.0'><channel/></rss>", b"<a:b/>"):
        result = fastparse.extract(data, None)
        assert result is None or result["version"]


# ------------------------------------------------------- HTML to text

FRAGMENTS = [
    "<p>",
    "</p>",
    "<br/>",
    "<br>",
    '<a href="https://x/?a=1&amp;b=2">',
    "</a>",
    "<P CLASS=x>",
    "</P >",
    "<o:p>",
    "</o:p>",
    "<!-- more -->",
    "<!--",
    "-->",
    "<!---->",
    "<script>",
    "</script>",
    "<style>p{}</style>",
    "<iframe src=x>",
    "</iframe>",
    "<img src='a'/>",
    '<div\ndata-x="1">',
    "&amp;",
    "&nbsp;",
    "&#8217;",
    "&#x41;",
    "&lt",
    "&",
    "<",
    ">",
    "</",
    "</ p>",
    "<?x?>",
    "<!DOCTYPE html>",
    "text",
    " ",
    "\n",
    "caf\u00e9",
    "<li>",
    "<td>",
    "<b>",
    "</b>",
    "a<b",
    "<template>",
    "</template>",
    "<textarea>",
    "<title>",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join))
def test_simple_html_to_text_agrees_with_html_parser(html: str) -> None:
    fast = _simple_html_to_text(html)
    assert fast is None or fast == _parsed_html_to_text(html)


def test_simple_html_to_text_agrees_on_the_fixtures() -> None:
    checked = 0
    for path in LOCAL_FILES:
        result = fastparse.extract(path.read_bytes(), None)
        if result is None:
            continue
        for entry in result["entries"]:
            texts = [entry.get("summary")] + [c.get("value") for c in entry.get("content", ())]
            for html in texts:
                if isinstance(html, str) and (fast := _simple_html_to_text(html)) is not None:
                    assert fast == _parsed_html_to_text(html), path
                    checked += 1
    assert checked > 100


@pytest.mark.slow
def test_simple_html_to_text_agrees_on_the_shared_corpus() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED} (set MONITOR_SHARED_DATA)")
    checked, failures = 0, []
    for path in corpus(SHARED / "real-feeds", SHARED / "feedparser-tests"):
        result = fastparse.extract(path.read_bytes(), None)
        if result is None:
            continue
        for entry in result["entries"]:
            contents = [c.get("value") for c in entry.get("content", ()) if isinstance(c, dict)]
            for html in [entry.get("summary"), entry.get("title"), *contents]:
                if isinstance(html, str) and (fast := _simple_html_to_text(html)) is not None:
                    checked += 1
                    if fast != _parsed_html_to_text(html):
                        failures.append(f"{path.relative_to(SHARED)}: {html[:200]!r}")
    assert failures == []
    assert checked > 5000
