"""Load and validate ``feeds.yaml`` into a frozen ``Config``.

Owns the file format of DESIGN.md: pydantic models check every field, then the
cross-field rules (unique ids and URLs, defined ``@terms``, queries SQLite
accepts). Every error is a ``ConfigError`` naming the file, the line, the feed
or topic id and the field. It never fetches and never touches the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from monitor import match
from monitor.errors import ConfigError, QueryError
from monitor.schedule import parse_duration
from monitor.types import DigestConfig, Examples, FeedConfig, Settings, Topic

DEFAULT_CONFIG = "feeds.yaml"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
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


class FeedModel(_Model):
    id: Id
    url: str
    name: str = Field(min_length=1)
    interval: Duration | None = None
    tags: list[str] = []
    language: str | None = None
    max_items_per_day: int | None = Field(None, ge=1)


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


class DigestModel(_Model):
    id: Id
    schedule: str
    since: Duration | None = None
    format: Literal["text", "markdown", "html", "json"] = "html"
    to: list[str] = []
    output_dir: str | None = None
    topics: list[str] = []


class ConfigModel(_Model):
    settings: SettingsModel = SettingsModel()
    digests: list[DigestModel] = []
    feeds: list[FeedModel] = []
    terms: dict[str, list[str]] = {}
    topics: list[TopicModel] = []


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    feeds: tuple[FeedConfig, ...]
    terms: Mapping[str, tuple[str, ...]]
    topics: tuple[Topic, ...]
    digests: tuple[DigestConfig, ...]

    def feed(self, feed_id: str) -> FeedConfig:
        for f in self.feeds:
            if f.id == feed_id:
                return f
        raise ConfigError("no such feed", file=self.path, feed=feed_id)

    def topic(self, topic_id: str) -> Topic:
        for t in self.topics:
            if t.id == topic_id:
                return t
        raise ConfigError("no such topic", file=self.path, topic=topic_id)

    def interval_of(self, feed: FeedConfig) -> float:
        return feed.interval if feed.interval is not None else self.settings.interval

    def quota_of(self, feed: FeedConfig) -> int:
        if feed.max_items_per_day is not None:
            return feed.max_items_per_day
        return self.settings.max_items_per_day


def config_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG


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


def parse_config(text: str, path: str = "<string>") -> Config:
    root = _compose(text, path)
    data = _construct(root) if root is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping (settings, feeds, terms, topics, digests)",
                          file=path)
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, data, root, path) from None
    return _build(model, root, path)


# --- YAML structure: line numbers and duplicate keys --------------------------------------

# libyaml's parser when PyYAML was built with it: the pure-Python one took
# most of a `monitor poll`'s start-up on a config of a thousand feeds.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        _reject_duplicate_keys(node, path)
    return node


def _reject_duplicate_keys(node: yaml.Node, path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise ConfigError(f"duplicate key {name!r}", file=path, line=key.start_mark.line + 1)
            seen.add(name)
            _reject_duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, path)


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

def _owner(data: Any, loc: Sequence[Any]) -> dict[str, object]:
    """feed=/topic=/digest= context for an error inside a list of those."""
    if len(loc) >= 2 and loc[0] in ("feeds", "topics", "digests") and isinstance(loc[1], int):
        kind = str(loc[0])[:-1]
        try:
            ident = data[loc[0]][loc[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            ident = None
        return {kind: ident if ident is not None else f"#{loc[1] + 1}"}
    return {}


def _pydantic_error(exc: ValidationError, data: Any, root: yaml.Node | None, path: str) -> ConfigError:
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    context = _owner(data, loc)
    field_parts = loc[2:] if context else loc
    field = ".".join(str(p) for p in field_parts) or None
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ConfigError(message, file=path, line=_line(root, loc), **context, field=field)


# --- building the frozen config and cross-field checks -----------------------------------

def _build(model: ConfigModel, root: yaml.Node | None, path: str) -> Config:
    settings = _settings(model.settings, root, path)
    feeds = _feeds(model, settings, root, path)
    terms = _terms(model.terms, root, path)
    topics = _topics(model.topics, terms, root, path)
    digests = _digests(model.digests, {t.id for t in topics}, root, path)
    return Config(path=path, settings=settings, feeds=feeds, terms=terms, topics=topics,
                  digests=digests)


def _settings(s: SettingsModel, root: yaml.Node | None, path: str) -> Settings:
    if s.min_interval < MIN_INTERVAL_FLOOR:
        raise ConfigError(f"must be at least {MIN_INTERVAL_FLOOR:g} s", file=path,
                          line=_line(root, ["settings", "min_interval"]), field="settings.min_interval")
    if s.interval < s.min_interval:
        raise ConfigError(f"must be at least min_interval ({s.min_interval:g} s)", file=path,
                          line=_line(root, ["settings", "interval"]), field="settings.interval")
    return Settings(
        interval=s.interval, timeout=s.timeout, connect_timeout=s.connect_timeout,
        max_bytes=s.max_bytes, max_redirects=s.max_redirects, concurrency=s.concurrency,
        per_host=s.per_host, user_agent=s.user_agent, retention=s.retention,
        max_backoff=s.max_backoff, allow_private=s.allow_private,
        max_items_per_feed=s.max_items_per_feed, min_interval=s.min_interval,
        parse_workers=None if s.parse_workers == "auto" else s.parse_workers,
        parse_timeout=s.parse_timeout, max_items_per_day=s.max_items_per_day,
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


def _feeds(model: ConfigModel, settings: Settings, root: yaml.Node | None,
           path: str) -> tuple[FeedConfig, ...]:
    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, str] = {}
    out = []
    for i, f in enumerate(model.feeds):
        def err(msg: str, field: str, f: FeedModel = f, i: int = i) -> ConfigError:
            return ConfigError(msg, file=path, line=_line(root, ["feeds", i, field]), feed=f.id,
                               field=field)
        if f.id in seen_ids:
            raise err(f"duplicate feed id (first used by feed #{seen_ids[f.id] + 1})", "id")
        seen_ids[f.id] = i
        problem = _check_url(f.url)
        if problem:
            raise err(problem, "url")
        ident = _url_identity(f.url)
        if ident in seen_urls:
            raise err(f"duplicate URL (already used by feed {seen_urls[ident]})", "url")
        seen_urls[ident] = f.id
        if f.interval is not None and f.interval < settings.min_interval:
            raise err(f"must be at least settings.min_interval ({settings.min_interval:g} s)",
                      "interval")
        out.append(FeedConfig(id=f.id, url=f.url.strip(), name=f.name, interval=f.interval,
                              tags=tuple(f.tags), language=f.language,
                              max_items_per_day=f.max_items_per_day))
    return tuple(out)


def _terms(terms: dict[str, list[str]], root: yaml.Node | None,
           path: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, values in terms.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError("term list names may use letters, digits, - and _ only", file=path,
                              line=_line(root, ["terms", name]), field=f"terms.{name}")
        cleaned = tuple(v.strip() for v in values if v.strip().rstrip("*").strip())
        if not cleaned:
            raise ConfigError("term list is empty", file=path, line=_line(root, ["terms", name]),
                              field=f"terms.{name}")
        out[name] = cleaned
    return out


def _topics(topics: list[TopicModel], terms: Mapping[str, Sequence[str]], root: yaml.Node | None,
            path: str) -> tuple[Topic, ...]:
    seen: set[str] = set()
    out = []
    for i, t in enumerate(topics):
        if t.id in seen:
            raise ConfigError("duplicate topic id", file=path, line=_line(root, ["topics", i, "id"]),
                              topic=t.id, field="id")
        seen.add(t.id)
        try:
            fts = match.build_fts_query(t.query, t.exclude, terms, topic_id=t.id)
            match.validate_query(fts, topic_id=t.id)
        except QueryError as exc:
            field = "exclude" if t.exclude and _fails(t.exclude, terms) else "query"
            raise ConfigError(exc.message, file=path, line=_line(root, ["topics", i, field]),
                              topic=t.id, field=field) from None
        out.append(Topic(id=t.id, name=t.name, description=t.description, query=t.query,
                         exclude=t.exclude, fts_query=fts,
                         examples=Examples(match=tuple(t.examples.match),
                                           no_match=tuple(t.examples.no_match))))
    return tuple(out)


def _fails(query: str, terms: Mapping[str, Sequence[str]]) -> bool:
    try:
        match.validate_query(match.expand_query(query, terms))
    except QueryError:
        return True
    return False


def _digests(digests: list[DigestModel], topic_ids: set[str], root: yaml.Node | None,
             path: str) -> tuple[DigestConfig, ...]:
    from monitor.cron import cron_trigger

    seen: set[str] = set()
    out = []
    for i, d in enumerate(digests):
        def err(msg: str, field: str, d: DigestModel = d, i: int = i) -> ConfigError:
            return ConfigError(msg, file=path, line=_line(root, ["digests", i, field]), digest=d.id,
                               field=field)
        if d.id in seen:
            raise err("duplicate digest id", "id")
        seen.add(d.id)
        try:
            cron_trigger(d.schedule)  # 5 fields, or 6 with seconds first
        except ValueError as exc:
            raise err(f"not a cron expression: {exc}", "schedule") from None
        for addr in d.to:
            if "=?" in addr or not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+", addr):
                raise err(f"not an e-mail address: {addr!r}", "to")
        unknown = [t for t in d.topics if t not in topic_ids]
        if unknown:
            raise err(f"unknown topic {unknown[0]!r}", "topics")
        out.append(DigestConfig(id=d.id, schedule=d.schedule, since=d.since, format=d.format,
                                to=tuple(d.to), output_dir=d.output_dir, topics=tuple(d.topics)))
    return tuple(out)


@dataclass(frozen=True)
class ExampleFailure:
    topic_id: str
    text: str
    expected: bool  # True: should have matched


def check_examples(config: Config) -> list[ExampleFailure]:
    """Run every topic's examples; the failures (empty when all behave)."""
    failures = []
    for topic in config.topics:
        matcher = match.Matcher([topic])
        for expected, texts in ((True, topic.examples.match), (False, topic.examples.no_match)):
            for text in texts:
                got = any(e.matched for e in matcher.explain(text))
                if got != expected:
                    failures.append(ExampleFailure(topic.id, text, expected))
    return failures
