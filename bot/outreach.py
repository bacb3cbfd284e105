"""The outreach scheduler process: plans what is due and delivers it on WeChat, web chat and SMS.

``python -m bot.outreach`` (started and supervised by bot/launcher.py). Several
may run at once: on PostgreSQL they claim sends with ``FOR UPDATE SKIP LOCKED``.

WeChat's rules (see docs/outreach.md): a customer-service message only inside
the shopper's 48-hour window and its quota, counted in the same keys as the
conversation (bot/wechat/shoppers.py, shared through WECHAT_REDIS_URL; without
Redis this process cannot see the window and treats it as closed); outside it
a template message for a service notice, or a subscription message (订阅通知)
when the member holds a one-time credit, spent by the core with the send's
record. Marketing never goes as a template message.

It also rebuilds the staff dashboard's pre-aggregated tables every
REPORTS_REFRESH_SECONDS (default 600; 0 turns it off), see loyalty/reports/rollup.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from typing import Any

import redis
from wechatpy.exceptions import WeChatClientException

from bot.settings import WeChatSettings, load_wechat_settings
from bot.webchat.hub import CHANNEL as WEBCHAT_PUSH
from bot.wechat.client import WeChatApi
from loyalty import db
from loyalty.outreach import delivery, outcomes
from loyalty.outreach import service as svc
from loyalty.outreach.delivery import Outgoing, Result, Route
from loyalty.outreach.journeys import SERVICE
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings
from loyalty.reports import rollup
from loyalty.sms.service import gateway

log = logging.getLogger(__name__)

# Subscription-message values are "thing" fields: at most 20 characters.
THING_MAX = 20


class CsWindow:
    """The 48-hour customer-service window and its quota, read from the channel's shared keys."""

    def __init__(self, redis_url: str | None, settings: WeChatSettings, prefix: str = "wechat:") -> None:
        self._r = redis.Redis.from_url(redis_url, decode_responses=True) if redis_url else None
        self._s = settings
        self._p = prefix

    def take(self, openid: str) -> bool:
        """Count one customer-service message if the window is open with quota left."""
        if self._r is None:
            return False
        allow = self._r.get(f"{self._p}cs:allow:{openid}")
        if allow is None:
            return False
        used = self._r.incr(f"{self._p}cs:used:{openid}")
        if used == 1:
            self._r.expire(f"{self._p}cs:used:{openid}", self._s.cs_window_message)
        return int(used) <= int(allow)


class WeChatTransport:
    channel = "wechat"

    def __init__(self, api: WeChatApi, window: CsWindow, cfg: OutreachSettings) -> None:
        self._client = api.blocking
        self._window = window
        self._cfg = cfg

    def route(self, msg: Outgoing) -> Route:
        if self._window.take(msg.to):
            return Route("cs")
        template = self._cfg.template_ids.get(msg.journey)
        if msg.kind == SERVICE and template:
            return Route("template")
        sub = self._cfg.subscribe_template
        if msg.credits.get(sub, 0) > 0:
            return Route("subscribe", credit_template=sub)
        return Route(None, "wechat_no_window_no_credit")

    def send(self, msg: Outgoing, route: Route) -> Result:
        try:
            if route.route == "cs":
                self._client.message.send_text(msg.to, msg.text)
            elif route.route == "template":
                self._client.message.send_template(msg.to, self._cfg.template_ids[msg.journey],
                                                   {"content": {"value": msg.text}})
            else:
                self._client.message.send_subscribe_message(
                    msg.to, route.credit_template, {"thing1": {"value": msg.text[:THING_MAX]}})
        except WeChatClientException as exc:
            return Result(False, str(exc.errcode))
        return Result(True)


class WebchatPush:
    """Tells the Rasa processes (Redis pub/sub, as bot/webchat/hub.py listens) to show a message on an open page."""

    def __init__(self, redis_url: str) -> None:
        self._r = redis.Redis.from_url(redis_url)

    def __call__(self, visitor: str, text: str, send_id: int) -> None:
        payload = {"v": visitor, "p": {"type": "bot", "ts": time.time(), "text": text}, "inbox": send_id}
        self._r.publish(WEBCHAT_PUSH, json.dumps(payload, ensure_ascii=False))


class SharedRateLimit(delivery.RateLimit):
    """At most ``rate`` calls a second for every scheduler together: a count per channel and second in Redis.

    Several schedulers share one WeChat account's quota; each process's own bucket would let
    N of them send N times the rate. A rate under 1 a second, or Redis unreachable, falls back
    to this process's own bucket (logged), so sends slow down rather than stop.
    """

    def __init__(self, r: redis.Redis, channel: str, rate: float, prefix: str = "outreach:") -> None:
        super().__init__(rate)
        self._r, self._key, self._per_second = r, f"{prefix}rate:{channel}:", int(rate)

    def wait(self) -> None:
        if self._per_second < 1:
            return super().wait()
        while True:
            now = time.time()
            key = f"{self._key}{int(now)}"
            try:
                pipe = self._r.pipeline()
                pipe.incr(key)
                pipe.expire(key, 5)
                count = int(pipe.execute()[0])
            except redis.RedisError as exc:
                log.warning("shared rate limit unavailable (%s); this process's own limit applies",
                            type(exc).__name__)
                return super().wait()
            if count <= self._per_second:
                return
            time.sleep(int(now) + 1 - now)


def shared_limits(cfg: OutreachSettings, redis_url: str | None) -> dict[str, delivery.RateLimit]:
    """A shared limit per configured channel when the deployment has Redis; else none (each process's own)."""
    if not redis_url:
        return {}
    r = redis.Redis.from_url(redis_url, socket_timeout=2)
    return {channel: SharedRateLimit(r, channel, rate) for channel, rate in cfg.rates.items()}


def transports(cfg: OutreachSettings, wechat: WeChatSettings | None = None) -> dict[str, Any]:
    """The channels this deployment can reach members on."""
    out: dict[str, Any] = {}
    if wechat is None and os.environ.get("WECHAT_APP_ID") and os.environ.get("WECHAT_APP_SECRET"):
        wechat = load_wechat_settings()
    if wechat is not None and wechat.app_id and wechat.app_secret:
        out["wechat"] = WeChatTransport(WeChatApi(wechat), CsWindow(wechat.redis_url, wechat), cfg)
    push_url = os.environ.get("WEBCHAT_REDIS_URL")
    out["webchat"] = delivery.InboxTransport(WebchatPush(push_url) if push_url else None)
    out["sms"] = delivery.SmsTransport(gateway(), os.environ.get("OUTREACH_SMS_TEMPLATE", "SMS_OUTREACH"))
    return out


def _refresh_reports() -> None:
    """Rebuild the staff dashboard's tables (loyalty/reports/rollup.py); a failure is logged, sends go on."""
    try:
        done = db.run(rollup.refresh)
    except Exception:  # the dashboard then computes live; the scheduler's own work must not stop
        log.exception("dashboard tables not rebuilt")
        return
    if done is not None:
        log.info("dashboard tables rebuilt: %d rows in %d ms", done.rows, done.took_ms)


def run(worker: str, *, tick: float = 2.0, plan_every: float = 60.0, batch: int = 100,
        once: bool = False) -> None:
    """Plan (and freeze the outcomes of closed attribution windows) every ``plan_every`` seconds, deliver
    what is due, until SIGTERM (or one round with ``once``)."""
    cfg = outreach_settings()
    channels = transports(cfg)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    back, doubt = db.run(svc.recover, worker, None, cfg)
    log.info("outreach scheduler %s started: %d claims returned, %d sends in doubt", worker, back, doubt)
    limits = shared_limits(cfg, os.environ.get("OUTREACH_REDIS_URL") or os.environ.get("WECHAT_REDIS_URL"))
    planned_at = 0.0
    reports_every, reported_at = rollup.settings().refresh_seconds, -math.inf
    refreshing: threading.Thread | None = None
    while not stop:
        if reports_every > 0 and time.monotonic() - reported_at >= reports_every and not (
                refreshing and refreshing.is_alive()):
            # Beside the sends (its own transaction, seconds at a chain's size), except in a one-round run.
            if once:
                _refresh_reports()
            else:
                refreshing = threading.Thread(target=_refresh_reports, name="reports-refresh", daemon=True)
                refreshing.start()
            reported_at = time.monotonic()
        if time.monotonic() - planned_at >= plan_every:
            db.run(svc.recover, None, None, cfg)  # claims of schedulers that died elsewhere
            for p in db.run(svc.plan_all, None, cfg):
                if p.new:
                    log.info("planned %d sends of %s", p.new, p.journey)
            # The journeys report sums these instead of every member's orders (loyalty/outreach/outcomes.py).
            f = db.run(outcomes.freeze_outcomes, None, cfg)
            if f.frozen or f.refreshed:
                log.info("outcomes frozen: %d windows closed, %d recomputed for late orders", f.frozen, f.refreshed)
            planned_at = time.monotonic()
        t = delivery.deliver_due(worker, channels, limit=batch, cfg=cfg, limits=limits)
        if t.sent or t.failed or t.skipped:
            log.info("delivered: sent=%d skipped=%d failed=%d", t.sent, t.skipped, t.failed)
        if once:
            return
        if not (t.sent or t.failed or t.skipped or t.held):
            time.sleep(tick)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.outreach", description=__doc__.splitlines()[0])
    p.add_argument("--worker", default=os.environ.get("OUTREACH_WORKER") or f"{socket.gethostname()}-1",
                   help="a name that stays the same across restarts (its unfinished claims are recovered)")
    p.add_argument("--once", action="store_true", help="one round of planning and delivery, then exit")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--tick", type=float, default=2.0, help="seconds to wait when nothing is due")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(a.worker, tick=a.tick, batch=a.batch, once=a.once)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
