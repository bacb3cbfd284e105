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
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.common import now_or
from loyalty.coupons import service as coupons
from loyalty.errors import LoyaltyError
from loyalty.members.models import Member
from loyalty.outreach import rules
from loyalty.outreach import service as svc
from loyalty.outreach.journeys import MARKETING, Step
from loyalty.outreach.models import OutreachSend
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings
from loyalty.sms.gateway import SmsError, SmsGateway

log = logging.getLogger(__name__)
# WeChat's answer to a subscription message the member refuses (they turned the template off).
USER_REFUSES = "43101"


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


def render(s: Session, send: OutreachSend, lang: str = "zh", step: Step | None = None) -> str:
    """The message of a send in ``lang``, filled with its facts (and a recommendation where the copy asks)."""
    step = step or svc.step_for(s, send.journey, send.step)
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


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    held: int = 0


@dataclass
class _Batch:
    """What one transaction knows about the members of a batch (kept current as the batch is decided)."""

    members: dict[int, Member]
    paused: dict[str, bool]
    marketing: dict[int, int]  # marketing messages in the cap window
    addresses: dict[int, list[svc.Address]]
    credits: dict[int, list[int]]  # open subscription credits (ids) of the configured template, locked
    steps: dict[tuple[str, str], Step] = field(default_factory=dict)
    spends: dict[int, int] = field(default_factory=dict)  # credit id -> send: spent together at the end

    def step(self, s: Session, send: OutreachSend) -> Step:
        key = (send.journey, send.step)
        if key not in self.steps:
            self.steps[key] = svc.step_for(s, send.journey, send.step)
        return self.steps[key]


@dataclass
class Prepared:
    """A batch decided: messages to send (``ready``), web chat inbox messages already delivered (``pushes``:
    an open page is told at once, best effort), and what the rules did with the rest."""

    ready: list[tuple[Outgoing, Route]] = field(default_factory=list)
    pushes: list[tuple[Outgoing, Route]] = field(default_factory=list)
    tally: Tally = field(default_factory=lambda: Tally())


def _load(s: Session, sends: list[OutreachSend], now: datetime, cfg: OutreachSettings) -> _Batch:
    ids = sorted({x.member_id for x in sends})
    # Sorted: two schedulers locking members of overlapping batches never wait on each other in a cycle.
    locked = s.execute(select(Member).where(Member.id.in_(ids)).order_by(Member.id).with_for_update()
                       .execution_options(populate_existing=True)).scalars()
    return _Batch(
        members={m.id: m for m in locked},
        paused={j: svc.paused(s, j) for j in {x.journey for x in sends}},
        marketing=svc.marketing_sent_by_member(s, ids, now - timedelta(days=cfg.cap_days)),
        addresses=svc.addresses_of(s, ids),
        credits=svc.open_credit_ids(s, ids, cfg.subscribe_template),
    )


def prepare(s: Session, send_ids: list[int], transports: Mapping[str, Transport], now: datetime,
            cfg: OutreachSettings) -> Prepared:
    """Re-check the rules for a batch of claimed sends under their members' locks, in one transaction.

    Each send becomes ``ready`` (its route chosen, a subscription credit spent: the API call is next),
    ``sent`` (a web chat inbox message: the row is the delivery), ``skipped`` (a rule said no), or
    ``due`` again (held: quiet hours, paused). Nothing here calls an API but ``Transport.route``."""
    out = Prepared()
    sends = list(s.execute(select(OutreachSend).where(OutreachSend.id.in_(send_ids),
                                                      OutreachSend.status == "claimed")
                           .order_by(OutreachSend.id).with_for_update()).scalars())
    if not sends:
        return out
    batch = _load(s, sends, now, cfg)
    for send in sends:
        decided = _decide(s, send, batch, transports, now, cfg)
        if isinstance(decided, str):
            out.tally.skipped += decided == "skipped"
            out.tally.held += decided == "due"
        elif decided[1].route == "inbox":
            out.pushes.append(decided)
            out.tally.sent += 1
        else:
            out.ready.append(decided)
    svc.spend_credits(s, batch.spends, now)
    return out


def _decide(s: Session, send: OutreachSend, batch: _Batch, transports: Mapping[str, Transport], now: datetime,
            cfg: OutreachSettings) -> tuple[Outgoing, Route] | str:
    """One send of the batch: its route (and the send marked for it), or its new status."""
    member = batch.members.get(send.member_id)
    if batch.paused[send.journey]:
        send.status, send.claimed_by, send.claimed_at = "due", None, None
        send.due_at = now + timedelta(minutes=5)
        return "due"
    if rules.quiet(now, cfg.quiet_start, cfg.quiet_end):
        send.status, send.claimed_by, send.claimed_at = "due", None, None
        send.due_at = rules.hold(now, cfg.quiet_start, cfg.quiet_end)
        return "due"
    if member is None or member.status != "active":
        return _skip(send, "closed", now)
    if send.kind == MARKETING:
        if not member.marketing_opt_in:
            return _skip(send, "opted_out", now)
        if batch.marketing.get(member.id, 0) >= cfg.cap_messages:
            return _skip(send, "frequency_cap", now)
    if send.journey == "wakeup" and cfg.wakeup_campaign:
        _grant_wakeup_coupon(s, send, cfg.wakeup_campaign, now)
    text = render(s, send, svc.language_of(member), batch.step(s, send))
    credits = batch.credits.setdefault(member.id, [])  # spent ones leave the list
    reasons = []
    for address in batch.addresses.get(member.id, []) + svc.sms_address(member):
        transport = transports.get(address.channel)
        if transport is None:
            reasons.append(f"{address.channel}_off")
            continue
        msg = Outgoing(send.id, member.id, send.journey, send.step, send.kind, address.to, text,
                       dict(send.facts or {}), {cfg.subscribe_template: len(credits)})
        route = transport.route(msg)
        if route.route is None:
            reasons.append(route.reason or f"{address.channel}_refused")
            continue
        if route.credit_template and not _spend(s, batch, member.id, route.credit_template, send.id, now, cfg):
            reasons.append("no_credit")
            continue
        send.channel, send.route, send.done_at = address.channel, route.route, now
        send.attempts += 1
        if send.kind == MARKETING:
            batch.marketing[member.id] = batch.marketing.get(member.id, 0) + 1
        if route.route == "inbox":  # the inbox row is the delivery: written with the record, exactly once
            send.status = "sent"
            svc.inbox_put(s, send, text, now)
        else:
            send.status = "ready"
        return msg, replace(route, channel=address.channel)
    return _skip(send, (reasons[0] if reasons else "no_channel")[:40], now)


def _spend(s: Session, batch: _Batch, member_id: int, template: str, send_id: int, now: datetime,
           cfg: OutreachSettings) -> bool:
    """Spend one of the member's open credits: a locked one of the batch (written with the batch), else
    one of another template at once (a guarded update: never one twice)."""
    known = batch.credits.get(member_id)
    if known and template == cfg.subscribe_template:
        batch.spends[known.pop(0)] = send_id
        return True
    return svc.spend_credit(s, member_id, template, send_id, now)


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


def advance(s: Session, worker: str, answers: list[tuple[int, Result]], next_ids: list[int],
            now: datetime) -> list[int]:
    """Record the API's answers and mark ``next_ids`` as being sent, in one transaction.

    A scheduler marks a send ``sending`` only when one of its sender threads is free to make the call,
    so it never has more sends ``sending`` (in doubt if it dies) than sender threads; the answers that
    came back meanwhile share the transaction. Returns the ids now ``sending``: one no longer ``ready``
    (recovered by another scheduler) is left out."""
    sent = [send_id for send_id, result in answers if result.ok]
    if sent:
        s.execute(update(OutreachSend).where(OutreachSend.id.in_(sent), OutreachSend.status == "sending")
                  .values(status="sent", done_at=now).execution_options(synchronize_session=False))
    for send_id, result in answers:
        if result.ok:
            continue
        res = s.execute(update(OutreachSend).where(OutreachSend.id == send_id, OutreachSend.status == "sending")
                        .values(status="failed", errcode=(result.errcode or "")[:40], reason="api_error",
                                done_at=now))
        if res.rowcount and result.errcode == USER_REFUSES:
            svc.refused_send(s, send_id, now)
        elif res.rowcount:
            svc.restore_credit(s, send_id)
    if not next_ids:
        return []
    res = s.execute(update(OutreachSend).where(OutreachSend.id.in_(next_ids), OutreachSend.status == "ready")
                    .values(status="sending", done_at=now).execution_options(synchronize_session=False))
    if res.rowcount == len(next_ids):
        return next_ids
    # Some were recovered by another scheduler (and perhaps claimed again): ours are those still claimed by us.
    return list(s.execute(select(OutreachSend.id).where(OutreachSend.id.in_(next_ids), OutreachSend.status == "sending",
                                                        OutreachSend.claimed_by == worker)).scalars())


def _hold(s: Session, send_ids: list[int], until: datetime) -> None:
    """Quiet hours began while a batch was going out: its unsent sends wait (their credits back)."""
    for send_id in send_ids:
        res = s.execute(update(OutreachSend).where(OutreachSend.id == send_id, OutreachSend.status == "ready")
                        .values(status="due", due_at=until, claimed_by=None, claimed_at=None, done_at=None,
                                channel=None, route=None))
        if res.rowcount:
            svc.restore_credit(s, send_id)


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


def deliver_due(worker: str, transports: Mapping[str, Transport], *, now: datetime | None = None,
                limit: int = 100, cfg: OutreachSettings | None = None,
                limits: dict[str, RateLimit] | None = None) -> Tally:
    """Claim up to ``limit`` due sends, decide them in one transaction, then send them through
    ``cfg.senders`` threads (at most that many API calls in flight, and as many sends in doubt)."""
    cfg = cfg or outreach_settings()
    ids = db.run(svc.claim, worker, now, limit)
    if not ids:
        return Tally()
    batch = db.run(prepare, ids, transports, now_or(now), cfg)
    for msg, route in batch.pushes:
        transports["webchat"].send(msg, route)  # best-effort push; the inbox already holds it
    _send_ready(worker, batch.ready, batch.tally, transports, now, cfg, limits if limits is not None else {})
    return batch.tally


def _send_ready(worker: str, ready: list[tuple[Outgoing, Route]], tally: Tally, transports: Mapping[str, Transport],
                now: datetime | None, cfg: OutreachSettings, limits: dict[str, RateLimit]) -> None:
    """Send a decided batch: whenever a sender thread is free, one transaction records the answers that
    came back and marks the next sends ``sending``; then their calls start. The rate limits are taken
    here, before a send is marked, and quiet hours that begin hold the rest of the batch."""
    senders = max(1, cfg.senders)
    queue = deque(ready)
    answers: list[tuple[int, Result]] = []
    flying: dict[Future[Result], int] = {}
    with ThreadPoolExecutor(senders, thread_name_prefix="outreach-send") as pool:
        while queue or flying:
            take: list[tuple[Outgoing, Route]] = []
            while queue and len(flying) + len(take) < senders:
                channel = queue[0][1].channel
                limits.setdefault(channel, RateLimit(cfg.rates.get(channel, 10.0))).wait()
                take.append(queue.popleft())
            at = now_or(now)
            if take and rules.quiet(at, cfg.quiet_start, cfg.quiet_end):  # the batch ran into the quiet hours
                held = [m.send_id for m, _ in take + list(queue)]
                db.run(_hold, held, rules.hold(at, cfg.quiet_start, cfg.quiet_end))
                tally.held += len(held)
                take, queue = [], deque()
            started = set(db.run(advance, worker, answers, [m.send_id for m, _ in take], at)
                          if answers or take else [])
            answers = []
            for msg, route in take:
                if msg.send_id in started:
                    flying[pool.submit(_call, transports[route.channel], msg, route)] = msg.send_id
            if not flying:
                continue
            done, _ = wait(flying, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                answers.append((flying.pop(future), result))
                tally.sent += result.ok
                tally.failed += not result.ok
    if answers:
        db.run(advance, worker, answers, [], now_or(now))


def _call(transport: Transport, msg: Outgoing, route: Route) -> Result:
    """One API call, in a sender thread."""
    try:
        return transport.send(msg, route)
    except Exception as exc:  # a bug or transport crash: recorded as a failure, the batch goes on
        log.exception("outreach send %d crashed", msg.send_id)
        return Result(False, type(exc).__name__)


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
