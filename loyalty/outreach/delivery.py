"""Delivering claimed sends through channel transports, under the rules, recording every outcome.

A transport is one channel's sender (WeChat lives in bot/outreach.py; web
chat's inbox and SMS are here). ``route`` says how a message can go right now
(WeChat: customer-service inside the 48-hour window, template for service
notices, subscription message when a credit is held) or why it cannot;
``send`` makes the one API call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.common import now_or
from loyalty.coupons import service as coupons
from loyalty.errors import LoyaltyError
from loyalty.members.lock import lock_member
from loyalty.outreach import rules
from loyalty.outreach import service as svc
from loyalty.outreach.journeys import MARKETING
from loyalty.outreach.models import OutreachSend
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings
from loyalty.sms.gateway import SmsError, SmsGateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    send_id: int
    member_id: int
    journey: str
    step: str
    kind: str
    to: str
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    credits: Mapping[str, int] = field(default_factory=dict)  # subscription template id -> open credits


@dataclass(frozen=True)
class Route:
    route: str | None  # cs | template | subscribe | inbox | sms; None: cannot go now
    reason: str | None = None  # why not (window_closed_no_credit, marketing_not_template, ...)
    credit_template: str | None = None  # a subscription credit to spend
    channel: str = ""  # set by prepare: the channel the route belongs to


@dataclass(frozen=True)
class Result:
    ok: bool
    errcode: str | None = None


class Transport(Protocol):
    channel: str

    def route(self, msg: Outgoing) -> Route: ...

    def send(self, msg: Outgoing, route: Route) -> Result: ...


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


def render(s: Session, send: OutreachSend, lang: str = "zh") -> str:
    """The message of a send in ``lang``, filled with its facts (and a recommendation where the copy asks)."""
    step = svc.step_for(s, send.journey, send.step)
    template = step.zh if lang == "zh" else step.en
    facts = _Blank(send.facts or {})
    if "{reco_" in template:
        facts.update(_recommendation(s, send.member_id))
    if "{store_" in template:
        m = s.get(svc.Member, send.member_id)
        store = m.store if m is not None else None
        facts.update(store_zh=store.name_zh if store else "官网商城",
                     store_en=store.name_en if store else "our web shop")
    if facts.get("coupon_zh") and "{gift_" in template:
        facts.update(gift_zh=f"送您一张「{facts['coupon_zh']}」。", gift_en=f"Here is a {facts['coupon_en']} for you. ")
    if "tier" in facts:
        zh, en = svc.tier_names().get(str(facts["tier"]), (str(facts["tier"]),) * 2)
        facts.update(tier_zh=zh, tier_en=en)
    return template.format_map(facts).strip()


def _recommendation(s: Session, member_id: int) -> dict[str, str]:
    from loyalty.recommender import service as recommender

    try:
        picks = recommender.recommend(s, member_id, k=2)
    except LoyaltyError:
        picks = []
    return {"reco_zh": "、".join(p.name_zh for p in picks) or "本季新品",
            "reco_en": ", ".join(p.name_en for p in picks) or "this season's new arrivals"}


def _skip(send: OutreachSend, reason: str, now: datetime) -> str:
    """Record that a rule stopped the send; nothing to deliver."""
    send.status, send.reason, send.done_at = "skipped", reason, now
    return "skipped"


def prepare(s: Session, send_id: int, transports: Mapping[str, Transport], now: datetime,
            cfg: OutreachSettings) -> tuple[Outgoing, Route] | str:
    """Re-check the rules under the member's lock and mark the send ``sending``.

    Otherwise the send's new status: skipped (a rule said no), due (held: quiet hours, paused)."""
    send = s.get(OutreachSend, send_id, with_for_update=True)
    if send is None or send.status != "claimed":
        return "gone"
    member = lock_member(s, send.member_id, allow_closed=True)
    if svc.paused(s, send.journey):
        send.status, send.claimed_by, send.claimed_at = "due", None, None
        send.due_at = now + timedelta(minutes=5)
        return "due"
    if rules.quiet(now, cfg.quiet_start, cfg.quiet_end):
        send.status, send.claimed_by, send.claimed_at = "due", None, None
        send.due_at = rules.hold(now, cfg.quiet_start, cfg.quiet_end)
        return "due"
    if member.status != "active":
        return _skip(send, "closed", now)
    if send.kind == MARKETING:
        if not member.marketing_opt_in:
            return _skip(send, "opted_out", now)
        if svc.marketing_sent(s, member.id, now - timedelta(days=cfg.cap_days)) >= cfg.cap_messages:
            return _skip(send, "frequency_cap", now)
    if send.journey == "wakeup" and cfg.wakeup_campaign:
        _grant_wakeup_coupon(s, send, cfg.wakeup_campaign, now)
    text = render(s, send, svc.language_of(member))
    reasons = []
    for address in svc.addresses(s, member):
        transport = transports.get(address.channel)
        if transport is None:
            reasons.append(f"{address.channel}_off")
            continue
        credits = {cfg.subscribe_template: svc.open_credits(s, member.id, cfg.subscribe_template)}
        msg = Outgoing(send.id, member.id, send.journey, send.step, send.kind, address.to, text,
                       dict(send.facts or {}), credits)
        route = transport.route(msg)
        if route.route is None:
            reasons.append(route.reason or f"{address.channel}_refused")
            continue
        if route.credit_template and not svc.spend_credit(s, member.id, route.credit_template, send.id, now):
            reasons.append("no_credit")
            continue
        send.status, send.channel, send.route = "sending", address.channel, route.route
        send.attempts += 1
        send.done_at = now
        if route.route == "inbox":  # the inbox row is the delivery: written with the record, exactly once
            svc.inbox_put(s, send, text, now)
        return msg, replace(route, channel=address.channel)
    return _skip(send, (reasons[0] if reasons else "no_channel")[:40], now)


def _grant_wakeup_coupon(s: Session, send: OutreachSend, campaign: str, now: datetime) -> None:
    """The wake-up's targeted coupon, once per send (its key); out of stock: the message goes without it."""
    try:
        with s.begin_nested():
            claim = coupons.grant(s, send.member_id, campaign, key=f"outreach:{send.id}", now=now)
    except LoyaltyError as exc:
        log.warning("wake-up coupon not granted for send %d: %s", send.id, exc.code)
        return
    c = claim.coupon
    send.facts = {**(send.facts or {}), "coupon_zh": c.campaign.name_zh, "coupon_en": c.campaign.name_en,
                  "coupon": c.code}


def finish(s: Session, send_id: int, result: Result, now: datetime) -> None:
    """Record the API's answer."""
    send = s.get(OutreachSend, send_id, with_for_update=True)
    if send is None or send.status != "sending":
        return
    send.done_at = now
    if result.ok:
        send.status = "sent"
    else:
        send.status, send.errcode, send.reason = "failed", (result.errcode or "")[:40], "api_error"
        svc.restore_credit(s, send.id)


class RateLimit:
    """At most ``rate`` calls a second (a token bucket of one second's worth)."""

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 0.1)
        self.tokens = self.rate
        self.at = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            time.sleep((1 - self.tokens) / self.rate)
            self.tokens, self.at = 1.0, time.monotonic()
        self.tokens -= 1


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    held: int = 0


def deliver_due(worker: str, transports: Mapping[str, Transport], *, now: datetime | None = None,
                limit: int = 100, cfg: OutreachSettings | None = None,
                limits: dict[str, RateLimit] | None = None) -> Tally:
    """Claim up to ``limit`` due sends and deliver them one by one; returns what happened."""
    cfg = cfg or outreach_settings()
    limits = limits if limits is not None else {}
    tally = Tally()
    for send_id in db.run(svc.claim, worker, now, limit):
        at = now_or(now)
        prepared = db.run(prepare, send_id, transports, at, cfg)
        if not isinstance(prepared, tuple):
            tally.skipped += prepared == "skipped"
            tally.held += prepared == "due"
            continue
        msg, route = prepared
        if route.route == "inbox":
            transports["webchat"].send(msg, route)  # best-effort push; the inbox already holds it
            db.run(finish, send_id, Result(True), at)
            tally.sent += 1
            continue
        limits.setdefault(route.channel, RateLimit(cfg.rates.get(route.channel, 10.0))).wait()
        try:
            result = transports[route.channel].send(msg, route)
        except Exception as exc:  # a bug or transport crash: recorded as a failure, the batch goes on
            log.exception("outreach send %d crashed", send_id)
            result = Result(False, type(exc).__name__)
        db.run(finish, send_id, result, now_or(now))
        tally.sent += result.ok
        tally.failed += not result.ok
    return tally


class InboxTransport:
    """Web chat: the message waits in the member's inbox (shown at the next visit); ``push`` tells an open page."""

    channel = "webchat"

    def __init__(self, push: Any = None) -> None:
        self._push = push

    def route(self, msg: Outgoing) -> Route:
        return Route("inbox")

    def send(self, msg: Outgoing, route: Route) -> Result:
        if self._push is not None:
            try:
                self._push(msg.to, msg.text, msg.send_id)
            except Exception:  # the inbox keeps it; the page shows it at the next visit
                log.warning("web chat push of send %d failed; kept in the inbox", msg.send_id)
        return Result(True)


class SmsTransport:
    """SMS through the gateway of loyalty/sms (Aliyun, or its fake), to members who consented to SMS."""

    channel = "sms"

    def __init__(self, gateway: SmsGateway, template_code: str) -> None:
        self._gateway = gateway
        self._template = template_code

    def route(self, msg: Outgoing) -> Route:
        return Route("sms")

    def send(self, msg: Outgoing, route: Route) -> Result:
        send_message = getattr(self._gateway, "send_message", None)
        if send_message is None:
            return Result(False, "gateway_cannot_send_messages")
        try:
            send_message(msg.to, self._template, {"text": msg.text})
        except SmsError as exc:
            return Result(False, exc.provider_code or "sms_failed")
        return Result(True)


def counts(s: Session, journey: str | None = None) -> dict[str, int]:
    q = select(OutreachSend.status, OutreachSend.id)
    if journey:
        q = q.where(OutreachSend.journey == journey)
    out: dict[str, int] = {}
    for status, _ in s.execute(q):
        out[status] = out.get(status, 0) + 1
    return out
