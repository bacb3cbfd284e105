"""Outreach knobs, read from environment variables (documented in docs/outreach.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from loyalty.config import env_value

JOURNEYS = ("welcome", "birthday", "points_expiring", "coupon_expiring", "tier", "wakeup", "after_purchase")


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = set(names) - set(JOURNEYS)
    if unknown:
        raise ValueError(f"unknown journeys {sorted(unknown)}; known: {', '.join(JOURNEYS)}")
    return names


def _rates(raw: str) -> dict[str, float]:
    out = {}
    for part in raw.split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = float(value)
    return out


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


@dataclass(frozen=True)
class OutreachSettings:
    journeys: tuple[str, ...] = JOURNEYS  # OUTREACH_JOURNEYS: which journeys run
    holdout_percent: float = 10.0  # OUTREACH_HOLDOUT_PERCENT
    attribution_days: int = 7  # OUTREACH_ATTRIBUTION_DAYS
    cap_messages: int = 2  # OUTREACH_CAP_MESSAGES marketing messages per member ...
    cap_days: int = 7  # ... per OUTREACH_CAP_DAYS days, across journeys
    quiet_start: int = 21  # OUTREACH_QUIET_START: hour (Asia/Shanghai) quiet hours begin
    quiet_end: int = 9  # OUTREACH_QUIET_END: hour they end; held sends go then
    # Messages per second per channel (OUTREACH_RATES="wechat=20,webchat=200,sms=10").
    rates: dict[str, float] = field(default_factory=lambda: {"wechat": 20.0, "webchat": 200.0, "sms": 10.0})
    # OUTREACH_SENDERS: API calls in flight per scheduler, so also the most sends left in doubt if it dies
    # (beyond 10, wechatpy's HTTP session keeps only 10 connections alive and opens the others anew).
    senders: int = 8
    # WeChat template ids: one template message per service-notice journey, one subscription template.
    template_ids: dict[str, str] = field(default_factory=dict)  # OUTREACH_TEMPLATE_<JOURNEY>
    subscribe_template: str = "SUB-MARKETING"  # OUTREACH_SUBSCRIBE_TEMPLATE
    lease_seconds: int = 300  # OUTREACH_LEASE_SECONDS: a claim older than this belongs to a dead scheduler
    wakeup_campaign: str | None = None  # OUTREACH_WAKEUP_CAMPAIGN: coupon granted with the wake-up message


def from_env(env: Mapping[str, str] | None = None) -> OutreachSettings:
    e = os.environ if env is None else env
    d = OutreachSettings()
    templates = {j: e[f"OUTREACH_TEMPLATE_{j.upper()}"] for j in JOURNEYS if e.get(f"OUTREACH_TEMPLATE_{j.upper()}")}
    return OutreachSettings(
        journeys=env_value(e, "OUTREACH_JOURNEYS", d.journeys, _names),
        holdout_percent=env_value(e, "OUTREACH_HOLDOUT_PERCENT", d.holdout_percent, float),
        attribution_days=env_value(e, "OUTREACH_ATTRIBUTION_DAYS", d.attribution_days, int),
        cap_messages=env_value(e, "OUTREACH_CAP_MESSAGES", d.cap_messages, int),
        cap_days=env_value(e, "OUTREACH_CAP_DAYS", d.cap_days, int),
        quiet_start=env_value(e, "OUTREACH_QUIET_START", d.quiet_start, int),
        quiet_end=env_value(e, "OUTREACH_QUIET_END", d.quiet_end, int),
        rates={**d.rates, **env_value(e, "OUTREACH_RATES", {}, _rates)},
        senders=env_value(e, "OUTREACH_SENDERS", d.senders, _positive),
        template_ids=templates,
        subscribe_template=e.get("OUTREACH_SUBSCRIBE_TEMPLATE") or d.subscribe_template,
        lease_seconds=env_value(e, "OUTREACH_LEASE_SECONDS", d.lease_seconds, int),
        wakeup_campaign=e.get("OUTREACH_WAKEUP_CAMPAIGN") or None,
    )
