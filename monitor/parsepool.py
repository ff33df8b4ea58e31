"""Parsing feed bodies in worker processes, beside the process that fetches
and stores.

One poll cycle is CPU-bound in one Python process: the event loop fetching,
and one ingest thread parsing, matching and committing, all under one GIL.
Parsing is most of that work and needs nothing but the body, so a pool of
worker processes does it while the main process keeps downloading and
committing: on two cores the cycle uses both.

What crosses the process boundary is plain data (the body and its headers
in, a ParsedFeed or an error's kind and message out), so nothing depends on
exceptions pickling. A worker that dies (a crash in a C library on a hostile
body, the OOM killer) costs only the feed it was parsing, reported as a parse
failure; the pool is rebuilt for the next feed. The pool is used only when a
cycle has enough bodies to repay starting it (see worth_a_pool() and MIN_FEEDS),
and for any body too large to parse in-process under the parse budget
(see inline_limit()).

Each parse has a wall-clock budget (settings.parse_timeout), counted from
when a worker starts it: at most one parse per worker is in flight, and
workers are started before the clock runs. A worker that overruns is killed
(a regex deep in C cannot be interrupted any other way) and its feed fails
with kind "parse-timeout"; the other feeds that pool held are retried alone,
as when a worker dies.

Owns: the worker processes and their lifetime. Parsing itself is
monitor.parse's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from monitor.errors import ParseError
from monitor.language import load, with_languages
from monitor.parse import parse_feed
from monitor.types import FailureKind, FetchResult, ParsedFeed

__all__ = ["MIN_FEEDS", "ParsePool", "worth_a_pool"]

log = logging.getLogger("monitor.parsepool")

# Starting workers costs ~0.3 s: a cycle with fewer due feeds never does,
# and a larger one parses its first MIN_FEEDS bodies in the ingest thread
# and starts them only for the bodies after those (see monitor.poll).
MIN_FEEDS = 40

_Outcome = tuple[ParsedFeed | None, FailureKind | None, str | None]  # (parsed, error kind, message)
_WATCH_SECONDS = 0.5
# In-process parsing cannot be interrupted, so only bodies it parses well
# within any budget stay there: after monitor.parse's caps the slowest known
# bodies parse at about 2 MB/s; this assumes half that, and at most 512 KiB.
_INLINE_MAX = 512 * 1024
_WORST_BYTES_PER_SECOND = 1_000_000
_Args = tuple[bytes, str, tuple[tuple[str, str], ...], datetime, int, str | None, bool]


def worth_a_pool(feeds: int, setting: int | None = None) -> int:
    """How many worker processes a cycle of ``feeds`` feeds should use: none
    for a small cycle; else ``setting`` (settings.parse_workers) when given,
    and by default none on one core, else one per core, at most 4: the main
    process's fetching and storing wait on the parsing, so a core shared
    with it is still mostly a worker's (300 real feeds, 2 cores, run in
    turn: first poll 10.8 and 9.8 s with one worker, 7.2 and 7.4 s with two)."""
    if feeds < MIN_FEEDS or setting == 0:
        return 0
    if setting is not None:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not cores or cores < 2:
        return 0
    return min(4, cores)


def inline_limit(parse_timeout: float) -> int:
    """The largest body the ingest thread parses itself under ``parse_timeout``;
    larger ones go to a worker process, which the budget can kill."""
    return max(0, min(_INLINE_MAX, int(parse_timeout * _WORST_BYTES_PER_SECOND)))


def _noop() -> None:
    """Runs in a worker: proves it is up before a timed parse is sent."""


def _kill(pool: ProcessPoolExecutor) -> list[int]:
    """SIGKILL every worker of ``pool``; their pids."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):  # already gone
            process.kill()
    return [int(pid) for pid in processes]


def _start_worker(pid: int, languages: bool) -> None:
    """Runs in each worker as it starts, before any timed parse."""
    _watch_parent(pid)
    if languages:
        # Here, not at the first detection: the pool waits for its workers
        # to be up before any parse's budget runs (see _warm).
        load()


def _watch_parent(pid: int) -> None:
    """Runs in each worker: exit once the process that started the pool is
    gone. A worker's parent is the forkserver, which outlives a SIGKILLed
    poller, and a worker blocked writing a result nobody reads would stay
    forever (with its forkserver) next to a daemon restarted without a cgroup."""

    def watch() -> None:
        while True:  # ends with the process
            time.sleep(_WATCH_SECONDS)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # alive, under another user (not ours to signal)
                pass

    threading.Thread(target=watch, name="monitor-parent-watch", daemon=True).start()


def _parse(body: bytes, url: str, headers: tuple[tuple[str, str], ...], fetched_at: datetime,
           max_items: int, language: str | None = None, detect: bool = False) -> _Outcome:
    """Runs in a worker: parse one body, errors as plain data; with
    ``detect``, entries without a language get one detected (with_languages)."""
    try:
        parsed = parse_feed(body, url=url, headers=headers, fetched_at=fetched_at,
                            max_items=max_items, language=language)
    except ParseError as exc:
        return None, exc.kind, exc.message
    if detect:
        parsed = dataclasses.replace(parsed, entries=tuple(with_languages(parsed.entries)))
    return parsed, None, None


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_main() -> Iterator[None]:
    """Start worker processes without the calling program's __main__.

    A new process under forkserver re-imports the parent's main script
    (as __mp_main__) unless the script was run with -m. For the `monitor`
    console script that costs every worker the CLI's imports; for a script
    that calls run_poll without an ``if __name__ == "__main__"`` guard it
    re-runs the script in each worker, and every feed would fail. Workers need
    nothing from __main__, so while they start, there is none to import."""
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class ParsePool:
    """Worker processes parsing bodies; use as ``with``, await parse().

    With ``languages``, the workers also detect the language of the entries
    that have none (monitor.language.with_languages): the model then lives
    in the workers, loaded as they start, and that CPU is off the main
    process, which fetches, matches and stores under one GIL."""

    def __init__(self, workers: int, *, languages: bool = False) -> None:
        self.workers = workers
        self.languages = languages
        self._pool: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()  # one retry alone at a time
        self._start = asyncio.Lock()  # one pool start at a time
        self._slots = asyncio.Semaphore(workers)  # one parse per worker

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bind(self) -> None:
        """asyncio primitives belong to one loop, and a daemon runs a loop per cycle."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._lock, self._start = asyncio.Lock(), asyncio.Lock()
            self._slots = asyncio.Semaphore(self.workers)

    async def _executor(self) -> ProcessPoolExecutor:
        async with self._start:
            if self._pool is None:
                pool = _new_executor(self.workers, self.languages)
                # Every worker up before any timed parse: starting one can take
                # longer than a whole budget on a loaded machine.
                try:
                    await _warm(pool, self.workers)
                except BaseException:  # cancelled, or a worker died starting
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                self._pool = pool
            return self._pool

    async def parse(self, fetched: FetchResult, *, max_items: int,
                    timeout: float | None = None, language: str | None = None) -> ParsedFeed:
        """``fetched.body`` parsed in a worker; raises ParseError as
        parse_feed() would, ParseError("parse") when it kills its worker and
        ParseError("parse-timeout") when it takes longer than ``timeout`` seconds."""
        assert fetched.body is not None
        self._bind()
        args: _Args = (fetched.body, fetched.final_url, fetched.headers, fetched.fetched_at,
                       max_items, language, self.languages)
        try:
            async with self._slots:
                pool = await self._executor()
                outcome = await self._timed(pool, args, timeout)
                if outcome is None:
                    if self._pool is pool:
                        self._pool = None
                    pids = _kill(pool)
                    pool.shutdown(wait=False, cancel_futures=True)
                    log.warning("feed %s: parsing took longer than %gs; parser process(es) %s "
                                "killed", fetched.feed_id, timeout, pids)
                    outcome = _overrun(timeout)
        except BrokenProcessPool:
            # Every feed in flight sees the break, not only the one that caused
            # it: each is retried alone in a process of its own.
            if self._reset():
                log.warning("a parser process died; the feeds it held are retried alone")
            log.info("feed %s: retried alone after a parser process died", fetched.feed_id)
            outcome = await self._alone(fetched, args, timeout)
        parsed, kind, message = outcome
        if parsed is None:
            raise ParseError(message or "unparseable", kind=kind or "parse",
                             url=fetched.final_url)
        return parsed

    async def _timed(self, pool: ProcessPoolExecutor, args: _Args,
                     timeout: float | None) -> _Outcome | None:
        """The worker's outcome, or None when it overran ``timeout``."""
        with _no_main():
            work = asyncio.get_running_loop().run_in_executor(pool, _parse, *args)
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            return None

    async def _alone(self, fetched: FetchResult, args: _Args,
                     timeout: float | None) -> _Outcome:
        async with self._lock:
            single = _new_executor(1, self.languages)
            try:
                await _warm(single, 1)
                outcome = await self._timed(single, args, timeout)
                if outcome is None:
                    _kill(single)
                    log.warning("feed %s: parsing took longer than %gs; its parser process "
                                "was killed", fetched.feed_id, timeout)
                    return _overrun(timeout)
                return outcome
            except BrokenProcessPool:
                log.error("feed %s: the parser process died on this body", fetched.feed_id)
                return None, "parse", "the parser process died on this body"
            finally:
                single.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        """The worker processes alive now (for status and for tests)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [int(pid) for pid in processes]

    def _reset(self) -> bool:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return pool is not None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _overrun(timeout: float | None) -> _Outcome:
    return None, "parse-timeout", f"parsing took longer than {timeout:g} s (settings.parse_timeout)"


def _new_executor(workers: int, languages: bool = False) -> ProcessPoolExecutor:
    # forkserver: workers never inherit the daemon's threads or open
    # database connections, and start from a process that has already
    # imported the parser.
    ctx = multiprocessing.get_context("forkserver")
    # The server starts once per process, with the preload of the first pool.
    ctx.set_forkserver_preload(["monitor.parsepool", *(["monitor.langpreload"] if languages else [])])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker,
                               initargs=(os.getpid(), languages))


async def _warm(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start ``workers`` processes (the executor starts one per task waiting
    while none is idle) and wait until each has run a task. The tasks are
    submitted from a thread of their own: submit() starts the processes, and
    the first start waits for the forkserver to import the parser (~0.2 s
    here), which on the event loop's thread stalled every download in flight."""

    def submit() -> list[Future[None]]:
        with _no_main():
            return [pool.submit(_noop) for _ in range(workers)]

    started = await asyncio.to_thread(submit)
    await asyncio.gather(*map(asyncio.wrap_future, started))
