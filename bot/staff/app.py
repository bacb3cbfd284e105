"""The staff app's HTTP routes (Sanic), an entry point of the core like the tills' API: no Rasa inside.

Sessions, CSRF protection and login throttling are the agent console's:
signed cookies (:mod:`bot.console.sessions`, with a key of their own so a
console cookie is no staff cookie), writes only with the ``X-Staff: 1``
header from this origin, ``SameSite=Strict``, and the core's throttled
argon2 login. A store manager's numbers are always scoped to their store by
:func:`_scope`: any other store asked for is refused (403), on the page and
on every JSON or CSV endpoint alike.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import hashlib
import hmac
import io
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.console import sessions
from bot.settings import ConsoleSettings, load_console_settings, secret_bytes
from bot.staff import journeys, manage
from bot.web import client_address, json_body, same_origin
from loyalty import db
from loyalty.common import now_or
from loyalty.errors import InvalidInput, LoyaltyError, NotFound, Refused, Unavailable
from loyalty.outreach.report import Cohort
from loyalty.reports import outreach as journey_reports
from loyalty.reports import service as reports
from loyalty.staff import service as staff
from loyalty.staff.service import StaffView

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CHART_JS = HERE / "vendor" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
COOKIE = "staff_session"
SHANGHAI = timezone(timedelta(hours=8))
MAX_DAYS = 400
CHANNELS = ("wechat", "webchat", "pos", "online", "till", "shop")


class Forbidden(Refused):
    """Not for this account's role or store (403)."""

    http_status = 403


Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def _json(body: Any, status: int = 200) -> HTTPResponse:
    """A JSON answer; times (campaign windows) as ISO text."""
    return response.json(body, status=status, default=str)


def _error(code: str, status: int, message: str = "") -> HTTPResponse:
    return _json({"error": code, "message": message}, status=status)


def authed(write: bool = False) -> Callable[[Handler], Handler]:
    """A route for a logged-in staff member (401 otherwise); ``write`` also needs the app's header (403)."""
    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def inner(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            app: StaffApp = request.app.ctx.staff
            try:
                who = await app.who(request)
                if who is None:
                    return _error("unauthorized", 401)
                if write and (request.headers.get("x-staff") != "1" or not same_origin(request)):
                    return _error("forbidden", 403)
                return await fn(request, who, *args, **kwargs)
            except LoyaltyError as exc:
                return _json(exc.as_dict(), status=exc.http_status)

        return inner

    return wrap


def _day(raw: str | None, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("Dates are YYYY-MM-DD.", code="bad_date") from None


async def _scope(request: Request, who: StaffView) -> reports.Scope:
    """The scope of the figures asked for: days in Shanghai time, a store, a channel; a manager's own store only."""
    today = now_or(None).astimezone(SHANGHAI).date()
    first = _day(request.args.get("start"), today - timedelta(days=29))
    last = _day(request.args.get("end"), today)
    if last < first or (last - first).days > MAX_DAYS:
        raise InvalidInput(f"The range runs forward and spans at most {MAX_DAYS} days.", code="bad_range")
    store = (request.args.get("store") or "").strip().upper() or None
    if not who.all_stores:
        if store not in (None, who.store_code):
            raise Forbidden("Your account reads only your own store.", code="other_store")
        store = who.store_code
    store_id = await db.arun(manage.store_id, store, readonly=True) if store else None
    channel = (request.args.get("channel") or "").strip() or None
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", code="bad_channel")
    return reports.Scope.days(first, last, store_id, channel)


def _me(who: StaffView) -> dict[str, Any]:
    return {"username": who.username, "name": who.display_name, "role": who.role, "store": who.store_code,
            "all_stores": who.all_stores, "campaigns": who.may_manage_campaigns}


def _csv(rows: list[dict[str, Any]], name: str) -> HTTPResponse:
    out = io.StringIO()
    if rows:
        w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return response.text(out.getvalue(), content_type="text/csv; charset=utf-8",
                         headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


BOT_FIGURES = ("conversations", "contained", "containment", "bot_turns", "fallback_turns", "fallback_rate",
               "handoffs", "wait_p50_s", "wait_p90_s", "rated", "satisfaction", "bot_rated", "bot_satisfaction")


def bot_rows(b: dict[str, Any]) -> list[dict[str, Any]]:
    """The bot figure's table: the summary figures, then handoffs and their rate per reason."""
    rows = [{"figure": k, "value": b[k]} for k in BOT_FIGURES]
    rows += [{"figure": f"handoffs_{r}", "value": n} for r, n in b["by_reason"].items()]
    rows += [{"figure": f"handoff_rate_{r}", "value": v} for r, v in b["handoff_rate"].items()]
    return rows


SEGMENT_MOVE_FIGURES = {f"segment_moves_{d}{m}": (d, m) for d in ("lifecycle", "rfm") for m in ("", "_matrix")}


def segment_move_rows(figure: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Segment moves per dimension: per segment (first, moved in, moved out, net), or the from→to matrix
    (from empty: first assignment)."""
    dimension, matrix = SEGMENT_MOVE_FIGURES[figure]
    part = data["segment_moves"][dimension]
    if matrix:
        return [{"from": c["from"] or "", "to": c["to"], "members": c["members"]} for c in part["matrix"]]
    return list(part["segments"])


def table_rows(figure: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one figure's table (what the page shows under its chart and the CSV holds)."""
    if figure in SEGMENT_MOVE_FIGURES:
        return segment_move_rows(figure, data)
    if figure == "points":
        return [{"figure": k, "value": v} for k, v in data["points"].items()]
    if figure == "bot":
        return bot_rows(data["bot"])
    if figure == "not_understood":
        return list(data["bot"]["not_understood"])
    if figure == "qr_funnel":
        return list(data["qr_funnel"])
    if figure == "active_members":
        return [{"figure": "active_members", "value": data["active_members"]}]
    if figure not in ("new_members", "new_members_by_week", "segments", "sales_by_tier", "coupons", "conversations"):
        raise InvalidInput("No such figure.", code="unknown_figure")
    return list(data[figure])


class StaffApp:
    """The routes' shared state: the session key and the trusted proxies."""

    def __init__(self, cfg: ConsoleSettings) -> None:
        self.cfg = cfg
        # A key of its own: a console cookie signed with the console's key is not a staff cookie.
        self.secret = hmac.new(secret_bytes(cfg), b"staff-app-session", hashlib.sha256).digest()
        self.proxies = tuple(ipaddress.ip_network(n) for n in cfg.trusted_proxies)

    async def who(self, request: Request) -> StaffView | None:
        sess = sessions.read(request.cookies.get(COOKIE), self.secret)
        if sess is None:
            return None
        return await db.arun(staff.session_staff, sess.agent_id, sess.version, readonly=True)

    def set_cookie(self, resp: HTTPResponse, who: StaffView) -> None:
        resp.cookies[COOKIE] = sessions.issue(who.id, who.session_version, self.cfg.session_hours, self.secret)
        c = resp.cookies[COOKIE]
        c["httponly"] = True
        c["samesite"] = "Strict"
        c["path"] = "/staff"
        c["max-age"] = self.cfg.session_hours * 3600
        if self.cfg.cookie_secure:
            c["secure"] = True


async def page(request: Request) -> HTTPResponse:
    """The single page (a login form until a session exists; it holds no data)."""
    if not request.path.endswith("/"):
        return response.redirect(request.path + "/")  # its relative links need the slash
    return await response.file(str(STATIC / "index.html"), headers={
        "Cache-Control": "no-cache", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    })


async def chart_js(request: Request) -> HTTPResponse:
    if not CHART_JS.exists():
        return response.text("Run 'make staff-assets' (npm) for the charts.", status=503)
    return await response.file(str(CHART_JS), headers={"Cache-Control": "max-age=3600"})


async def login(request: Request) -> HTTPResponse:
    app: StaffApp = request.app.ctx.staff
    if request.headers.get("x-staff") != "1" or not same_origin(request):
        return _error("forbidden", 403)
    try:
        data = json_body(request)
        address = client_address(request.ip, request.headers.getall("x-forwarded-for", []), app.proxies)
        result = await asyncio.to_thread(staff.login, data.get("username"), data.get("password"), address=address)
    except InvalidInput as exc:
        return _json(exc.as_dict(), status=400)
    except Unavailable as exc:
        return _json(exc.as_dict(), status=503)
    if result.agent is None:
        if result.error == "locked":
            return _json({"error": "locked", "retry_after": result.retry_after}, status=429)
        return _error("bad_credentials", 401)
    who = await db.arun(staff.session_staff, result.agent.id, result.agent.session_version, readonly=True)
    if who is None:  # deactivated between the two transactions
        return _error("bad_credentials", 401)
    resp = _json({"me": _me(who)})
    app.set_cookie(resp, who)
    return resp


@authed(write=True)
async def logout(request: Request, who: StaffView) -> HTTPResponse:
    await db.arun(staff.end_sessions, who.id)
    resp = _json({"ok": True})
    del resp.cookies[COOKIE]
    return resp


@authed()
async def me(request: Request, who: StaffView) -> HTTPResponse:
    return _json(_me(who))


async def _figures(request: Request, who: StaffView) -> dict[str, Any]:
    sc = await _scope(request, who)
    return await db.arun(reports.dashboard, sc, now_or(None), readonly=True)


@authed()
async def dashboard(request: Request, who: StaffView) -> HTTPResponse:
    return _json(await _figures(request, who))


@authed()
async def figure_csv(request: Request, who: StaffView, name: str) -> HTTPResponse:
    """One figure's table as CSV: ``/api/dashboard/<figure>.csv``."""
    figure, dot, ext = name.partition(".")
    if not dot or ext != "csv":
        raise NotFound("No such figure.", code="unknown_figure")
    return _csv(table_rows(figure, await _figures(request, who)), figure)


@authed()
async def stores(request: Request, who: StaffView) -> HTTPResponse:
    rows = await db.arun(manage.stores, None if who.all_stores else who.store_code, readonly=True)
    return _json({"stores": rows})


@authed()
async def qr_sheet(request: Request, who: StaffView, code: str) -> HTTPResponse:
    code = code.upper()
    if not who.all_stores and code != who.store_code:
        raise Forbidden("Your account reads only your own store.", code="other_store")
    png = await manage.qr_sheet(code)
    return response.raw(png, content_type="image/png",
                        headers={"Content-Disposition": f'inline; filename="qr-{code}-A4.png"'})


def _campaigns_allowed(who: StaffView) -> None:
    if not who.may_manage_campaigns:
        raise Forbidden("Campaigns are for marketing and supervisors.", code="not_allowed")


@authed()
async def campaigns(request: Request, who: StaffView) -> HTTPResponse:
    return _json({"campaigns": await db.arun(manage.campaigns, readonly=True)})


@authed(write=True)
async def campaign_create(request: Request, who: StaffView) -> HTTPResponse:
    _campaigns_allowed(who)
    view = await db.arun(manage.create_campaign, json_body(request), actor=f"staff:{who.username}")
    return _json({"campaign": view}, status=201)


@authed(write=True)
async def campaign_edit(request: Request, who: StaffView, code: str) -> HTTPResponse:
    _campaigns_allowed(who)
    view = await db.arun(manage.edit_campaign, code, json_body(request), actor=f"staff:{who.username}")
    return _json({"campaign": view})


@authed(write=True)
async def campaign_state(request: Request, who: StaffView, code: str, act: str) -> HTTPResponse:
    _campaigns_allowed(who)
    view = await db.arun(manage.set_state, code, act, actor=f"staff:{who.username}")
    return _json({"campaign": view})


def _journeys_allowed(who: StaffView) -> None:
    """Journey figures are not split by store: a store manager gets none (refused before any query)."""
    if not who.may_manage_campaigns:
        raise Forbidden("Journeys and broadcasts are for marketing and supervisors.", code="not_allowed")


async def _cohort(request: Request, who: StaffView) -> Cohort:
    """Which members the journey figures cover: all since each journey began, or those whose latest send
    falls in the days asked for (``start``, ``end``, as the dashboard's), of a store."""
    dated = bool(request.args.get("start") or request.args.get("end"))
    if not dated and not request.args.get("store"):
        return Cohort()
    sc = await _scope(request, who)
    return Cohort(sc.start if dated else None, sc.end if dated else None, sc.store_id)


@authed()
async def journey_list(request: Request, who: StaffView) -> HTTPResponse:
    _journeys_allowed(who)
    tab = await db.arun(journey_reports.journey_tab, cohort=await _cohort(request, who), readonly=True)
    return _json({**tab, "definitions": journey_reports.definitions(), "as_of": now_or(None).isoformat()})


@authed()
async def journey_csv(request: Request, who: StaffView) -> HTTPResponse:
    _journeys_allowed(who)
    rows = await db.arun(journey_reports.journey_rows, cohort=await _cohort(request, who), readonly=True)
    return _csv(rows, "journeys")


@authed()
async def journey_preview(request: Request, who: StaffView, name: str) -> HTTPResponse:
    _journeys_allowed(who)
    # Sanic hands path parameters over still quoted ("broadcast%3ACODE").
    return _json({"preview": await db.arun(journey_reports.preview_journey, unquote(name), readonly=True)})


@authed(write=True)
async def journey_switch(request: Request, who: StaffView, name: str, act: str) -> HTTPResponse:
    _journeys_allowed(who)
    if act not in ("pause", "resume"):
        raise NotFound("No such act.", code="unknown_act")
    row = await db.arun(journey_reports.set_paused, unquote(name), act == "pause", actor=f"staff:{who.username}")
    return _json({"journey": row})


@authed()
async def copy_show(request: Request, who: StaffView, name: str) -> HTTPResponse:
    """A journey's steps (or a broadcast's message) with their copy now and in code."""
    _journeys_allowed(who)
    return _json(await db.arun(journey_reports.journey_copy, unquote(name), readonly=True))


def _copy_form(request: Request) -> dict[str, Any]:
    body = json_body(request)
    step = body.get("step")
    if not isinstance(step, str) or not step:
        raise InvalidInput("step is required.", code="invalid_copy", field="step")
    return {"step": step, "text_zh": body.get("text_zh"), "text_en": body.get("text_en")}


@authed(write=True)
async def copy_preview(request: Request, who: StaffView, name: str) -> HTTPResponse:
    """Copy rendered as a member would read it; nothing is saved."""
    _journeys_allowed(who)
    form = _copy_form(request)
    return _json({"preview": await db.arun(journey_reports.preview_copy, unquote(name), form["step"],
                                           form["text_zh"], form["text_en"], actor=f"staff:{who.username}")})


@authed(write=True)
async def copy_save(request: Request, who: StaffView, name: str) -> HTTPResponse:
    """Save a step's copy; ``{"step": …, "reset": true}`` brings the code's copy back."""
    _journeys_allowed(who)
    form = _copy_form(request)
    reset = json_body(request).get("reset") is True
    return _json(await db.arun(journey_reports.save_copy, unquote(name), form["step"], form["text_zh"],
                               form["text_en"], actor=f"staff:{who.username}", reset=reset))


@authed(write=True)
async def broadcast_preview(request: Request, who: StaffView) -> HTTPResponse:
    """A draft broadcast's audience, control and rendered message; nothing is saved."""
    _journeys_allowed(who)
    return _json({"preview": await db.arun(journeys.preview, json_body(request), actor=f"staff:{who.username}")})


@authed(write=True)
async def broadcast_create(request: Request, who: StaffView) -> HTTPResponse:
    _journeys_allowed(who)
    view = await db.arun(journeys.create, json_body(request), actor=f"staff:{who.username}")
    return _json({"broadcast": view}, status=201)


@authed()
async def review_list(request: Request, who: StaffView) -> HTTPResponse:
    return _json({"messages": await db.arun(manage.review_list, readonly=True)})


@authed(write=True)
async def review_pick(request: Request, who: StaffView, mid: int) -> HTTPResponse:
    data = json_body(request)
    item = await db.arun(manage.review_pick, mid, data.get("intent"), by=f"staff:{who.username}")
    return _json({"message": item})


@authed()
async def review_export(request: Request, who: StaffView) -> HTTPResponse:
    text = await db.arun(manage.review_export, readonly=True)
    return response.text(text, content_type="text/yaml; charset=utf-8",
                         headers={"Content-Disposition": 'attachment; filename="nlu_reviewed.yml"'})


async def health(request: Request) -> HTTPResponse:
    return _json({"ok": True})


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/staff/", page),
    ("GET", "/staff/static/chart.js", chart_js),
    ("POST", "/staff/api/login", login),
    ("POST", "/staff/api/logout", logout),
    ("GET", "/staff/api/me", me),
    ("GET", "/staff/api/dashboard", dashboard),
    ("GET", "/staff/api/dashboard/<name:str>", figure_csv),
    ("GET", "/staff/api/stores", stores),
    ("GET", "/staff/api/stores/<code:str>/qr-sheet.png", qr_sheet),
    ("GET", "/staff/api/campaigns", campaigns),
    ("POST", "/staff/api/campaigns", campaign_create),
    ("POST", "/staff/api/campaigns/<code:str>", campaign_edit),
    ("POST", "/staff/api/campaigns/<code:str>/<act:str>", campaign_state),
    ("GET", "/staff/api/journeys", journey_list),
    ("GET", "/staff/api/journeys.csv", journey_csv),
    ("GET", "/staff/api/journeys/<name:str>/preview", journey_preview),
    ("POST", "/staff/api/journeys/<name:str>/<act:str>", journey_switch),
    ("GET", "/staff/api/copy/<name:str>", copy_show),
    ("POST", "/staff/api/copy/<name:str>", copy_save),
    ("POST", "/staff/api/copy/<name:str>/preview", copy_preview),
    ("POST", "/staff/api/broadcasts/preview", broadcast_preview),
    ("POST", "/staff/api/broadcasts", broadcast_create),
    ("GET", "/staff/api/review", review_list),
    ("POST", "/staff/api/review/<mid:int>", review_pick),
    ("GET", "/staff/api/review/export.yml", review_export),
)


def create_app(cfg: ConsoleSettings | None = None, name: str = "loyalty_staff") -> Sanic:
    """The staff app (its session settings are the console's: CONSOLE_SECRET, cookie and proxies)."""
    app = Sanic(name, configure_logging=False)
    app.ctx.staff = StaffApp(cfg or load_console_settings())
    app.config.REQUEST_MAX_SIZE = 64 * 1024
    app.config.FALLBACK_ERROR_FORMAT = "json"
    for method, path, handler in ROUTES:
        app.add_route(handler, path, methods=[method], name=handler.__name__)
    app.add_route(health, "/staff/health", methods=["GET"], name="health")
    app.static("/staff/static", str(STATIC), name="staff_static")
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.staff --host 127.0.0.1 --port 5010``."""
    p = argparse.ArgumentParser(prog="python -m bot.staff", description="The staff web app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5010)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    create_app().run(host=a.host, port=a.port, access_log=False, motd=False)
