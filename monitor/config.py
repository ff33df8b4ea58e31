"""Load and validate ``feeds.yaml`` into a frozen ``Config``.

Owns the file format of DESIGN.md: pydantic models check every field, then the
cross-field rules (unique ids and URLs, defined ``@terms``, queries SQLite
accepts). Every error is a ``ConfigError`` naming the file, the line, the feed
or topic id and the field; all of a file's errors are raised together as one
``ConfigErrors``. YAML aliases are bounded (an alias bomb is refused before
anything walks the expanded tree). It never fetches, never touches the database and
never runs the matcher: app.py checks the topics' examples.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

# Config, its default path and its copy (configcache) import neither YAML nor pydantic.
from monitor.configcache import DEFAULT_CONFIG as DEFAULT_CONFIG
from monitor.configcache import Config as Config
from monitor.configcache import config_path as config_path
from monitor.durations import parse_duration, parse_quiet_hours
from monitor.errors import ConfigError, ConfigErrors, QueryError
from monitor.query import build_fts_query, expand_query, validate_query
from monitor.types import (
    AlertConfig,
    DigestConfig,
    Entity,
    EntityKind,
    Examples,
    FeedConfig,
    Settings,
    Topic,
)

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# An ISO 639-1 code as feeds and the language model give it ("ru", "kk", "en").
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"
MIN_INTERVAL_FLOOR = 1.0  # seconds; settings.min_interval may go no lower
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(value: object) -> int:
    """'10MB', '512KiB' or a number of bytes -> bytes (positive)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        size = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"not a size: {value!r} (use e.g. 10MB, 512KB)")
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    return parse_duration(str(value))


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
ArticleMode = Literal["auto", "always", "never"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsModel(_Model):
    interval: Duration = 15 * 60
    min_interval: Duration = 60
    timeout: Duration = 30
    connect_timeout: Duration = 10
    max_bytes: Size = 10 * 1000 * 1000
    max_redirects: int = Field(5, ge=0, le=20)
    concurrency: int = Field(20, ge=1, le=500)
    per_host: int = Field(2, ge=1, le=10)
    user_agent: str = Field(Settings.user_agent, min_length=1)
    retention: Duration = 365 * 86400
    max_backoff: Duration = 86400
    allow_private: bool = False
    max_items_per_feed: int = Field(1000, ge=1)
    parse_workers: Annotated[int, Field(ge=0, le=64)] | Literal["auto"] = "auto"
    parse_timeout: Duration = 10
    max_items_per_day: int = Field(2000, ge=1)
    article_text: ArticleMode = "auto"
    article_budget: int = Field(50, ge=0, le=10_000)
    article_per_host: int = Field(2, ge=1, le=10)
    article_window: Duration = 3 * 86400


class FeedModel(_Model):
    id: Id
    url: str
    name: str | None = Field(None, min_length=1)
    interval: Duration | None = None
    tags: list[str] = []
    language: str | None = None
    max_items_per_day: int | None = Field(None, ge=1)
    article_text: ArticleMode | None = None


class ExamplesModel(_Model):
    match: list[str] = []
    no_match: list[str] = []


class TopicModel(_Model):
    id: Id
    name: str = Field(min_length=1)
    description: str = ""
    query: str = Field(min_length=1)
    exclude: str | None = None
    examples: ExamplesModel = ExamplesModel()
    languages: list[Annotated[str, Field(pattern=LANGUAGE_PATTERN)]] = []


class EntityModel(_Model):
    names: list[str] = Field(min_length=1)
    kind: EntityKind
    note: str | None = None


class DigestModel(_Model):
    id: Id
    schedule: str
    since: Duration | None = None
    format: Literal["text", "markdown", "html", "json"] = "html"
    to: list[str] = []
    output_dir: str | None = None
    topics: list[str] = []


class AlertModel(_Model):
    id: Id
    to: str = Field(min_length=1)
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    topics: list[str] = []
    min_sources: int = Field(1, ge=1, le=100)
    window: Duration = 86400
    max_per_hour: int = Field(20, ge=1)
    languages: list[str] = []
    quiet_hours: str | None = None
    allow_private: bool = False


class ConfigModel(_Model):
    settings: SettingsModel = SettingsModel()
    digests: list[DigestModel] = []
    alerts: list[AlertModel] = []
    feeds: list[FeedModel] = []
    terms: dict[str, list[str]] = {}
    entities: dict[str, EntityModel] = {}
    topics: list[TopicModel] = []


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and build the configuration; raises ConfigError."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=path) from None
    return parse_config(text, path)


class CachedConfig:
    """``load_config`` for a long-running reader (the desk): feeds.yaml is read
    again only when its size, mtime or inode changes. Errors are not kept, so a
    fixed file is picked up on the next call. Safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[tuple[int, int, int], Config]] = {}
        self.loads = 0  # files actually read and parsed

    def __call__(self, path: str | os.PathLike[str]) -> Config:
        path = str(path)
        try:
            st = os.stat(path)
        except OSError:
            return load_config(path)  # its own ConfigError: not found, unreadable
        # The stat comes before the read: a change racing the read is seen next time.
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            hit = self._cached.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        config = load_config(path)
        with self._lock:
            self.loads += 1
            self._cached[path] = (stamp, config)
        return config


def parse_config(text: str, path: str = "<string>") -> Config:
    """Validate everything and raise every error found at once (ConfigErrors),
    or a single ConfigError when the file cannot be read as YAML at all."""
    root = _compose(text, path)
    data = _construct(root) if root is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping (settings, feeds, terms, entities, topics, "
                          "digests, alerts)",
                          file=path)
    errors = _Errors(path, root)
    valid = _validate(data, errors)
    config = _build(valid, data, errors)
    errors.raise_any()
    return config


# --- YAML structure: line numbers, duplicate keys, alias bombs -----------------------------

# libyaml's parser when PyYAML was built with it: the pure-Python one took
# most of a `monitor poll`'s start-up on a config of a thousand feeds.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Aliases may repeat a few anchored blocks (shared tags, `<<: *defaults` on every
# feed), not multiply the document: ten levels of nine aliases expand to 3.4
# billion nodes from a few hundred bytes, and everything after composing (the
# checks, pydantic) walks the expanded tree.
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to the document
MAX_DEPTH = 100  # a real config nests five levels deep


def _construct(root: yaml.Node) -> Any:
    """The Python data of an already composed document (parsed once)."""
    return yaml.SafeLoader("").construct_document(root)


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", file=path, line=line) from None
    if node is not None:
        _check_structure(node, path)
    return node


def _check_structure(root: yaml.Node, path: str) -> None:
    """One walk over the composed graph, each node once (an alias is the same
    node object again): duplicate keys, recursive aliases, nesting depth, and
    how far aliases would expand the document."""
    size: dict[int, int] = {}  # node id -> its node count with aliases expanded
    open_ids: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> int:
        key = id(node)
        known = size.get(key)
        if known is not None:
            return known
        if key in open_ids:
            raise ConfigError("an alias refers to a block that contains it", file=path,
                              line=node.start_mark.line + 1)
        if depth > MAX_DEPTH:  # also keeps this recursion far from Python's limit
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=path,
                              line=node.start_mark.line + 1)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _reject_duplicate_keys(node, path)
            open_ids.add(key)
            for k, v in node.value:
                total += visit(k, depth + 1) + visit(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            open_ids.add(key)
            for item in node.value:
                total += visit(item, depth + 1)
        open_ids.discard(key)
        size[key] = total
        # len(size) bounds the distinct nodes below this one from above.
        if total - len(size) > MAX_ALIAS_NODES:
            raise ConfigError(f"aliases expand this block beyond {MAX_ALIAS_NODES:,} nodes "
                              "(an alias bomb?): repeat fewer aliases", file=path,
                              line=node.start_mark.line + 1)
        return total

    visit(root, 0)


def _reject_duplicate_keys(node: yaml.MappingNode, path: str) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        name = str(key.value)
        if name in seen:
            raise ConfigError(f"duplicate key {name!r}", file=path, line=key.start_mark.line + 1)
        seen.add(name)


def _node_at(root: yaml.Node | None, loc: Sequence[Any]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if str(k.value) == str(part)), None)
            if nxt is None:
                # An unknown key: point at the key itself.
                key = next((k for k, _ in node.value if str(k.value) == str(part)), None)
                return key or node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node


def _line(root: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    node = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else None


# --- errors ------------------------------------------------------------------------------

class _Errors:
    """The errors of one file as they are found, raised together in file order."""

    def __init__(self, path: str, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root
        self.found: list[ConfigError] = []

    def add(self, message: str, loc: Sequence[Any], **context: object) -> None:
        self.found.append(ConfigError(message, file=self.path, line=_line(self.root, loc),
                                      **context))

    def raise_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda e: _as_line(e.context.get("line")))
            raise ConfigErrors(ordered)


def _as_line(line: object) -> int:
    return line if isinstance(line, int) else 0


def _owner(data: Any, loc: Sequence[Any]) -> dict[str, object]:
    """feed=/topic=/digest= context for an error inside a list of those."""
    if len(loc) >= 2 and loc[0] == "entities":
        return {"entity": str(loc[1])}
    if len(loc) >= 2 and loc[0] in _LISTS and isinstance(loc[1], int):
        kind = str(loc[0])[:-1]
        try:
            ident = data[loc[0]][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            ident = None
        return {kind: ident if ident is not None else f"#{loc[1] + 1}"}
    return {}


def _data_loc(data: Any, loc: Sequence[Any]) -> tuple[Any, ...]:
    """A pydantic location cut where the data ends: what follows a scalar
    names a member of a union (``constrained-int``), not a place in the file."""
    out: list[Any] = []
    value = data
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            break
        out.append(part)
    return tuple(out)


def _message(err: Any, loc: Sequence[Any]) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    msg = str(err["msg"])
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _add_pydantic(exc: ValidationError, data: Any, errors: _Errors) -> list[tuple[Any, ...]]:
    """Every pydantic error, one per place (a union's alternatives joined);
    the places, so the caller can drop them and check the rest."""
    by_loc: dict[tuple[Any, ...], list[str]] = {}
    for err in exc.errors():
        loc = _data_loc(data, err["loc"])
        by_loc.setdefault(loc, []).append(_message(err, loc))
    for loc, messages in by_loc.items():
        context = _owner(data, loc)
        field_parts = loc[2:] if context and loc[0] != "entities" else loc
        field = ".".join(str(p) for p in field_parts) or None
        errors.add(" or ".join(dict.fromkeys(messages)), loc, **context, field=field)
    return list(by_loc)


# --- validation: every error, then the valid rest ------------------------------------------

_LISTS = ("feeds", "topics", "digests", "alerts")


@dataclass
class _Valid:
    """The model of the valid part of the file, and where its pieces are in it."""

    model: ConfigModel
    positions: dict[str, list[int]]  # feeds/topics/digests: file index of each model item
    settings_ok: bool = True
    broken_terms: set[str] = dataclasses.field(default_factory=set)
    broken_entities: set[str] = dataclasses.field(default_factory=set)


def _validate(data: dict[str, Any], errors: _Errors) -> _Valid:
    """Validate with pydantic; on errors, record them all, drop the failing
    pieces (a feed, a term list, a setting, a section) and validate the rest,
    so the cross-field checks can still run on it."""
    positions = {name: list(range(len(data[name]))) if isinstance(data.get(name), list) else []
                 for name in _LISTS}
    valid = _Valid(ConfigModel(), positions)
    current = data
    for attempt in range(3):
        try:
            valid.model = ConfigModel.model_validate(current)
            return valid
        except ValidationError as exc:
            if attempt == 0:
                locs = _add_pydantic(exc, current, errors)
            else:  # what is left should be valid; do not report anything twice
                locs = [_data_loc(current, e["loc"]) for e in exc.errors()]
            current = _drop(current, locs, valid)
    return valid


def _drop(data: dict[str, Any], locs: list[tuple[Any, ...]], valid: _Valid) -> dict[str, Any]:
    data = dict(data)  # aliases share objects: never change the constructed data
    items: dict[str, set[int]] = {}
    for loc in locs:
        head = loc[0] if loc else None
        if head in _LISTS and len(loc) >= 2 and isinstance(loc[1], int):
            items.setdefault(str(head), set()).add(loc[1])
        elif (head in ("settings", "terms", "entities") and len(loc) >= 2
              and isinstance(data.get(head), dict)):
            data[head] = {k: v for k, v in data[head].items() if k != loc[1]}
            if head == "settings":
                valid.settings_ok = False
            elif head == "terms":
                valid.broken_terms.add(str(loc[1]))
            else:
                valid.broken_entities.add(str(loc[1]))
        elif head is not None:
            data.pop(head, None)
            if head == "settings":
                valid.settings_ok = False
            if head in _LISTS:
                valid.positions[str(head)] = []
    for name, drop in items.items():
        keep = [i for i in range(len(data[name])) if i not in drop]
        data[name] = [data[name][i] for i in keep]
        valid.positions[name] = [valid.positions[name][i] for i in keep]
    return data


def _declared(data: dict[str, Any], name: str) -> set[str]:
    """The ids a section of the file declares, valid or not."""
    items = data.get(name)
    if not isinstance(items, list):
        return set()
    return {str(i["id"]) for i in items if isinstance(i, dict) and i.get("id") is not None}


# --- building the frozen config and cross-field checks -----------------------------------

def _build(valid: _Valid, data: dict[str, Any], errors: _Errors) -> Config:
    model = valid.model
    settings = _settings(model.settings, errors, check=valid.settings_ok)
    feeds = _feeds(model, valid.positions["feeds"], settings, errors)
    terms = _terms(model.terms, errors)
    entities = _entities(model.entities, set(model.terms) | valid.broken_terms, errors)
    lexicon = {**terms, **{k: e.names for k, e in entities.items()}}
    # A topic using a broken term list or entity is not reported again for it.
    broken = (valid.broken_terms | (set(model.terms) - set(terms))
              | valid.broken_entities | (set(model.entities) - set(entities)))
    for name in broken:
        lexicon[name] = ("placeholder",)
    topics = _topics(model.topics, valid.positions["topics"], lexicon, errors)
    digests = _digests(model.digests, valid.positions["digests"], _declared(data, "topics"),
                       errors)
    alerts = _alerts(model.alerts, valid.positions["alerts"], _declared(data, "topics"), errors)
    return Config(path=errors.path, settings=settings, feeds=feeds, terms=terms, topics=topics,
                  digests=digests, alerts=alerts, entities=entities)


def _settings(s: SettingsModel, errors: _Errors, *, check: bool) -> Settings:
    if check and s.min_interval < MIN_INTERVAL_FLOOR:
        errors.add(f"must be at least {MIN_INTERVAL_FLOOR:g} s", ["settings", "min_interval"],
                   field="settings.min_interval")
    elif check and s.interval < s.min_interval:
        errors.add(f"must be at least min_interval ({s.min_interval:g} s)",
                   ["settings", "interval"], field="settings.interval")
    return Settings(
        interval=s.interval, timeout=s.timeout, connect_timeout=s.connect_timeout,
        max_bytes=s.max_bytes, max_redirects=s.max_redirects, concurrency=s.concurrency,
        per_host=s.per_host, user_agent=s.user_agent, retention=s.retention,
        max_backoff=s.max_backoff, allow_private=s.allow_private,
        max_items_per_feed=s.max_items_per_feed, min_interval=s.min_interval,
        parse_workers=None if s.parse_workers == "auto" else s.parse_workers,
        parse_timeout=s.parse_timeout, max_items_per_day=s.max_items_per_day,
        article_text=s.article_text, article_budget=s.article_budget,
        article_per_host=s.article_per_host, article_window=s.article_window,
    )


def _check_url(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"only http and https feed URLs are allowed, not {parts.scheme or 'no scheme'!r}"
    if not parts.hostname:
        return "URL has no host"
    return None


def _url_identity(url: str) -> str:
    p = urlsplit(url.strip())
    return f"{p.scheme.lower()}://{(p.netloc or '').lower()}{p.path or '/'}?{p.query}"


def _feeds(model: ConfigModel, positions: list[int], settings: Settings,
           errors: _Errors) -> tuple[FeedConfig, ...]:
    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, str] = {}
    out = []
    for i, f in zip(positions, model.feeds, strict=True):
        problems: list[tuple[str, str]] = []
        if f.id in seen_ids:
            problems.append((f"duplicate feed id (first used by feed #{seen_ids[f.id] + 1})", "id"))
        seen_ids.setdefault(f.id, i)
        url_problem = _check_url(f.url)
        if url_problem:
            problems.append((url_problem, "url"))
        else:
            ident = _url_identity(f.url)
            if ident in seen_urls:
                problems.append((f"duplicate URL (already used by feed {seen_urls[ident]})", "url"))
            seen_urls.setdefault(ident, f.id)
        if f.interval is not None and f.interval < settings.min_interval:
            problems.append((f"must be at least settings.min_interval "
                             f"({settings.min_interval:g} s)", "interval"))
        for message, name in problems:
            errors.add(message, ["feeds", i, name], feed=f.id, field=name)
        if not problems:
            out.append(FeedConfig(id=f.id, url=f.url.strip(), name=f.name, interval=f.interval,
                                  tags=tuple(f.tags), language=f.language,
                                  max_items_per_day=f.max_items_per_day,
                                  article_text=f.article_text))
    return tuple(out)


def _terms(terms: dict[str, list[str]], errors: _Errors) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, values in terms.items():
        where = ["terms", name]
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            errors.add("term list names may use letters, digits, - and _ only", where,
                       field=f"terms.{name}")
            continue
        cleaned = tuple(v.strip() for v in values if v.strip().rstrip("*").strip())
        if not cleaned:
            errors.add("term list is empty", where, field=f"terms.{name}")
            continue
        out[name] = cleaned
    return out


def _entities(entities: dict[str, EntityModel], term_names: set[str],
              errors: _Errors) -> dict[str, Entity]:
    """The valid entities; a name that is also a term list is refused, since
    ``@name`` could then mean either."""
    out = {}
    for name, e in entities.items():
        where = ["entities", name]
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            errors.add("entity names may use letters, digits, - and _ only", where,
                       entity=name, field=f"entities.{name}")
            continue
        if name in term_names:
            errors.add(f"@{name} is both a term list (terms.{name}) and an entity "
                       f"(entities.{name}): rename one", where, entity=name,
                       field=f"entities.{name}")
            continue
        names = tuple(v.strip() for v in e.names if v.strip().rstrip("*").strip())
        if len(names) != len(e.names):
            errors.add("an entity name is empty", [*where, "names"], entity=name,
                       field=f"entities.{name}.names")
            continue
        out[name] = Entity(names=names, kind=e.kind, note=e.note)
    return out


def _topics(topics: list[TopicModel], positions: list[int], terms: Mapping[str, Sequence[str]],
            errors: _Errors) -> tuple[Topic, ...]:
    seen: set[str] = set()
    out = []
    for i, t in zip(positions, topics, strict=True):
        if t.id in seen:
            errors.add("duplicate topic id", ["topics", i, "id"], topic=t.id, field="id")
            continue
        seen.add(t.id)
        try:
            fts = build_fts_query(t.query, t.exclude, terms, topic_id=t.id)
            validate_query(fts, topic_id=t.id)
        except QueryError as exc:
            field = "exclude" if t.exclude and _fails(t.exclude, terms) else "query"
            errors.add(exc.message, ["topics", i, field], topic=t.id, field=field)
            continue
        out.append(Topic(id=t.id, name=t.name, description=t.description, query=t.query,
                         exclude=t.exclude, fts_query=fts,
                         examples=Examples(match=tuple(t.examples.match),
                                           no_match=tuple(t.examples.no_match)),
                         languages=tuple(dict.fromkeys(t.languages))))
    return tuple(out)


def _fails(query: str, terms: Mapping[str, Sequence[str]]) -> bool:
    try:
        validate_query(expand_query(query, terms))
    except QueryError:
        return True
    return False


def _digest_problems(d: DigestModel, topic_ids: set[str]) -> list[tuple[str, str]]:
    from monitor.cron import cron_trigger

    problems = []
    try:
        cron_trigger(d.schedule)  # 5 fields, or 6 with seconds first
    except ValueError as exc:
        problems.append((f"not a cron expression: {exc}", "schedule"))
    for addr in d.to:
        if "=?" in addr or not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+", addr):
            problems.append((f"not an e-mail address: {addr!r}", "to"))
    for topic_id in d.topics:
        if topic_id not in topic_ids:
            problems.append((f"unknown topic {topic_id!r}", "topics"))
    return problems


def _digests(digests: list[DigestModel], positions: list[int], topic_ids: set[str],
             errors: _Errors) -> tuple[DigestConfig, ...]:
    seen: set[str] = set()
    out = []
    for i, d in zip(positions, digests, strict=True):
        problems = _digest_problems(d, topic_ids)
        if d.id in seen:
            problems.insert(0, ("duplicate digest id", "id"))
        seen.add(d.id)
        for message, name in problems:
            errors.add(message, ["digests", i, name], digest=d.id, field=name)
        if not problems:
            out.append(DigestConfig(id=d.id, schedule=d.schedule, since=d.since, format=d.format,
                                    to=tuple(d.to), output_dir=d.output_dir,
                                    topics=tuple(d.topics)))
    return tuple(out)


def _alert_problems(a: AlertModel, topic_ids: set[str]) -> list[tuple[str, str]]:
    problems = []
    try:
        parts = urlsplit(a.to.strip())
    except ValueError as exc:
        parts = None
        problems.append((f"not a URL: {exc}", "to"))
    if parts is not None and not parts.scheme:
        problems.append(("not a URL: it has no scheme (https://..., tgram://, mailto://...)",
                         "to"))
    elif parts is not None and parts.scheme.lower() in ("http", "https") and not parts.hostname:
        problems.append(("URL has no host", "to"))
    for topic_id in a.topics:
        if topic_id not in topic_ids:
            problems.append((f"unknown topic {topic_id!r}", "topics"))
    if a.quiet_hours is not None:
        try:
            parse_quiet_hours(a.quiet_hours)
        except ValueError as exc:
            problems.append((str(exc), "quiet_hours"))
    return problems


def _alerts(alerts: list[AlertModel], positions: list[int], topic_ids: set[str],
            errors: _Errors) -> tuple[AlertConfig, ...]:
    seen: set[str] = set()
    out = []
    for i, a in zip(positions, alerts, strict=True):
        problems = _alert_problems(a, topic_ids)
        if a.id in seen:
            problems.insert(0, ("duplicate alert id", "id"))
        seen.add(a.id)
        for message, name in problems:
            errors.add(message, ["alerts", i, name], alert=a.id, field=name)
        if not problems:
            out.append(AlertConfig(
                id=a.id, to=a.to.strip(), secret_env=a.secret_env, topics=tuple(a.topics),
                min_sources=a.min_sources, window=a.window, max_per_hour=a.max_per_hour,
                languages=tuple(w.strip().lower() for w in a.languages if w.strip()),
                quiet_hours=parse_quiet_hours(a.quiet_hours) if a.quiet_hours else None,
                allow_private=a.allow_private))
    return tuple(out)
