"""The fast path of monitor.parse: lxml plus a replay of feedparser's own rules.

Owns one question: for a well-formed RSS 2.0 / 0.9x, RSS 1.0 (RDF) or Atom 1.0
document, what raw records would feedparser's strict (expat) parser build for
the keys monitor.parse reads (title, summary, content, link, id, dates, author,
languages; feed title, link, ttl, language)? lxml builds the tree in C; a small
replay walks it in document order and applies feedparser 6's element handlers
literally (same element names, depth rules, first-title and summary/content
precedence, text clean-ups), reusing feedparser's own helpers for dates and
the HTML sniffing (URL joining is its _urljoin without the re.sub template;
tests/test_parse_reference.py checks the two agree). It answers None
("declined") for anything it does not model: not well-formed, DOCTYPEs, unknown roots, xml:base, inline
XHTML or base64 content, nested items, unknown feedparser handlers, elements in
an undeclared default namespace. monitor.parse then runs feedparser itself.
tests/test_fastparse.py holds the proof: on every accepted document of the
corpus both paths give the same ParsedFeed.

The caller has already decoded the body to UTF-8 and passed it through the
entity guard; lxml is still told never to load a DTD, resolve an entity or
touch the network. It must not build Entries (monitor.parse.entries) nor
decide when it is tried (monitor.parse.registry).
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import feedparser
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urifixer, make_safe_absolute_uri
from lxml import etree

__all__ = ["Declined", "extract"]

_MAX_DEPTH = 64
# The replay copies feedparser 6.0's handlers; another release may change a
# rule, so it runs only against the series tests/test_fastparse.py checked.
_FEEDPARSER_SERIES = str(getattr(feedparser, "__version__", "")).startswith("6.0.")


class Declined(Exception):
    """The document uses something the replay does not model."""


_NAMESPACES = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
_ATOM = "http://www.w3.org/2005/Atom"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RSS10 = "http://purl.org/rss/1.0/"
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_VERSION_NAMESPACES = frozenset({_ATOM.lower(), _RSS10, _RSS090})
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_HTML_TYPES = frozenset(_FeedParserMixin.html_types)
_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html
_map_type: Callable[[str], str] = _FeedParserMixin.map_content_type
_AUTHOR_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# The e-mail rule reads only this much of an author text: its regex is
# quadratic in a run of name characters (60,000 letters took 13 s), and
# feedparser's own copy is capped to the same length (monitor.parse.feedparser).
AUTHOR_SCAN = 256
_LINK_REF = re.compile("&([A-Za-z0-9_]+);")
# The C1 controls feedparser reads as cp1252 (a search per character is
# several times faster than a regex character class over long content).
_C1_CONTROLS = tuple(map(chr, range(0x80, 0xA0)))
_urifixer_match: Callable[[str], re.Match[str] | None] = _urifixer.match

# Handlers that never touch a key monitor.parse reads: their elements are
# walked (children may matter) but need no replay. "Content" ones swallow
# child elements as inline markup in feedparser, so they must hold text only.
_HARMLESS = frozenset(
    [
        "category",
        "cc_license",
        "cloud",
        "creativecommons_license",
        "dc_publisher",
        "dc_subject",
        "dcterms_valid",
        "enclosure",
        "expirationdate",
        "generator",
        "georss_box",
        "georss_line",
        "georss_point",
        "georss_polygon",
        "height",
        "itunes_block",
        "itunes_category",
        "itunes_explicit",
        "itunes_image",
        "itunes_keywords",
        "itunes_link",
        "keywords",
        "media_category",
        "media_content",
        "media_credit",
        "media_group",
        "media_keywords",
        "media_license",
        "media_player",
        "media_rating",
        "media_restriction",
        "media_thumbnail",
        "newlocation",
        "psc_chapter",
        "psc_chapters",
        "tags",
        "webmaster",
        "where",
        "width",
    ]
)
_HARMLESS_CONTENT = frozenset(
    [
        "copyright",
        "dc_rights",
        "feedburner_browserfriendly",
        "info",
        "itunes_subtitle",
        "rights",
        "subtitle",
        "tagline",
    ]
)
# Only an _end_ handler: with attributes feedparser pushes nothing and the end
# handler pops a frame that is not there.
_END_ONLY = frozenset(
    ["itunes_block", "itunes_explicit", "itunes_keywords", "media_keywords", "dc_subject"]
)
_ALL_HANDLERS = frozenset(
    a.split("_", 2)[2].lower() for a in dir(_FeedParserMixin) if a.startswith(("_start_", "_end_"))
)
# Unhandled element names feedparser would store under a key that we read.
_RESERVED_GENERIC = frozenset(
    [
        "authors",
        "author_detail",
        "contributors",
        "image",
        "textinput",
        "links",
        "tags",
        "title_detail",
        "summary_detail",
        "published_parsed",
        "updated_parsed",
        "created_parsed",
    ]
)

# First parts of the handler and reserved names: prefixes that could name one.
_HANDLER_PREFIXES = frozenset(
    name.split("_", 1)[0] for name in _ALL_HANDLERS | _RESERVED_GENERIC if "_" in name
)

_TITLE = frozenset({"title", "dc_title", "media_title"})
_DESCRIPTION = frozenset({"description", "dc_description", "media_description"})
_SUMMARY = frozenset({"summary", "itunes_summary"})
_CONTENT_HTML = frozenset({"content_encoded", "fullitem"})
_AUTHOR = frozenset({"author", "managingeditor", "dc_author", "dc_creator", "itunes_author"})
_NAME = frozenset({"name", "itunes_name"})
_EMAIL = frozenset({"email", "itunes_email"})
_URL = frozenset({"url", "homepage", "uri"})
_DATES = {
    **dict.fromkeys(("published", "issued", "pubdate", "dcterms_issued"), "published"),
    **dict.fromkeys(
        ("updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"), "updated"
    ),
    **dict.fromkeys(("created", "dcterms_created"), "created"),
}
_LANGUAGE = frozenset({"language", "dc_language"})
_GUID = frozenset({"guid", "id"})
_ITEM = frozenset({"item", "entry"})
_CONTAINERS = frozenset({"channel", "feed"})
_DECLINED = frozenset({"body", "xhtml_body"})

_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers must not be shared between threads.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            recover=False,
            remove_comments=False,
            remove_pis=False,
            strip_cdata=True,
        )
        _local.parser = parser
    return parser


def extract(data: bytes, language: str | None) -> dict[str, Any] | None:
    """feedparser's result (feed, entries, version) for the keys we read, or
    None when the fast path declines. ``data`` is UTF-8; ``language`` is the
    Content-Language header, as monitor.parse hands it to feedparser."""
    if not _FEEDPARSER_SERIES:
        return None
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError:
        return None
    try:
        _check_namespaces(data, root)
        version = _version(root)
        replay = _Replay(version, language)
        replay.element(root, 1, root.tag)
    except Declined:
        return None
    return {"bozo": False, "version": version, "feed": replay.feed, "entries": replay.entries}


_XMLNS = re.compile(rb"xmlns(?::([^\s=/>]+))?\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_XLINK = "http://www.w3.org/1999/xlink"


def _known_prefix(uri: str) -> str | None:
    lower = uri.lower()
    if "backend.userland.com/rss" in lower:
        return ""
    return _NAMESPACES.get(lower)


def _check_namespaces(data: bytes, root: Any) -> None:
    """feedparser names an element of an unknown namespace after the first
    prefix bound to that namespace anywhere before it, in one table for the
    whole document; el.prefix gives the same name when every prefix means one
    namespace and no unknown namespace has two prefixes that could name a
    handler. Anything else (and XLink, which feedparser turns into attributes)
    is declined. The declarations are read with a regex first, which also sees
    the ones quoted in CDATA; only when that finds trouble are the real ones
    taken from the tree."""
    try:
        _namespace_rules(
            ((m.group(1) or b"").decode(), m.group(2) if m.group(2) is not None else m.group(3))
            for m in _XMLNS.finditer(data)
        )
    except Declined:
        _namespace_rules(_tree_declarations(root))


def _tree_declarations(root: Any) -> Iterator[tuple[str, bytes]]:
    for el in root.iter(etree.Element):
        parent = el.getparent()
        inherited = parent.nsmap if parent is not None else {}
        for prefix, uri in el.nsmap.items():
            if inherited.get(prefix) != uri:
                yield prefix or "", uri.encode()


def _namespace_rules(declarations: Iterable[tuple[str, bytes]]) -> None:
    bound: dict[str, str] = {}
    unknown: dict[str, set[str]] = {}
    std_used: set[str] = set()
    for prefix, raw in declarations:
        if b"&" in raw:
            raise Declined("namespace URI with a reference")
        uri = raw.decode()
        # The default namespace never names anything in that table.
        if uri == _XLINK or (prefix and bound.setdefault(prefix, uri) != uri):
            raise Declined("prefix bound to two namespaces, or XLink")
        std = _known_prefix(uri)
        if std is None:
            unknown.setdefault(uri, set()).add(prefix)
        elif std:
            std_used.add(std)
    for prefixes in unknown.values():
        if std_used & prefixes:
            raise Declined("prefix shared by a known and an unknown namespace")
        if len(prefixes) > 1 and any(not p or p.lower() in _HANDLER_PREFIXES for p in prefixes):
            raise Declined("namespace bound to two prefixes")


def _version(root: Any) -> str:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.xml_version != "1.0":
        raise Declined("DOCTYPE or XML 1.1")
    declared = [uri.lower() for uri in root.nsmap.values()]
    tag = root.tag
    if tag == "rss":
        value = root.get("version", "")
        return _RSS_VERSIONS.get(value) or ("rss20" if value.startswith("2.") else "rss")
    # feedparser takes the version from the first known namespace declared.
    known = [uri for uri in declared if uri in _VERSION_NAMESPACES]
    if tag == f"{{{_ATOM}}}feed" and known == [_ATOM.lower()]:
        return "atom10"
    if tag == f"{{{_RDF}}}RDF":
        first = _first_version_namespace(root)
        if first == _RSS10:
            return "rss10"
        if first == _RSS090:
            return "rss090"
    raise Declined("root")


def _first_version_namespace(root: Any) -> str | None:
    """The namespace feedparser's track_namespace takes an RDF document's
    version from: the first declaration, in document order, of RSS 1.0's or
    Atom's namespace, or of RSS 0.9's as the default one. It may come after
    the root (RSS 1.0's on <channel>): the version is then "" until there,
    which the replay's handlers read as it reads rss10 or rss090, not Atom."""
    for prefix, raw in _tree_declarations(root):
        uri = raw.decode().lower()
        if uri in (_RSS10, _ATOM.lower()) or (uri == _RSS090 and not prefix):
            return uri
    return None


_NAME_CACHE: dict[tuple[str, str | None], tuple[str, bool]] = {}


def _fp_name(el: Any, tag: str) -> tuple[str, bool]:
    """The handler key feedparser derives from an element's namespace and
    name (``tag`` is el.tag), and whether that name has a prefix."""
    prefix: str | None = el.prefix if tag[0] == "{" else None  # none without a namespace
    cached = _NAME_CACHE.get((tag, prefix))
    if cached is not None:
        return cached
    if tag[0] == "{":
        namespace, local = tag[1:].split("}", 1)
    else:
        namespace, local = "", tag
    lower = namespace.lower()
    if "backend.userland.com/rss" in lower:
        lower = "http://backend.userland.com/rss"
    std = _NAMESPACES.get(lower)
    cacheable = std is not None or bool(prefix)
    if std is None:
        # feedparser names it by the first prefix bound to its namespace, if any
        std = prefix or ""
        if not prefix and any(p and uri == namespace for p, uri in el.nsmap.items()):
            raise Declined("default namespace also bound to a prefix")
    result = ((f"{std}_{local}" if std else local).lower(), bool(std))
    if cacheable and len(_NAME_CACHE) < 4096:
        _NAME_CACHE[(tag, prefix)] = result
    return result


def _fp_attrs(el: Any) -> dict[str, str]:
    """Attributes as feedparser's strict parser names them (lower-cased,
    known namespaces by their standard prefix, then the qualified names)."""
    attrs: dict[str, str] = {}
    items: list[tuple[str, str]] = el.items()
    if not items:
        return attrs
    qualified: list[tuple[str, str]] = []
    for key, value in items:
        if key[0] == "{":
            namespace, local = key[1:].split("}", 1)
            std = _NAMESPACES.get(namespace.lower(), "")
            attrs[(f"{std}:{local}" if std else local).lower()] = value
            prefix = _attr_prefix(el, namespace)
            qualified.append((f"{prefix}:{local}" if prefix else local, value))
        else:
            attrs[key.lower()] = value
            qualified.append((key, value))
    for qname, value in qualified:
        attrs[qname.lower()] = value
    for key in ("rel", "type"):
        if key in attrs:
            attrs[key] = attrs[key].lower()
    return attrs


def _attr_prefix(el: Any, namespace: str) -> str | None:
    if namespace == "http://www.w3.org/XML/1998/namespace":
        return "xml"
    for prefix, uri in el.nsmap.items():
        if uri == namespace and prefix:
            return str(prefix)
    raise Declined("attribute namespace without a prefix")


def _urljoin(base: str, uri: str) -> str:
    """feedparser.urls._urljoin, without the cost of its re.sub template:
    the substitution only drops extra slashes after "scheme://"."""
    match = _urifixer_match(uri)
    if match is not None and match.group(2):
        uri = match.group(1) + uri[match.end(2) :]
    if not base:
        return uri  # what urljoin returns for an empty base
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


_SAFE_ABSOLUTE: dict[tuple[str, str], str] = {}


def _safe_absolute(base: str, rel: str) -> str:
    """make_safe_absolute_uri, remembered: every element of a document with
    an xml:base asks it again for the same pair."""
    key = (base, rel)
    uri = _SAFE_ABSOLUTE.get(key)
    if uri is None:
        uri = make_safe_absolute_uri(base, rel)
        if len(_SAFE_ABSOLUTE) >= 4096:
            _SAFE_ABSOLUTE.clear()
        _SAFE_ABSOLUTE[key] = uri
    return uri


def _text(el: Any) -> str:
    """Character data directly inside a leaf element (comments and PIs skipped)."""
    pieces = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) or not isinstance(
            child, etree._Comment | etree._ProcessingInstruction
        ):
            raise Declined("markup inside a text element")
        pieces.append(child.tail or "")
    return "".join(pieces)


def _own_text(el: Any) -> str:
    """Character data of an element with children: its text and their tails."""
    pieces = [el.text or ""]
    pieces.extend(child.tail or "" for child in el)
    return "".join(pieces)


class _Replay:
    """feedparser's _FeedParserMixin state machine, reduced to what we read."""

    def __init__(self, version: str, language: str | None) -> None:
        self.atom = version.startswith("atom")
        self.feed: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.sourcedata: dict[str, Any] = {}
        self.depth_map: dict[str, int] = {}
        self.lang = language or None
        self.langstack: list[str | None] = []
        self.baseuri = ""
        self.basestack: list[str] = []
        self.infeed = self.inentry = self.insource = 0
        self.inimage = self.intextinput = 0
        self.inauthor = self.incontributor = self.inpublisher = 0
        self.has_content = 0
        self.guidislink = False
        self.title_depth = -1
        if self.lang:
            self.feed["language"] = self.lang.replace("_", "-")

    # ------------------------------------------------------------ walking

    def element(self, el: Any, depth: int, tag: str) -> None:
        if depth > _MAX_DEPTH:
            raise Declined("too deep")
        name, prefixed = _fp_name(el, tag)
        attrs = _fp_attrs(el)
        self._start_common(name, prefixed, attrs)
        self._dispatch(el, name, attrs, depth)
        self.basestack.pop()
        if self.basestack and self.basestack[-1]:
            self.baseuri = self.basestack[-1]
        self.langstack.pop()
        if self.langstack:
            self.lang = self.langstack[-1]

    def children(self, el: Any, depth: int) -> None:
        for child in el:
            tag = child.tag
            if isinstance(tag, str):
                self.element(child, depth + 1, tag)
            elif not isinstance(child, etree._Comment | etree._ProcessingInstruction):
                raise Declined("entity reference")

    def _start_common(self, name: str, prefixed: bool, attrs: dict[str, str]) -> None:
        if attrs:
            base = attrs.get("xml:base", attrs.get("base")) or self.baseuri
            lang = attrs.get("xml:lang", attrs.get("lang"))
            if lang == "":
                lang = None
            elif lang is None:
                lang = self.lang
        else:
            base, lang = self.baseuri, self.lang
        if self.baseuri:
            self.baseuri = _safe_absolute(self.baseuri, base) or self.baseuri
        elif base:
            self.baseuri = _urljoin("", base)
        if lang and name in ("feed", "rss"):
            self.feed["language"] = lang.replace("_", "-")
        self.lang = lang
        self.basestack.append(self.baseuri)
        self.langstack.append(lang)
        if not prefixed:
            # feedparser's hack for empty image/textinput elements
            if name not in ("title", "link", "description", "name"):
                self.intextinput = 0
            if name not in ("title", "link", "description", "url", "href", "width", "height"):
                self.inimage = 0

    def _dispatch(self, el: Any, name: str, attrs: dict[str, str], depth: int) -> None:
        if name in _TITLE:
            self._title(el, name, attrs, depth)
        elif name in _DESCRIPTION or name == "abstract" or name in _SUMMARY:
            self._summary(el, name, attrs, depth)
        elif name == "content" or name in _CONTENT_HTML:
            self.has_content = 1
            default = "text/plain" if name == "content" else "text/html"
            self._content(el, attrs, depth, default)
        elif name == "link":
            self._link(el, attrs, depth)
        elif name in _GUID:
            self._guid(el, attrs, depth)
        elif name in _DATES:
            key = _DATES[name]
            value = self._pop(key, _text(el), depth, expecting=True)
            self._context()[f"{key}_parsed"] = _parse_date(value)
        elif name in _AUTHOR:
            self._author(el, depth)
        elif name in _NAME or name in _EMAIL or name in _URL:
            self._author_part(el, name, depth)
        elif name in _LANGUAGE:
            self._pop("language", _text(el), depth, expecting=True)
        elif name in _ITEM:
            self._item(el, attrs, depth)
        elif name == "rss":
            if depth != 1:
                raise Declined("nested rss")
            self.children(el, depth)
        elif name in _CONTAINERS:
            self._container(el, attrs, depth)
        elif name in ("image", "textinput"):
            self._image(el, name, depth)
        elif name == "source":
            self._source(el, attrs, depth)
        elif name in ("contributor", "dc_contributor", "itunes_owner"):
            self._people(el, name, depth)
        elif name in _HARMLESS_CONTENT:
            _text(el)
        elif name in _HARMLESS:
            if name in _END_ONLY and attrs:
                raise Declined("end-only handler with attributes")
            self.children(el, depth)
        elif name in _DECLINED or name in _ALL_HANDLERS:
            raise Declined(f"handler {name}")
        else:
            self._generic(el, name, attrs, depth)

    # --------------------------------------------------------- feedparser

    def _context(self) -> dict[str, Any]:
        if self.insource:
            return self.sourcedata
        if self.inimage and "image" in self.feed:
            image: dict[str, Any] = self.feed["image"]
            return image
        if self.intextinput:
            textinput: dict[str, Any] = self.feed["textinput"]
            return textinput
        if self.inentry:
            return self.entries[-1]
        return self.feed

    def _content_params(self, attrs: dict[str, str], default: str) -> dict[str, Any]:
        if self.lang:
            self.lang = self.lang.replace("_", "-")
        ctype = _map_type(attrs.get("type", default))
        if attrs.get("mode", "") == "base64" or ctype == "application/xhtml+xml":
            raise Declined("base64 or XHTML content")
        if not (ctype.startswith("text/") or ctype.endswith(("+xml", "/xml"))):
            raise Declined("base64 content")
        return {"type": ctype, "language": self.lang, "base": self.baseuri}

    def _pop(
        self,
        element: str,
        raw: str,
        depth: int,
        *,
        expecting: bool,
        params: dict[str, Any] | None = None,
    ) -> str:
        """feedparser's pop(): clean the text, then store it where it belongs."""
        output = raw.strip()
        if not expecting:
            return output
        if element in _RELATIVE and output and (element != "id" or self.guidislink):
            output = _urljoin(self.baseuri, output)
        if (
            params is not None
            and not self.atom
            and params["type"] == "text/plain"
            # looks_like_html wants a "</" or a "&" before anything else
            and ("</" in output or "&" in output)
            and _looks_like_html(output)
        ):
            params["type"] = "text/html"
        # Both steps leave ASCII text as it is.
        if not output.isascii():
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                output = output.encode("iso-8859-1").decode("utf-8")
            if any(c in output for c in _C1_CONTROLS):
                output = output.translate(_cp1252)
        if element == "title" and -1 < self.title_depth <= depth:
            return output
        if self.inentry and not self.insource:
            self._store_entry(element, output, depth, params)
        elif self.infeed or self.insource:
            context = self._context()
            if element == "description":
                element = "subtitle"
            context[element] = output
            if element == "link":
                output = _LINK_REF.sub(r"&\g<1>", output)
                context[element] = output
            elif params is not None:
                context[f"{element}_detail"] = {**params, "value": output}
        return output

    def _store_entry(
        self, element: str, output: str, depth: int, params: dict[str, Any] | None
    ) -> None:
        entry = self.entries[-1]
        if element == "content":
            entry.setdefault("content", []).append({**(params or {}), "value": output})
        elif element == "link":
            if not self.inimage:
                output = output.replace("&amp;", "&")
                entry["link"] = _LINK_REF.sub(r"&\g<1>", output)
        else:
            if element == "description":
                element = "summary"
            old = self.depth_map.get(element)
            if old is None or depth <= old:
                self.depth_map[element] = depth
                entry[element] = output
            if params is not None:
                entry[f"{element}_detail"] = {**params, "value": output}

    def _save(self, key: str, value: Any) -> None:
        self._context().setdefault(key, value)

    def _title(self, el: Any, name: str, attrs: dict[str, str], depth: int) -> None:
        params = self._content_params(attrs, "text/plain")
        expecting = bool(self.infeed or self.inentry or self.insource)
        value = self._pop("title", _text(el), depth, expecting=expecting, params=params)
        if value and name != "media_title":
            self.title_depth = depth

    def _summary(self, el: Any, name: str, attrs: dict[str, str], depth: int) -> None:
        if name != "abstract" and "summary" in self._context() and not self.has_content:
            self.has_content = 1
            self._content(el, attrs, depth, "text/plain")
            return
        if name in _SUMMARY:
            params = self._content_params(attrs, "text/plain")
            self._pop("summary", _text(el), depth, expecting=True, params=params)
            return
        params = self._content_params(attrs, "text/html" if name != "abstract" else "text/plain")
        expecting = bool(self.infeed or self.inentry or self.insource)
        self._pop("description", _text(el), depth, expecting=expecting, params=params)

    def _content(self, el: Any, attrs: dict[str, str], depth: int, default: str) -> None:
        params = self._content_params(attrs, default)
        if attrs.get("src"):
            params["src"] = attrs["src"]
        copy_to_summary = _map_type(params["type"]) in {"text/plain"} | _HTML_TYPES
        value = self._pop("content", _text(el), depth, expecting=True, params=params)
        if copy_to_summary:
            self._save("summary", value)

    def _link(self, el: Any, attrs: dict[str, str], depth: int) -> None:
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        context = self._context()
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs.pop("url", None)
            attrs.pop("uri", None)
            attrs["href"] = href
        if "href" in attrs:
            if len(el):
                raise Declined("link with children")
            resolved = _urljoin(self.baseuri, attrs["href"])
            if attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _HTML_TYPES:
                context["link"] = resolved
            return
        expecting = bool(self.infeed or self.inentry or self.insource)
        self._pop("link", _text(el), depth, expecting=expecting)

    def _guid(self, el: Any, attrs: dict[str, str], depth: int) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        value = self._pop("id", _text(el), depth, expecting=True)
        if self.guidislink:
            self._save("link", value)

    def _author(self, el: Any, depth: int) -> None:
        if self.inauthor or self.incontributor or self.inpublisher:
            raise Declined("nested people")
        self.inauthor = 1
        self._context().setdefault("authors", []).append({})
        self.children(el, depth)
        self._pop("author", _own_text(el), depth, expecting=True)
        self.inauthor = 0
        self._sync_author()

    def _author_part(self, el: Any, name: str, depth: int) -> None:
        if name in _URL:
            value = self._pop("href", _text(el), depth, expecting=True)
            if self.inauthor:
                self._save_author("href", value)
            return
        key = "name" if name in _NAME else "email"
        value = self._pop(key, _text(el), depth, expecting=False)
        self._end_name_or_email(key, value)

    def _end_name_or_email(self, key: str, value: str) -> None:
        if self.inpublisher:
            self._save_author(key, value, "publisher")
        elif self.inauthor:
            self._save_author(key, value)
        elif key == "name" and not self.incontributor and self.intextinput:
            self._context()["name"] = value

    def _save_author(self, key: str, value: str, prefix: str = "author") -> None:
        context = self._context()
        context.setdefault(f"{prefix}_detail", {})[key] = value
        self._sync_author()
        context.setdefault("authors", [{}])[-1][key] = value

    def _sync_author(self) -> None:
        context = self._context()
        authors = context.get("authors")
        if authors == []:
            raise Declined("empty authors")
        detail: dict[str, Any] = authors[-1] if authors else {}
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context["author"] = f"{name} ({email})"
            elif name:
                context["author"] = name
            elif email:
                context["author"] = email
            return
        author = context.get("author")
        if not author:
            return
        author = author[:AUTHOR_SCAN]
        email = None
        match = _AUTHOR_EMAIL.search(author)
        if match:
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault("author_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def _people(self, el: Any, name: str, depth: int) -> None:
        if self.inauthor or self.incontributor or self.inpublisher:
            raise Declined("nested people")
        if name == "itunes_owner":
            self.inpublisher = 1
            self.children(el, depth)
            self.inpublisher = 0
            return
        self.incontributor = 1
        if name == "dc_contributor":
            self._end_name_or_email("name", _text(el).strip())
        else:
            self.children(el, depth)
        self.incontributor = 0

    def _item(self, el: Any, attrs: dict[str, str], depth: int) -> None:
        if self.inentry or self.insource or self.inimage or self.intextinput:
            raise Declined("nested item")
        if "lastmod" in attrs or "href" in attrs:
            raise Declined("nested or CDF item")
        self.entries.append({})
        self.depth_map = {}
        self.inentry = 1
        self.guidislink = False
        self.title_depth = -1
        about = attrs.get("rdf:about")
        if about:
            self._context()["id"] = about
        self.children(el, depth)
        self.inentry = 0
        self.has_content = 0

    def _container(self, el: Any, attrs: dict[str, str], depth: int) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise Declined("CDF channel")
        self.infeed = 1
        self.children(el, depth)
        self.infeed = 0

    def _image(self, el: Any, name: str, depth: int) -> None:
        if self.inentry:
            if name != "image":
                raise Declined("textinput inside an item")
            _text(el)  # an item's <image>URL</image> only resets the first-title rule
            self.title_depth = -1
            return
        context = self._context()
        if name == "image":
            context.setdefault("image", {})
            self.inimage = 1
        else:
            context.setdefault("textinput", {})
            self.intextinput = 1
        self.title_depth = -1
        self.children(el, depth)
        if name == "image":
            self.inimage = 0
        else:
            self.intextinput = 0

    def _source(self, el: Any, attrs: dict[str, str], depth: int) -> None:
        if self.insource:
            raise Declined("nested source")
        if "url" in attrs:
            self.sourcedata["href"] = attrs["url"]
        self.insource = 1
        self.title_depth = -1
        self.children(el, depth)
        self.insource = 0
        value = self._pop("source", _own_text(el), depth, expecting=True)
        if value:
            self.sourcedata["title"] = value
        self._context()["source"] = dict(self.sourcedata)
        self.sourcedata.clear()

    def _generic(self, el: Any, name: str, attrs: dict[str, str], depth: int) -> None:
        if name in _RESERVED_GENERIC:
            raise Declined(f"element named {name}")
        if name == "ttl":
            if attrs:
                self._context()["ttl"] = attrs
            else:
                self._pop("ttl", _text(el), depth, expecting=True)
            return
        self.children(el, depth)
