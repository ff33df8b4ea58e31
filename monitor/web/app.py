"""The desk's Starlette application: ``create_app(monitor_factory, auth)``.

Each request gets a Monitor of its own from ``monitor_factory`` (a Store is
not shared between threads) and closes it. Pages are Jinja2 templates with
autoescape on; the only writes are triage verdicts and, on confirmation, a
no_match example added to feeds.yaml. Every POST carries the session's CSRF
token (a HttpOnly, SameSite=Strict cookie, echoed in the form).
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from monitor import health
from monitor.digest.model import safe_url
from monitor.errors import ConfigError, MonitorError, QueryError, UsageError
from monitor.query import segments
from monitor.web import export
from monitor.web.security import CSRF_COOKIE, SESSION_COOKIE, DeskAuth, SecurityHeaders, csrf_ok

if TYPE_CHECKING:
    from monitor.app import Monitor

HERE = Path(__file__).resolve().parent
PAGE = 50  # stories per page of a topic
PERIODS = ("24h", "7d", "30d", "90d")
STATES = ("all", "unreviewed", "relevant", "not_relevant", "starred")
ACTIONS = ("relevant", "not_relevant", "clear", "star", "unstar", "note")

Handler = Callable[[Request], Awaitable[Response]]


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["segments"] = segments
    env.filters["when"] = lambda dt: dt.strftime("%Y-%m-%d %H:%M") if dt else "—"
    env.filters["iso_when"] = lambda s: (s or "—")[:16].replace("T", " ")
    env.globals["feed_state"] = health.feed_state
    env.globals["feed_name"] = health.feed_name
    return env


def _period(value: str | None) -> tuple[str, datetime, datetime]:
    from monitor.app import parse_since

    name = value if value in PERIODS else "7d"
    # The store keeps whole seconds: a hit of this very second is in the period.
    until = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    return name, parse_since(name) or until - timedelta(days=7), until


def _local(url: str | None) -> str:
    """A redirect target of our own: a path, never another site."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


def create_app(monitor_factory: Callable[[], Monitor], auth: DeskAuth | None = None, *,
               page_size: int = PAGE) -> Starlette:
    auth = auth or DeskAuth()
    env = _environment()

    @contextmanager
    def monitor() -> Iterator[Monitor]:
        m = monitor_factory()
        try:
            yield m
        finally:
            m.close()

    def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        html = env.get_template(name).render(request=request, csrf=token, path=request.url.path,
                                             login=auth.required, **context)
        response = HTMLResponse(html, status_code=status)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
        return response

    def error(request: Request, status: int, message: str) -> Response:
        return render(request, "error.html", status=status, message=message)

    def page(fn: Callable[[Request], Response]) -> Handler:
        """A GET page: login required when configured, our errors as pages."""
        async def handler(request: Request) -> Response:
            if auth.required and not auth.valid(request.cookies.get(SESSION_COOKIE)):
                return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
            try:
                return await run_in_threadpool(fn, request)
            except QueryError as exc:
                return error(request, 400, f"invalid query: {exc}")
            except ConfigError as exc:
                return error(request, 404 if "topic" in exc.context else 400, str(exc))
            except UsageError as exc:
                return error(request, 404, exc.message)
            except MonitorError as exc:
                return error(request, 500, str(exc))
        return handler

    def post(fn: Callable[[Request, dict[str, str]], Response], *,
             login: bool = True) -> Handler:
        """A POST: the CSRF token of the session's cookie must come in the form."""
        async def handler(request: Request) -> Response:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
                return error(request, 403, "the form's CSRF token is missing or wrong; "
                                           "reload the page and try again")
            if login and auth.required and not auth.valid(request.cookies.get(SESSION_COOKIE)):
                return error(request, 403, "log in first")
            inner = page(lambda r: fn(r, form))
            if not login:
                return await run_in_threadpool(fn, request, form)
            return await inner(request)
        return handler

    # --- pages ---------------------------------------------------------------------------

    def overview(request: Request) -> Response:
        with monitor() as m:
            topics = m.desk_overview(datetime.now(UTC))
        return render(request, "overview.html", topics=topics,
                      top=max([1, *(max(t["volume"]) for t in topics)]))

    def topic(request: Request) -> Response:
        q = request.query_params
        name, since, until = _period(q.get("period"))
        state = str(q.get("state")) if q.get("state") in STATES else "all"
        with monitor() as m:
            data = m.desk_topic(request.path_params["topic_id"], since, until)
        section, langs, verdicts = data["section"], data["languages"], data["verdicts"]
        stories = [s for s in section.stories if _keep(s, q, state, langs, verdicts)]
        after = q.get("after")
        start = next((i + 1 for i, s in enumerate(stories) if s.key == after), 0)
        shown = stories[start:start + page_size]
        more = start + page_size < len(stories)
        params = {k: v for k, v in q.items() if k != "after"}
        next_url = (request.url.path + "?" + urlencode({**params, "after": shown[-1].key})
                    if more and shown else None)
        feeds = sorted({link.feed_id for s in section.stories for link in s.links})
        languages = sorted({lang for v in langs.values() for lang in v})
        return render(request, "topic.html", t=data["topic"], section=section, stories=shown,
                      total=len(stories), langs=langs, verdicts=verdicts,
                      precision=data["precision"], period=name, periods=PERIODS, state=state,
                      states=STATES, feeds=feeds, languages=languages, q=q, next_url=next_url,
                      query=urlencode({"period": name}), here=str(request.url.path) + (
                          "?" + str(request.url.query) if request.url.query else ""))

    def story(request: Request) -> Response:
        key = request.query_params.get("key", "")
        with monitor() as m:
            data = m.desk_story(key)
            names = {t.id: t.name for t in m.config.topics}
        if not data["items"]:
            return error(request, 404, "no such story")
        for item in data["items"]:
            item["safe_url"] = safe_url(item["url"])
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for e in data["evidence"]:
            by_topic.setdefault(e["topic_id"], []).append(e)
        return render(request, "story.html", key=key, items=data["items"], evidence=by_topic,
                      verdicts=data["verdicts"], names=names,
                      here=f"/story?{urlencode({'key': key})}")

    def search(request: Request) -> Response:
        text = request.query_params.get("q", "").strip()
        reading, results = None, []
        if text:
            with monitor() as m:
                reading = m.search_reading(text)
                results = m.search(reading, limit=50)
        for r in results:
            r["safe_url"] = safe_url(r["url"])
        return render(request, "search.html", text=text, reading=reading, results=results)

    def sources(request: Request) -> Response:
        with monitor() as m:
            rows, _ = m.feeds_report()
            silent = m.silent_feeds(datetime.now(UTC))
        for r in rows:
            r["desk_state"] = "silent" if r["id"] in silent else health.feed_state(r)
        rows.sort(key=_source_order)
        return render(request, "sources.html", rows=rows)

    # --- exports -------------------------------------------------------------------------

    def _export_data(request: Request) -> tuple[dict[str, Any], datetime, datetime]:
        _, since, until = _period(request.query_params.get("period"))
        with monitor() as m:
            return m.desk_topic(request.path_params["topic_id"], since, until), since, until

    def export_csv(request: Request) -> Response:
        data, _, _ = _export_data(request)
        body = export.to_csv(export.rows(data["section"].stories, data["languages"],
                                         data["verdicts"]))
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="{data["topic"].id}.csv"'})

    def export_json(request: Request) -> Response:
        data, since, until = _export_data(request)
        rows = export.rows(data["section"].stories, data["languages"], data["verdicts"])
        return Response(export.to_json(data["topic"].id, since, until, rows),
                        media_type="application/json")

    def atom(request: Request) -> Response:
        data, _, until = _export_data(request)
        base = str(request.base_url).rstrip("/")
        body = export.to_atom(data["section"], self_url=str(request.url),
                              page_url=f"{base}/topic/{data['topic'].id}", updated=until)
        return Response(body, media_type="application/atom+xml")

    # --- writes --------------------------------------------------------------------------

    def triage(request: Request, form: dict[str, str]) -> Response:
        action, key, topic_id = form.get("action", ""), form.get("key", ""), form.get("topic", "")
        back = _local(form.get("next"))
        if action not in ACTIONS:
            return error(request, 400, "unknown action")
        choices: dict[str, dict[str, Any]] = {
            "relevant": {"verdict": "relevant"}, "not_relevant": {"verdict": "not_relevant"},
            "clear": {"clear": True}, "star": {"starred": True}, "unstar": {"starred": False},
            "note": {"note": form.get("note", "")[:2000]}}
        fields = choices[action]
        with monitor() as m:
            m.set_verdict(key, topic_id, **fields)
        if action == "not_relevant":
            return RedirectResponse("/propose?" + urlencode(
                {"topic": topic_id, "key": key, "next": back}), 303)
        return RedirectResponse(back, 303)

    def _example(m: Monitor, key: str) -> str:
        items = m.desk_story(key)["items"]
        if not items:
            raise UsageError("no such story", param_hint="story")
        return str(items[0]["title"] or "")

    def propose(request: Request) -> Response:
        q = request.query_params
        topic_id, key = q.get("topic", ""), q.get("key", "")
        with monitor() as m:
            m.config.topic(topic_id)
            text = _example(m, key)
            try:
                old, new = m.propose_no_match(topic_id, text)
                diff, problem = "".join(difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), "feeds.yaml", "feeds.yaml")), None
            except ConfigError as exc:
                diff, problem = "", str(exc)
        return render(request, "propose.html", topic_id=topic_id, key=key, text=text,
                      diff=diff, problem=problem, back=_local(q.get("next")))

    def propose_confirm(request: Request, form: dict[str, str]) -> Response:
        topic_id, key = form.get("topic", ""), form.get("key", "")
        with monitor() as m:
            m.add_no_match(topic_id, _example(m, key))
        return RedirectResponse(_local(form.get("next")), 303)

    # --- login ---------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        return render(request, "login.html", next=_local(request.query_params.get("next")),
                      failed=False)

    def login(request: Request, form: dict[str, str]) -> Response:
        client = request.client.host if request.client else "?"
        if auth.limited(client):
            return render(request, "login.html", status=429, next=_local(form.get("next")),
                          failed=True, limited=True)
        session = auth.login(client, form.get("secret", ""))
        if session is None:
            return render(request, "login.html", status=401, next=_local(form.get("next")),
                          failed=True, limited=False)
        response = RedirectResponse(_local(form.get("next")), 303)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    routes = [
        Route("/", page(overview)),
        Route("/topic/{topic_id}", page(topic)),
        Route("/topic/{topic_id}/export.csv", page(export_csv)),
        Route("/topic/{topic_id}/export.json", page(export_json)),
        Route("/topic/{topic_id}/atom.xml", page(atom)),
        Route("/story", page(story)),
        Route("/search", page(search)),
        Route("/sources", page(sources)),
        Route("/triage", post(triage), methods=["POST"]),
        Route("/propose", page(propose)),
        Route("/propose", post(propose_confirm), methods=["POST"]),
        Route("/login", login_page),
        Route("/login", post(login, login=False), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    return app


def _keep(s: Any, q: Any, state: str, langs: dict[str, tuple[str, ...]],
          verdicts: dict[str, dict[str, Any]]) -> bool:
    if q.get("feed") and q.get("feed") not in s.feeds:
        return False
    if q.get("language") and q.get("language") not in langs.get(s.key, ()):
        return False
    v = verdicts.get(s.key, {})
    if state == "unreviewed":
        return v.get("verdict") is None
    if state == "starred":
        return bool(v.get("starred"))
    if state in ("relevant", "not_relevant"):
        return bool(v.get("verdict") == state)
    return True


def _source_order(row: dict[str, Any]) -> tuple[int, str, str]:
    """Failing first, then silent (the longest quiet first), disabled, the rest."""
    rank = {"failing": 0, "silent": 1, "disabled": 2, "ok": 3}.get(row["desk_state"], 4)
    return rank, row.get("last_new_item_at") or "", str(row.get("id"))


def desk_monitors(config_path: str, db_path: str) -> Callable[[], Monitor]:
    """The desk's Monitor per request, sharing one feeds.yaml cache per
    process: a page reads the file again only after it changed."""
    from monitor.app import open_monitor
    from monitor.config import CachedConfig

    cache = CachedConfig()
    return lambda: open_monitor(config_path, db_path, load=cache)


def serve(monitor_factory: Callable[[], Monitor], *, host: str, port: int,
          auth: DeskAuth) -> None:
    import uvicorn

    uvicorn.run(create_app(monitor_factory, auth), host=host, port=port, log_level="info",
                server_header=False, proxy_headers=False)
