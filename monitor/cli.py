"""The `monitor` command: thin click commands over ``monitor.app.Monitor``.

Each command parses its arguments, calls a Monitor use case and prints the
result with rich; it holds no SQL, orchestration or business rule.
``ConfigError`` (and bad usage) exit 2, any other ``MonitorError`` exits 1,
each with one clear line naming the file, feed, topic or field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from monitor.clean import CleanFormatter, clean_short
from monitor.errors import ConfigError, ConfigErrors, MonitorError, QueryError, UsageError

# `monitor --help` and a command's own --help import none of these (about
# 0.35 s: httpx, lxml, feedparser, sqlite-utils, rich's tables and bars): the
# use cases, tables and progress bars are imported where a command runs.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from monitor import match
    from monitor.app import Monitor, Notice
    from monitor.discover import FoundFeed
    from monitor.types import PollResult, PollSummary


class _LazyConsole:
    """A rich Console made on first use: `monitor --help` never prints
    through one, and importing rich.console costs ~25 ms of its start-up."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        return getattr(self._console, name)


out: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def escape(text: str) -> str:
    """rich's markup escape, imported when something is printed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)

F = TypeVar("F", bound=Callable[..., Any])


def _warn(notice: Notice) -> None:
    """What a use case reports without failing, on stderr."""
    from monitor.app import ConfigIgnored, StaleTopic

    if isinstance(notice, StaleTopic):
        t = notice.topic_id
        err.print(f"[yellow]topic {t}:[/yellow] its stored hits do not reflect its current "
                  f"query; run `monitor topics apply --topic {t}` to apply it to stored items")
    elif isinstance(notice, ConfigIgnored):
        err.print(f"[yellow]warning:[/yellow] {escape(str(notice.error))}; showing the feeds "
                  "the database holds")


def print_json(data: Any) -> None:
    """JSON on standard output: coloured by rich on a terminal, else written
    as is (rich's highlighting of a 1,000-feed poll summary took ~0.5 s)."""
    if out.is_terminal:
        out.print_json(data=data)
        return
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _table(*headers: str) -> Table:
    from rich.table import Table

    return Table(*headers)


def _progress(label: str, extra: str | None = None, *, disable: bool = False) -> Progress:
    """A transient progress bar on stderr: label, bar, done/total, [extra], time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(),
               *([TextColumn(extra)] if extra else []), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=disable)


def handle_errors(fn: F) -> F:
    """Turn our errors into one line on stderr and the documented exit code."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise click.BadParameter(exc.message, param_hint=exc.param_hint) from None
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(2)
        except QueryError as exc:
            err.print(f"[red]invalid query:[/red] {escape(str(exc))}")
            sys.exit(2)
        except MonitorError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(1)
    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="PATH", envvar="MONITOR_CONFIG",
              help="feeds.yaml to use (default ./feeds.yaml, env MONITOR_CONFIG).")
@click.option("--db", "db", metavar="PATH", envvar="MONITOR_DB",
              help="SQLite database (default ./storage/monitor.db, env MONITOR_DB).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="monitor")
@click.pass_context
def cli(ctx: click.Context, config: str | None, db: str | None, verbose: int,
        quiet: bool) -> None:
    """Media monitoring: poll feeds, match topics, report hits.

    Example: monitor poll && monitor hits --since 24h
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CleanFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    from monitor.app import open_monitor

    ctx.obj = open_monitor(config, db, on_warning=_warn)
    ctx.call_on_close(ctx.obj.close)


# --- check / topics --------------------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def check(obj: Monitor, as_json: bool) -> None:
    """Validate feeds.yaml, listing every error with its line, and run every
    topic's examples (exit 2 if anything fails); check the database's integrity
    when it exists (exit 1 if corrupted)."""
    try:
        report = obj.check()
    except ConfigError as exc:
        errors = exc.errors if isinstance(exc, ConfigErrors) else (exc,)
        if as_json:
            print_json({"file": obj.config_path, "ok": False,
                        "errors": [_error_json(e) for e in errors], "examples_failed": []})
        else:
            for e in errors:
                err.print(f"[red]error:[/red] {escape(str(e))}")
            err.print(f"{len(errors)} error{'s' if len(errors) > 1 else ''} in "
                      f"{escape(obj.config_path)}")
        sys.exit(2)
    config, failures, examples = report.config, report.failures, report.examples
    checked = obj.check_database()  # StorageError (exit 1) when corrupted
    if as_json:
        print_json({"file": config.path, "ok": not failures, "errors": [],
                    "database": None if checked is None else {"path": obj.db_path, "ok": True},
                    "examples_failed": [{"topic": f.topic_id, "text": f.text,
                                         "expected": "match" if f.expected else "no match"}
                                        for f in failures],
                    "feeds": len(config.feeds), "topics": len(config.topics),
                    "examples": examples, "digests": len(config.digests)})
        if failures:
            sys.exit(2)
        return
    for f in failures:
        err.print(f"[red]FAIL[/red] topic {f.topic_id}: example "
                  f"{'should match' if f.expected else 'should not match'}: {escape(f.text)}")
    if failures:
        err.print(f"{len(failures)} of {examples} examples failed in {config.path}")
        sys.exit(2)
    out.print(f"{config.path}: ok — {len(config.feeds)} feeds, {len(config.topics)} topics, "
              f"{examples} examples pass, {len(config.digests)} digests")
    if checked is not None:
        out.print(f"{escape(obj.db_path)}: integrity check ok ({checked:.2f}s)")


def _error_json(e: ConfigError) -> dict[str, Any]:
    c = e.context
    return {"file": c.get("file"), "line": c.get("line"), "feed": c.get("feed"),
            "topic": c.get("topic"), "digest": c.get("digest"), "field": c.get("field"),
            "message": e.message}


@cli.group()
def topics() -> None:
    """Test and check topics."""


@topics.command("test")
@click.argument("text")
@click.option("--title", help="Title to test with (default: the first line of TEXT).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def topics_test(obj: Monitor, text: str, title: str | None, as_json: bool) -> None:
    """Which topics TEXT matches, which terms matched, and which came close."""
    explained = obj.topics_test(text, title)
    if as_json:
        print_json([{"topic": e.topic_id, "name": e.name, "matched": e.matched,
                     "terms": list(e.terms), "snippet": e.snippet,
                     "close": list(e.close_clauses)} for e in explained])
        return
    matched = [e for e in explained if e.matched]
    for e in matched:
        out.print(f"[green]✔ {e.topic_id}[/green]  {escape(e.name)}")
        out.print(f"    terms: {escape(', '.join(e.terms))}")
        out.print(f"    {highlight(e.snippet)}")
    for e in explained:
        if not e.matched and e.close_clauses:
            out.print(f"[yellow]~ {e.topic_id}[/yellow]  close: matched "
                      f"{escape(', '.join(e.close_clauses))} but not the whole query")
    out.print(f"{len(matched)} of {len(explained)} topics match")


@topics.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def topics_check(obj: Monitor, as_json: bool) -> None:
    """Run every topic's examples, and the desk's verdicts as examples (a story
    marked relevant must match its topic, not relevant must not), as a
    pass/fail table (exit 2 on a failure)."""
    rows, failed = obj.topics_check()
    if as_json:
        print_json({"examples": [{"topic": r.topic_id, "expect": r.expect, "text": r.text,
                                  "pass": r.ok, **({"story": r.story} if r.story else {})}
                                 for r in rows],
                    "failed": failed})
    else:
        table = _table("topic", "expect", "example", "result")
        for r in rows:
            text = f"story: {r.text}" if r.story else r.text
            table.add_row(r.topic_id, r.expect, escape(text[:90]),
                          "[green]pass[/green]" if r.ok else "[red]FAIL[/red]")
        out.print(table)
    for r in rows:
        if r.story and not r.ok:
            # A verdict's failure is named in full: the table cuts titles short.
            marked = "relevant" if r.expect == "match" else "not relevant"
            now = "no longer matches" if r.expect == "match" else "now matches"
            err.print(f"verdict: story {escape(repr(r.text))} was marked {marked} for topic "
                      f"{escape(r.topic_id)} and {now} it")
    if failed:
        err.print(f"{failed} example(s) failed")
        sys.exit(2)


@topics.command("apply")
@click.option("--topic", "topic_ids", multiple=True, metavar="ID",
              help="Only this topic (repeatable; default: every topic).")
@click.option("--since", metavar="30d|DATE", help="Only items published since then.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def topics_apply(obj: Monitor, topic_ids: tuple[str, ...], since: str | None,
                 as_json: bool) -> None:
    """Re-run topics over stored items, adding and removing hits to match the
    current queries (after a topic is added or changed)."""
    with _progress("{task.description}", disable=not err.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def advance(topic_id: str, done: int, total: int) -> None:
            if topic_id not in tasks:
                tasks[topic_id] = bar.add_task(topic_id, total=total)
            bar.update(tasks[topic_id], completed=done)

        since_dt, results = obj.topics_apply(topic_ids, since, progress=advance)
    if as_json:
        print_json({"since": since_dt.isoformat() if since_dt else None,
                    "topics": [{"topic": r.topic_id, "items": r.items, "added": r.added,
                                "removed": r.removed} for r in results]})
        return
    table = _table("topic", "items", "hits added", "hits removed")
    for r in results:
        table.add_row(r.topic_id, str(r.items), str(r.added), str(r.removed))
    out.print(table)


@topics.command("suggest")
@click.argument("topic_id", metavar="TOPIC")
@click.option("--since", default="30d", show_default=True, metavar="30d|DATE",
              help="Only items published since then.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Items listed per missing clause.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def topics_suggest(obj: Monitor, topic_id: str, since: str, limit: int, as_json: bool) -> None:
    """Stored items that matched every clause of TOPIC's query but one, by the
    missing clause, with the words that might have completed it; and, for
    review, items TOPIC matched only through a stemmed or folded form, with
    the words that carried the match (quote a term to keep it exact)."""
    with _progress("{task.description}", disable=not err.is_terminal) as bar:
        task = bar.add_task(topic_id, total=None)
        found = obj.topics_suggest(topic_id, since, limit=limit,
                                   progress=lambda done, total: bar.update(
                                       task, completed=done, total=total))
    groups, folded = found.missing, found.folded
    if as_json:
        print_json({"topic": topic_id, "since": since, "missing": [g.as_json() for g in groups],
                    "folded": folded.as_json()})
        return
    if folded.count:
        out.print(f"[bold]matched only through stemmed or folded forms:[/bold] "
                  f"({folded.count} items)")
        for item in folded.items:
            words = ", ".join(map(str, item["words"]))  # type: ignore[call-overload]
            out.print(f"  - {escape(str(item['title']))}  [dim]{escape(words)}[/dim]")
    if not groups:
        out.print(f"No near misses of {escape(topic_id)} since {escape(since)}.")
        return
    for g in groups:
        data = g.as_json()
        out.print(f"[bold]missing:[/bold] {escape(g.missing)}  ({g.count} items)")
        out.print(f"  words: {escape(', '.join(map(str, data['words'])))}")  # type: ignore[call-overload]
        for item in g.items:
            words = ", ".join(map(str, item["words"]))  # type: ignore[call-overload]
            out.print(f"  - {escape(str(item['title']))}  [dim]{escape(words)}[/dim]")


@cli.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def search(ctx: click.Context, query: str, limit: int, as_json: bool) -> None:
    """Full-text search of the whole archive, in the topic query language
    (@name term lists of feeds.yaml included); best and newest first, one row per story.
    A query that is not valid in that language is read as plain words (-v says which).

    Example: monitor search '@kazakhstan AND strike*'
    """
    obj: Monitor = ctx.obj
    reading = obj.search_reading(query)
    if ctx.find_root().params["verbose"]:
        _print_reading(reading)
    rows = obj.search(reading, limit=limit)
    if as_json:
        print_json({"query": query, "reading": reading.kind, "fts_query": reading.fts_query,
                    "reason": reading.reason, "results": rows})
        return
    if not rows:
        out.print(f"Nothing matches {escape(query)}.")
        return
    for r in rows:
        out.print(f"[bold]{escape(r['title'] or '(no title)')}[/bold]")
        out.print(f"  {r['published_at']} · {escape(', '.join(r['feeds']))}"
                  + (f" · {escape(r['url'])}" if r["url"] else ""))
        out.print(f"  {highlight(r['snippet'])}")
    out.print(f"{len(rows)} stories")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def reindex(obj: Monitor, as_json: bool) -> None:
    """Fill the normalised words (the norm column) of items stored before
    monitor had it, so that searches and topics find their other forms too.
    Until then such items match only as written. Runs in short transactions
    beside a running daemon (which does the same in the background); an
    interrupted run carries on where it stopped."""
    with _progress("normalising", disable=not err.is_terminal) as bar:
        task = bar.add_task("norm", total=None)
        done, left = obj.reindex(progress=lambda n, total: bar.update(
            task, completed=n, total=total))
    if as_json:
        print_json({"normalised": done, "left": left})
        return
    out.print(f"{done} items normalised" + (f", {left} left" if left else ""))


def _print_reading(reading: match.SearchReading) -> None:
    shown = reading.fts_query
    if len(shown) > 300:  # an expanded @list runs to kilobytes
        shown = shown[:300] + "…"
    line = f"reading: {reading.kind}: {escape(shown)}"
    if reading.reason:
        line += f" (as a query: {escape(reading.reason)})"
    err.print(line, highlight=False)


# --- poll / run ------------------------------------------------------------------------------

@cli.command()
@click.option("--feed", "feeds", multiple=True, metavar="ID", help="Only this feed (repeatable).")
@click.option("--force", is_flag=True,
              help="Poll now even if not due (never a disabled feed or before a Retry-After).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
@handle_errors
def poll(obj: Monitor, feeds: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Run one polling cycle of the due feeds and print a summary."""
    verbose = click.get_current_context().find_root().params["verbose"] > 0
    obj.sync()
    with _results_not_logged(unless=verbose):
        summary = _poll_with_progress(obj, feeds, force, show=not as_json and err.is_terminal)
    if as_json:
        print_json(_summary_json(summary))
    else:
        _print_summary(summary, verbose=verbose)


class _PerFeedLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "event", None) not in ("feed", "offline")


@contextmanager
def _results_not_logged(*, unless: bool) -> Iterator[None]:
    """The summary shows each feed's result: its log line on stderr too would
    say every failure twice (-v keeps the lines)."""
    if unless:
        yield
        return
    poll_log, quiet = logging.getLogger("monitor.poll"), _PerFeedLines()
    poll_log.addFilter(quiet)
    try:
        yield
    finally:
        poll_log.removeFilter(quiet)


def _poll_with_progress(obj: Monitor, feeds: Sequence[str], force: bool,
                        show: bool) -> PollSummary:
    if not show:
        return obj.poll(feeds, force=force)
    with _progress("polling", "{task.fields[last]}") as bar:
        task = bar.add_task("poll", total=None, last="")

        def started(n: int) -> None:
            bar.update(task, total=n)

        def advance(r: PollResult) -> None:
            bar.update(task, advance=1, last=r.feed_id)

        return obj.poll(feeds, force=force, progress=advance, on_start=started)


def _summary_json(s: PollSummary) -> dict[str, Any]:
    return {
        "started_at": s.started_at.isoformat(), "duration": round(s.duration, 3),
        "feeds_due": s.due, "feeds_polled": len(s.results), "new_items": s.new_items,
        "hits": s.hits, "failed": s.failed, "offline": s.offline,
        "feeds": [{"id": r.feed_id, "status": r.status, "http_status": r.http_status,
                   "new_items": r.new_items, "updated_items": r.updated_items, "hits": r.hits,
                   "duration": round(r.duration, 3),
                   "error": {"kind": r.error.kind, "reason": r.error.reason} if r.error else None,
                   "bozo": r.bozo_reason, "quota_skipped": r.quota_skipped}
                  for r in sorted(s.results, key=lambda r: r.feed_id)],
        "articles": dataclasses.asdict(s.articles),
    }


def _print_summary(s: PollSummary, *, verbose: bool = False) -> None:
    _print_summary_feeds(s, verbose=verbose)
    a = s.articles
    if a.fetched:
        out.print(f"{a.fetched} articles fetched: {a.ok} ok, {a.failed} failed, "
                  f"{a.retrying} to retry, {a.hits} new hits")


def _print_summary_feeds(s: PollSummary, *, verbose: bool) -> None:
    if not s.results:
        out.print("No feed is due. Use --force to poll anyway.")
        return
    if s.offline and not verbose:
        out.print(f"[red]All {len(s.results)} feeds failed name resolution (DNS): this machine "
                  "looks offline.[/red] Each is retried after its backoff; -v lists them.")
        out.print(f"0 feeds polled in {s.duration:.1f}s: {s.failed} failed")
        return
    table = _table("feed", "status", "http", "new", "hits", "time", "note")
    for r in sorted(s.results, key=lambda r: (r.status != "failed", r.feed_id)):
        colour = {"failed": "red", "new": "green"}.get(r.status, "")
        # The reader's notes that change nothing (served as text/xml...) only with -v.
        bozo = r.bozo_reason if verbose else r.bozo_notable
        note = f"{r.error.kind}: {r.error.reason}" if r.error else (bozo or "")
        if r.quota_skipped:
            note = f"quota: {r.quota_skipped:,} new items skipped; {note}".rstrip("; ")
        table.add_row(r.feed_id, f"[{colour}]{r.status}[/{colour}]" if colour else r.status,
                      str(r.http_status or ""), str(r.new_items), str(r.hits),
                      f"{r.duration:.2f}s", escape(note[:80]))
    out.print(table)
    out.print(f"{len(s.results)} feeds polled in {s.duration:.1f}s: {s.new_items} new items, "
              f"{s.hits} hits, {s.failed} failed")


@cli.command()
@click.option("--tick", default=10.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0.1), help="How often to look for due feeds.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option("--digest-retry", default=60.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=1),
              help="Wait before re-sending a digest that failed (x4 each time, then hourly).")
@click.pass_context
@handle_errors
def run(ctx: click.Context, tick: float, log_json: bool, digest_retry: float) -> None:
    """The daemon: poll feeds when due, send scheduled digests, prune; SIGTERM/SIGINT stop
    it cleanly, SIGHUP reloads feeds.yaml. Logs one line per poll (-v: debug)."""
    from monitor.daemon import Daemon, configure_logging

    root = ctx.find_root().params
    configure_logging(verbose=root["verbose"], quiet=root["quiet"], json_lines=log_json)
    obj: Monitor = ctx.obj
    sys.exit(Daemon(obj.config_path, obj.db_path, tick=tick, digest_retry=digest_retry).run())


# --- reports ---------------------------------------------------------------------------------

@cli.command()
@click.option("--topic", "topic_ids", multiple=True, metavar="ID", help="Only this topic.")
@click.option("--since", metavar="24h|DATE", help="Hits since (default: all).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def hits(obj: Monitor, topic_ids: tuple[str, ...], since: str | None, limit: int,
         as_json: bool) -> None:
    """Recent hits, one per story and topic, with why they matched."""
    rows = obj.hits(topic_ids, since, limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No hits" + (f" since {since}" if since else "") + ".")
        return
    for r in rows:
        out.print(f"[bold]{escape(r['title'] or '(no title)')}[/bold]")
        out.print(f"  {r['published_at']} · {len(r['feeds'])} source(s): "
                  f"{escape(', '.join(r['feeds']))}")
        if r["url"]:
            out.print(f"  {escape(r['url'])}")
        for topic_id, words in r["matched"].items():
            out.print(f"  [cyan]{topic_id}[/cyan]: {escape(', '.join(words))}")
        out.print(f"  {highlight(r['snippet'])}")
    out.print(f"{len(rows)} stories")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Per-feed health: last success, last error, items, next due; and the
    feeds of feeds.yaml added, removed or re-enabled.

    Example: monitor feeds add https://example.org/ --tag news
    """
    if ctx.invoked_subcommand is None:
        _feeds_report(ctx.obj, as_json)


def _feeds_report(obj: Monitor, as_json: bool) -> None:
    rows, daemon = obj.feeds_report()
    if as_json:
        for r in rows:
            r["tags"] = json.loads(r["tags"] or "[]")
        print_json({"feeds": rows, "daemon": daemon})
        return
    # The articles column only where article text is in use: a narrow terminal
    # has no room for an empty one.
    with_articles = any(_articles(r) != "-" for r in rows)
    table = _table("feed", "name", "state", "items", *(["articles"] if with_articles else []),
                   "last success", "next due", "last error")
    for r in rows:
        problem = "; ".join(p for p in (r["quota"], _error(r), _article_error(r)) if p)
        table.add_row(r["id"], escape(r["name"]), _state(r), str(r["items"]),
                      *([_articles(r)] if with_articles else []),
                      _ago(r["last_success_at"]), _next_due(r), escape(problem))
    out.print(table)
    if daemon:
        d = daemon
        state = "stopped" if d["stopped_at"] else "running"
        out.print(f"daemon: pid {d['pid']} on {d['host']}, {state}, started "
                  f"{_ago(d['started_at'])}, last tick {_ago(d['last_tick_at'])}")


def _articles(r: dict[str, Any]) -> str:
    a = r.get("articles") or {}
    if not (a.get("ok") or a.get("failed") or a.get("queued")):
        return "-"
    queued = f", {a['queued']} queued" if a.get("queued") else ""
    return f"{a['ok']} ok / {a['failed']} failed{queued}"


def _article_error(r: dict[str, Any]) -> str:
    failures = (r.get("articles") or {}).get("failures") or []
    return f"article: {failures[0]}" if failures else ""


@feeds.command("add")
@click.argument("url")
@click.option("--id", "feed_id", metavar="ID", help="Feed id (default: from the feed's title).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--name", metavar="NAME", help="Display name (default: the feed's title).")
@click.option("--interval", metavar="30m", help="Poll interval (default: settings.interval).")
@click.option("--language", metavar="xx", help="Language of its items when they say none.")
@click.pass_obj
@handle_errors
def feeds_add(obj: Monitor, url: str, feed_id: str | None, tags: tuple[str, ...],
              name: str | None, interval: str | None, language: str | None) -> None:
    """Fetch URL (a feed, or a page that links to one), check it is a feed, and
    add it at the end of feeds.yaml's feeds list, its comments kept. It is first
    polled by the next `monitor poll`, or by the daemon once reloaded (SIGHUP).
    """
    path, new_id, found = obj.add_feed(url, feed_id=feed_id, tags=tags, name=name,
                                       interval=interval, language=language)
    _print_added(path, new_id, found)


def _print_added(path: str, feed_id: str, found: FoundFeed) -> None:
    out.print(f"added feed [bold]{escape(feed_id)}[/bold] to {escape(path)}")
    out.print(f"  url: {escape(found.url)}"
              + (f" (found on {escape(found.page_url)})" if found.page_url else ""))
    out.print(f"  title: {escape(found.feed.title or '(none)')}")
    out.print(f"  items: {len(found.feed.entries)} in the feed now")
    for link in found.others:
        note = "" if link.readable else ", not read: JSON Feed"
        out.print(f"  also on the page: {escape(link.url)} ({escape(link.type)}{note})")
    out.print("Not polled yet: the next `monitor poll` fetches it; a running daemon "
              "picks it up once told to reload feeds.yaml (SIGHUP: `kill -HUP PID`, "
              "pid in `monitor status`).")


@feeds.command("import")
@click.argument("file", metavar="FILE.opml")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="A tag for every imported feed (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def feeds_import(obj: Monitor, file: str, tags: tuple[str, ...], dry_run: bool,
                 as_json: bool) -> None:
    """Add the feeds of an OPML subscription list to feeds.yaml (one write, its
    comments kept). Folders and categories become tags; feeds already in the
    config, repeats and non-http(s) URLs are skipped. Nothing is fetched now.
    """
    report = obj.import_opml(file, tags=tags, dry_run=dry_run)
    if as_json:
        print_json(report.as_json())
        return
    verb = "would import" if dry_run else "imported"
    out.print(f"{verb} {len(report.added)} feed(s)"
              + ("" if dry_run else f" into {escape(report.path)}")
              + f"; skipped {len(report.present)} already present, "
              f"{len(report.duplicates)} repeated in the file, {len(report.invalid)} invalid")
    for url, reason in report.invalid[:5]:
        out.print(f"  invalid: {escape(clean_short(url, 200))}: {escape(clean_short(reason, 200))}")
    if len(report.invalid) > 5:
        out.print(f"  ... and {len(report.invalid) - 5} more (--json lists them all)")
    if dry_run:
        for spec in report.added:
            out.print(f"  {escape(spec.id)}: {escape(spec.url)}")
    elif report.added:
        out.print("Not fetched yet: the next `monitor poll` fetches them; a running daemon "
                  "picks them up once told to reload feeds.yaml (SIGHUP).")


@feeds.command("export")
@click.option("--output", "-o", metavar="FILE", help="Write here (default: standard output).")
@click.pass_obj
@handle_errors
def feeds_export(obj: Monitor, output: str | None) -> None:
    """The configured feeds as OPML 2.0 (tags in each outline's category)."""
    data = obj.export_opml()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        with open(output, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write: {exc.strerror or exc}", param_hint="--output") from None
    err.print(f"wrote {len(obj.config.feeds)} feed(s) to {escape(output)}")


FEED_ID = click.argument("feed_id", metavar="ID")


@feeds.command("remove")
@FEED_ID
@click.pass_obj
@handle_errors
def feeds_remove(obj: Monitor, feed_id: str) -> None:
    """Remove feed ID from feeds.yaml (its comments and other lines kept). Its
    stored items stay in the database."""
    path, feed = obj.remove_feed(feed_id)
    out.print(f"removed feed [bold]{escape(feed_id)}[/bold] ({escape(feed.url)}) from "
              f"{escape(path)}")
    out.print("Items already stored stay in the database; after the next poll the feed "
              "shows as removed in `monitor feeds`. A running daemon stops polling it once "
              "told to reload feeds.yaml (SIGHUP).")


@feeds.command("enable")
@FEED_ID
@click.pass_obj
@handle_errors
def feeds_enable(obj: Monitor, feed_id: str) -> None:
    """Re-enable feed ID after it was disabled (HTTP 410 Gone): due now, its
    error count reset."""
    reason = obj.enable_feed(feed_id)
    if reason is None:
        out.print(f"feed {escape(feed_id)} is not disabled: nothing to do")
        return
    out.print(f"feed [bold]{escape(feed_id)}[/bold] enabled (it was disabled: "
              f"{escape(reason)}); it is due now: the next `monitor poll` (or the daemon's "
              "next tick) fetches it")


def _state(r: dict[str, Any]) -> str:
    state = r["state"]
    if state == "removed":
        return "[dim]removed[/dim]"
    if state == "disabled":
        return "[red]disabled[/red]"
    if state == "failing":
        return f"[red]failing ×{r['error_count']}[/red]"
    if r.get("quota"):
        return "[yellow]over quota[/yellow]"
    if state == "ok":
        return "[green]ok[/green]"
    return "new"


def _error(r: dict[str, Any]) -> str:
    if r["disabled_reason"]:
        since = f" (disabled {r['disabled_at'][:10]})" if r.get("disabled_at") else ""
        return f"{r['disabled_reason']}{since}"
    if r["last_error"]:
        return f"{r['last_error_kind']}: {r['last_error']} (since {r['failing_since']})"
    return ""


def _next_due(r: dict[str, Any]) -> str:
    if r["state"] == "disabled":
        return "never (disabled)"
    if r["state"] == "new" and r["next_due_at"] is None:
        return "now"
    return _ago(r["next_due_at"])


def _ago(iso: str | None) -> str:
    from monitor.store import from_iso

    when = from_iso(iso)
    if when is None:
        return "—"
    delta = (datetime.now(UTC) - when).total_seconds()
    word = "ago" if delta >= 0 else "from now"
    delta = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} {word}"
    return f"{int(delta)}s {word}"


# --- digest ----------------------------------------------------------------------------------

_DIGEST_FORMATS = ("text", "markdown", "html", "json")


@cli.command()
@click.option("--name", default="default", show_default=True, metavar="NAME",
              help="Digest name: by default a digest starts where the last recorded one of "
                   "its name (a scheduled digest of that id) ended.")
@click.option("--since", metavar="24h|DATE",
              help="Start: a date, or a duration before --until (default: the end of the "
                   "last recorded digest of this name, else 24h).")
@click.option("--until", metavar="DATE", help="End (default: now).")
@click.option("--topic", "topic_ids", multiple=True, metavar="ID",
              help="Only this topic (repeatable).")
@click.option("--format", "fmt", type=click.Choice(_DIGEST_FORMATS), default="text",
              show_default=True)
@click.option("--output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write to FILE (atomically) instead of standard output.")
@click.option("--email", "emails", multiple=True, metavar="ADDR",
              help="Mail it (text + HTML) to ADDR (repeatable); SMTP from MONITOR_SMTP_*.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0, 100000),
              help="Stories shown per topic (0: all); the counts cover every story.")
@click.option("--record", is_flag=True,
              help="Remember this digest as the last one of its name, as a scheduled digest "
                   "is: the next one starts where it ends (default: record nothing).")
@click.option("--no-record", is_flag=True, hidden=True,
              help="The default now; accepted for old scripts.")
@click.pass_obj
@handle_errors
def digest(obj: Monitor, name: str, since: str | None, until: str | None,
           topic_ids: tuple[str, ...], fmt: str, output: str | None, emails: tuple[str, ...],
           limit: int, record: bool, no_record: bool) -> None:
    """The report: new stories per topic, why they matched, and sources health.

    Example: monitor digest --since 24h --format html --output digest.html
    """
    if record and no_record:
        raise click.UsageError("--record and --no-record contradict each other")
    obj.digest(name=name, since=since, until=until, topic_ids=topic_ids, fmt=fmt, output=output,
               emails=emails, limit=limit, record=record,
               echo=lambda text: click.echo(text, nl=False),
               on_mailed=lambda to: err.print(f"digest mailed to {escape(', '.join(to))}"))


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def alerts(ctx: click.Context, as_json: bool) -> None:
    """Per alert of feeds.yaml: state, messages pending, last sent, failures, last error.

    Example: monitor alerts test desk
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.obj.alerts_report()
    if as_json:
        print_json({"alerts": rows})
        return
    table = _table("alert", "to", "state", "pending", "last sent", "failures", "last error")
    for r in rows:
        colour = {"ok": "green", "failing": "red"}.get(r["state"], "yellow")
        table.add_row(r["id"], escape(r["to"]), f"[{colour}]{r['state']}[/{colour}]",
                      str(r["pending"]), _ago(r["last_sent_at"]), str(r["failures"]),
                      escape(str(r["last_error"] or "")))
    out.print(table)


@alerts.command("test")
@click.argument("alert_id", metavar="ID")
@click.pass_obj
@handle_errors
def alerts_test(obj: Monitor, alert_id: str) -> None:
    """Send a sample message to alert ID's target (exit 1 if it fails)."""
    obj.alerts_test(alert_id)
    out.print(f"alert {escape(alert_id)}: test message sent")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback a login must be configured.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--hash-password", is_flag=True,
              help="Read a password on stdin, print its MONITOR_DESK_PASSWORD_HASH and exit.")
@click.pass_obj
@handle_errors
def serve(obj: Monitor, host: str, port: int, hash_password: bool) -> None:
    """The desk: web pages over the database (topics, stories, search, sources,
    triage, exports). Any address but loopback needs MONITOR_DESK_TOKEN or
    MONITOR_DESK_PASSWORD_HASH.

    Example: monitor serve --port 8080
    """
    from monitor.web import security

    if hash_password:
        click.echo(security.hash_password(click.prompt("password", hide_input=True,
                                                       confirmation_prompt=True)))
        return
    auth = security.DeskAuth.from_env()
    security.check_bind(host, auth)
    from monitor.web.app import desk_monitors
    from monitor.web.app import serve as run_desk

    config, db = obj.config_path, obj.db_path
    err.print(f"desk on http://{escape(host)}:{port}/"
              + (" (login required)" if auth.required else ""))
    run_desk(desk_monitors(config, db), host=host, port=port, auth=auth)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def status(obj: Monitor, as_json: bool) -> None:
    """The daemon's state: pid, start, last tick, next due feed, failing feeds, digests
    waiting to be sent. Safe to run while the daemon runs."""
    data = obj.status()
    if as_json:
        print_json(data)
        return
    d = data["daemon"] or {}
    colour = {"running": "green", "dead": "red"}.get(data["state"], "yellow")
    line = f"daemon: [{colour}]{data['state']}[/{colour}]"
    if d.get("pid"):
        line += (f", pid {d['pid']} on {escape(str(d['host']))}, started "
                 f"{_ago(d['started_at'])}, last tick {_ago(d['last_tick_at'])}")
    if d.get("stopped_at"):
        line += f", stopped {_ago(d['stopped_at'])}"
    out.print(line)
    nxt = data["next_due"]
    out.print(f"feeds: {data['feeds']} active, {data['failing']} failing, {data['disabled']} "
              f"disabled, {data['states']['new']} new; next due: "
              + (f"{nxt['id']} ({_ago(nxt['next_due_at']) if nxt['next_due_at'] else 'now'})"
                 if nxt else "—"))
    _print_feed_states(data["feed_states"])
    for p in data["pending_digests"]:
        out.print(f"[yellow]digest {p['digest_id']} not sent[/yellow] (since "
                  f"{_ago(p['scheduled_at'])}, {p['attempts']} failed attempts): "
                  f"{escape(str(p['last_error'] or 'in progress'))}; next attempt "
                  f"{_ago(p['next_attempt_at'])}")
    for a in data.get("alerts", []):
        if a["state"] == "failing":
            out.print(f"[red]alert {escape(a['id'])} failing[/red] (since "
                      f"{_ago(a['failing_since'])}, {a['failures']} failures, "
                      f"{a['pending']} pending): {escape(str(a['last_error']))}")
    if d.get("last_reload_error"):
        out.print(f"[red]last reload refused[/red] ({_ago(d['last_reload_at'])}): "
                  f"{escape(d['last_reload_error'])}")
    if d.get("last_maintenance_at"):
        out.print(f"maintenance: {_ago(d['last_maintenance_at'])}, {d['last_pruned']} items "
                  f"pruned; FTS index merged {_ago(d['last_optimize_at'])}")


def _print_feed_states(states: list[dict[str, Any]]) -> None:
    """`monitor status`: a line per failing or disabled feed, the new ones by id."""
    for f in states:
        name = escape(f["id"] if f["name"] == f["id"] else f"{f['id']} ({f['name']})")
        if f["state"] == "failing":
            out.print(f"  [red]failing[/red] {name}: {escape(str(f['error_kind']))}: "
                      f"{escape(str(f['error']))} (since {f['failing_since']})")
        elif f["state"] == "disabled":
            since = f" (disabled {f['disabled_at'][:10]})" if f["disabled_at"] else ""
            out.print(f"  [red]disabled[/red] {name}: {escape(str(f['disabled_reason']))}{since}")
    new = [f["id"] for f in states if f["state"] == "new"]
    if new:
        more = f" and {len(new) - 10} more" if len(new) > 10 else ""
        out.print(f"  new, not polled yet: {escape(', '.join(new[:10]))}{more}")


def highlight(snippet: str) -> str:
    """A stored snippet with its match markers shown bold, the rest escaped."""
    from monitor.query import segments

    return "".join(f"[bold yellow]{escape(text)}[/bold yellow]" if matched else escape(text)
                   for text, matched in segments(snippet))


def main() -> None:
    cli(prog_name="monitor")


if __name__ == "__main__":
    main()
