"""Edits feeds.yaml in place, keeping comments: feeds are added at the end of the
``feeds:`` list and removed with their own lines; every other byte stays as it was.

The file is spliced as text at the positions a YAML parse reports, never
re-dumped: a round trip through a YAML library (ruamel.yaml included)
re-indents mappings, re-spaces ``key:   value`` and ``[a,   b]``, and puts a
new list item after the comment that heads the next section. Before the file
is replaced, the edited text must load with ``config.load_config`` and mean
exactly the old configuration plus (or minus) the feeds in question; on any
error the original file is untouched. The new file is written beside the old
one and moved over it with ``os.replace``, so a reader sees one or the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from monitor.config import Config, load_config, parse_config
from monitor.errors import ConfigError

# YAML's line breaks (PyYAML counts NEL and the Unicode separators too).
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_SPACE = " \t\r\n\x85\u2028\u2029"
# What YAML lets stand unescaped in a double-quoted scalar on one line.
_PRINTABLE = re.compile(r"[\x09\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_KEY_ORDER = ("id", "name", "url", "interval", "language", "tags")
_DEFAULT_DASH = 2  # "  - id: ..." as in the shipped feeds.yaml
_DEFAULT_OFFSET = 2


@dataclass(frozen=True)
class FeedSpec:
    """One feed to write, as feeds.yaml spells it (``interval`` as text: "30m")."""

    id: str
    url: str
    tags: tuple[str, ...] = ()
    name: str | None = None
    interval: str | None = None
    language: str | None = None


def add_feeds(path: str | os.PathLike[str], specs: Sequence[FeedSpec]) -> Config:
    """Append ``specs`` to the ``feeds:`` list of the file at ``path``; the new config."""
    target, text = _read(path)
    old = parse_config(text, str(path))
    new_text = _with_feeds_added(text, specs, str(path))

    def same(new: Config) -> bool:
        added = new.feeds[len(old.feeds):]
        return (new.feeds[:len(old.feeds)] == old.feeds
                and [(f.id, f.url) for f in added] == [(s.id, s.url.strip()) for s in specs])

    return _replace(target, str(path), old, new_text, same)


def remove_feeds(path: str | os.PathLike[str], ids: Sequence[str]) -> Config:
    """Remove the feeds ``ids`` (each with its own lines) from the file at ``path``."""
    target, text = _read(path)
    old = parse_config(text, str(path))
    for feed_id in ids:
        old.feed(feed_id)  # ConfigError naming an unknown id
    new_text = _with_feeds_removed(text, set(ids), str(path))
    kept = tuple(f for f in old.feeds if f.id not in ids)
    return _replace(target, str(path), old, new_text, lambda new: new.feeds == kept)


# --- reading and replacing -----------------------------------------------------------------

def _read(path: str | os.PathLike[str]) -> tuple[Path, str]:
    # The real file behind a symlink is the one replaced, so the link survives.
    target = Path(path).resolve()
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc}", file=str(path)) from None
    try:
        # Decoded without newline translation: CRLF files stay CRLF.
        return target, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config: {exc}", file=str(path)) from None


def _replace(target: Path, shown: str, old: Config, new_text: str,
             same_feeds: Callable[[Config], bool],
             same_rest: Callable[[Config, Config], bool] | None = None) -> Config:
    same_rest = same_rest or _same_rest
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        try:
            new = load_config(tmp)
        except ConfigError as exc:
            raise ConfigError(f"the edited file would not load ({exc.message}); "
                              f"{shown} is left as it was",
                              **{**exc.context, "file": shown}) from None
        if not (same_feeds(new) and same_rest(old, new)):
            raise ConfigError("the edit would change more than the feeds in question "
                              f"(an unusual layout?); {shown} is left as it was: edit it by hand",
                              file=shown)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dataclasses.replace(new, path=shown)


def _same_rest(old: Config, new: Config) -> bool:
    return (old.settings == new.settings and dict(old.terms) == dict(new.terms)
            and dict(old.entities) == dict(new.entities)
            and old.topics == new.topics and old.digests == new.digests)


# --- locating the feeds list ---------------------------------------------------------------

def _compose(text: str, path: str) -> yaml.Node | None:
    # The pure-Python composer: its marks index characters of ``text`` exactly.
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=path) from None


def _feeds_entry(root: yaml.Node | None, path: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The ``feeds`` key and value nodes, or None when the file has no such key."""
    if root is None:
        return None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ConfigError("the top level is not a block mapping; edit the file by hand",
                          file=path)
    for key, value in root.value:
        if key.value == "feeds":
            return key, value
    return None


def _unsupported(path: str) -> ConfigError:
    return ConfigError("feeds is written as a flow list ([...]); write it as a block list "
                       "('- id: ...' lines) to edit it with this command", file=path,
                       field="feeds")


def _line_start(text: str, index: int) -> int:
    start = index
    while start > 0 and not _BREAK.match(text, start - 1):
        start -= 1
    return start


def _line_end(text: str, index: int) -> int:
    """The index just after the line break ending the line holding ``index``
    (the text's end when that line has none)."""
    m = _BREAK.search(text, index)
    return m.end() if m else len(text)


def _content_end(text: str, node: yaml.Node) -> int:
    """Index just after the last character of ``node``'s own text: a block
    collection's end mark lies past the comments and blank lines after it."""
    while (isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style
           and node.value):
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = int(node.end_mark.index)
    while end > 0 and text[end - 1] in _SPACE:
        end -= 1
    return end


def _dash(text: str, item: yaml.Node, path: str) -> int:
    """Index of the '-' that opens a block-list ``item``."""
    i = int(item.start_mark.index) - 1
    while i >= 0 and text[i] in _SPACE:
        i -= 1
    if i < 0 or text[i] != "-" or text[_line_start(text, i):i].strip(" "):
        raise ConfigError("cannot find the '-' of a feed in the feeds list; edit the file by hand",
                          file=path, line=item.start_mark.line + 1)
    return i


# --- adding --------------------------------------------------------------------------------

def _with_feeds_added(text: str, specs: Sequence[FeedSpec], path: str) -> str:
    nl = _newline(text)
    entry = _feeds_entry(_compose(text, path), path)
    if entry is None:
        body = "".join(_render(s, _DEFAULT_DASH, _DEFAULT_OFFSET, nl) for s in specs)
        return _ensure_break(text, nl) + f"feeds:{nl}" + body
    key, value = entry
    if isinstance(value, yaml.SequenceNode) and value.value:
        if value.flow_style:
            raise _unsupported(path)
        dash_col, offset = _layout(text, value.value[0], path)
        at = _line_end(text, _content_end(text, value.value[-1]))
        head = _ensure_break(text[:at], nl)
        body = "".join(_render(s, dash_col, offset, nl) for s in specs)
        return head + body + text[at:]
    if not _is_empty(value):
        raise _unsupported(path)
    # "feeds: []", "feeds: ~" or a bare "feeds:": the empty value gives way to
    # a block list under the key.
    start, end = int(value.start_mark.index), int(value.end_mark.index)
    while start > 0 and text[start - 1] in " \t":
        start -= 1
    text = text[:start] + text[end:]
    at = _line_end(text, start)
    indent = int(key.start_mark.column) + _DEFAULT_DASH
    body = "".join(_render(s, indent, _DEFAULT_OFFSET, nl) for s in specs)
    return _ensure_break(text[:at], nl) + body + text[at:]


def _is_empty(value: yaml.Node) -> bool:
    if isinstance(value, yaml.SequenceNode):
        return not value.value
    return isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null"


def _layout(text: str, first: yaml.Node, path: str) -> tuple[int, int]:
    """The column of the list's dashes and how far past the dash keys start,
    as the first feed has them."""
    dash = _dash(text, first, path)
    dash_col = dash - _line_start(text, dash)
    offset = _DEFAULT_OFFSET
    if isinstance(first, yaml.MappingNode) and not first.flow_style \
            and _line_start(text, int(first.start_mark.index)) == _line_start(text, dash):
        offset = int(first.start_mark.index) - dash
    return dash_col, offset


def _newline(text: str) -> str:
    m = _BREAK.search(text)
    return m.group() if m and m.group() in ("\n", "\r\n") else "\n"


def _ensure_break(text: str, nl: str) -> str:
    return text if not text or _BREAK.match(text, len(text) - 1) else text + nl


def _render(spec: FeedSpec, dash_col: int, offset: int, nl: str) -> str:
    values: dict[str, str | None] = {
        "id": yaml_scalar(spec.id),
        "name": _quoted(spec.name) if spec.name is not None else None,
        "url": yaml_scalar(spec.url.strip()),
        "interval": yaml_scalar(spec.interval) if spec.interval is not None else None,
        "language": yaml_scalar(spec.language) if spec.language is not None else None,
        "tags": "[" + ", ".join(yaml_scalar(t, flow=True) for t in spec.tags) + "]"
                if spec.tags else None,
    }
    lines = [f"{k}: {values[k]}" for k in _KEY_ORDER if values[k] is not None]
    pad, inner = " " * dash_col, " " * (dash_col + offset)
    first = f"{pad}-{' ' * (offset - 1)}{lines[0]}"
    return nl.join([first, *(inner + line for line in lines[1:])]) + nl


def yaml_scalar(value: str, *, flow: bool = False) -> str:
    """``value`` as a YAML scalar that reads back as exactly this string: plain
    when that is unambiguous (inside ``[...]`` with ``flow``), else double-quoted."""
    if value and value == value.strip() and not _BREAK.search(value) \
            and all(_PRINTABLE.match(ch) for ch in value):
        doc = f"k: [{value}]" if flow else f"k: {value}"
        try:
            loaded = yaml.safe_load(doc)
        except yaml.YAMLError:
            loaded = None
        if loaded == {"k": [value] if flow else value}:
            return value
    return _quoted(value)


def _quoted(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _PRINTABLE.match(ch):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


# --- removing ------------------------------------------------------------------------------

def _with_feeds_removed(text: str, ids: set[str], path: str) -> str:
    entry = _feeds_entry(_compose(text, path), path)
    if entry is None or not isinstance(entry[1], yaml.SequenceNode):
        raise ConfigError("no feeds list in the file", file=path, field="feeds")
    key, value = entry
    if not isinstance(value, yaml.SequenceNode) or value.flow_style:
        raise _unsupported(path)
    spans = []
    for item in value.value:
        if _item_id(item) in ids:
            start = _line_start(text, _dash(text, item, path))
            spans.append((start, _line_end(text, _content_end(text, item))))
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    if len(spans) == len(value.value):
        # An empty block list would read as null: the key gets "[]" instead.
        colon = text.index(":", int(key.end_mark.index))
        text = text[:colon + 1] + " []" + text[colon + 1:]
    return text


def _item_id(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if k.value == "id" and isinstance(v, yaml.ScalarNode):
                return str(v.value)
    return None


# --- a topic's no_match examples (the desk's "not relevant") --------------------------------

def with_no_match(path: str | os.PathLike[str], topic_id: str, text: str) -> tuple[str, str]:
    """(the file's text, the text with ``text`` appended to the topic's
    ``examples: no_match:`` block list), for a diff shown before writing."""
    _, old_text = _read(path)
    old = parse_config(old_text, str(path))
    old.topic(topic_id)  # ConfigError naming an unknown topic
    return old_text, _with_no_match(old_text, topic_id, text, str(path))


def add_no_match(path: str | os.PathLike[str], topic_id: str, text: str) -> Config:
    """Append ``text`` to the topic's ``no_match`` examples, keeping every other byte."""
    target, old_text = _read(path)
    old = parse_config(old_text, str(path))
    new_text = _with_no_match(old_text, topic_id, text, str(path))

    def same(old_c: Config, new_c: Config) -> bool:
        if not (old_c.settings == new_c.settings and dict(old_c.terms) == dict(new_c.terms)
                and old_c.digests == new_c.digests):
            return False
        expected = [dataclasses.replace(t, examples=dataclasses.replace(
            t.examples, no_match=(*t.examples.no_match, text))) if t.id == topic_id else t
            for t in old_c.topics]
        return list(new_c.topics) == expected

    return _replace(target, str(path), old, new_text, lambda new: new.feeds == old.feeds, same)


def _with_no_match(text: str, topic_id: str, example: str, path: str) -> str:
    seq = _no_match_list(_compose(text, path), topic_id, path)
    if not seq.value or seq.flow_style:
        raise ConfigError("the topic has no block list of no_match examples to extend; "
                          "edit the file by hand", file=path, topic=topic_id)
    nl = _newline(text)
    dash = _dash(text, seq.value[0], path)
    pad = " " * (dash - _line_start(text, dash))
    at = _line_end(text, _content_end(text, seq.value[-1]))
    return _ensure_break(text[:at], nl) + f"{pad}- {_quoted(example)}{nl}" + text[at:]


def _no_match_list(root: yaml.Node | None, topic_id: str, path: str) -> yaml.SequenceNode:
    def get(node: yaml.Node | None, key: str) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    return v  # type: ignore[no-any-return]
        return None

    topics = get(root, "topics")
    for item in topics.value if isinstance(topics, yaml.SequenceNode) else ():
        found = get(item, "id")
        if isinstance(found, yaml.ScalarNode) and found.value == topic_id:
            seq = get(get(item, "examples"), "no_match")
            if isinstance(seq, yaml.SequenceNode):
                return seq
    raise ConfigError("the topic has no no_match examples list; edit the file by hand",
                      file=path, topic=topic_id)
