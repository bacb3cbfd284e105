"""Points balance, history and tier."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import MemberAction, core, join_list, render, tier_title
from loyalty.common import local_date
from loyalty.config import settings
from loyalty.membership.service import MemberCard
from loyalty.points import service as points
from loyalty.tiers import service as tiers

LEDGER_KINDS = ("earn", "spend", "expire", "adjust", "clawback", "referral", "close")


async def show_points(dispatcher: CollectingDispatcher, member: MemberCard) -> list[EventType]:
    summary = await core(points.summary, member.id, readonly=True)
    if summary.next_expiry:
        dispatcher.utter_message(
            response="utter_points_summary", balance=summary.balance,
            expiry_points=summary.next_expiry_points, expiry_date=summary.next_expiry.isoformat(),
        )
    else:
        dispatcher.utter_message(response="utter_points_summary_no_expiry", balance=summary.balance)
    return []


async def show_history(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, member: MemberCard
) -> list[EventType]:
    summary = await core(points.summary, member.id, recent=5, readonly=True)
    if not summary.recent:
        dispatcher.utter_message(response="utter_points_history_empty")
        return []
    lines = []
    for e in summary.recent:
        kind = render(domain, tracker, f"utter_ledger_kind_{e.kind}") if e.kind in LEDGER_KINDS else e.kind
        lines.append(render(
            domain, tracker, "utter_ledger_line",
            date=local_date(e.at).strftime("%m-%d"), delta=f"{e.delta:+d}", kind=kind,
        ))
    dispatcher.utter_message(response="utter_points_history", entries="\n".join(lines))
    return []


async def show_tier(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, member: MemberCard
) -> list[EventType]:
    st = await core(tiers.status, member.id, readonly=True)
    benefits = [render(domain, tracker, "utter_benefit_multiplier", multiplier=f"{st.tier.multiplier:g}")]
    if st.tier.birthday_coupon:
        benefits.append(render(domain, tracker, "utter_benefit_birthday"))
    if st.tier.priority_service:
        benefits.append(render(domain, tracker, "utter_benefit_priority"))
    name = tier_title(tracker, st.tier.code)
    if st.next_tier is None:
        dispatcher.utter_message(response="utter_tier_top", tier=name, benefits=join_list(tracker, benefits))
    else:
        dispatcher.utter_message(
            response="utter_tier_status", tier=name, benefits=join_list(tracker, benefits),
            to_next=st.to_next, next_tier=tier_title(tracker, st.next_tier.code),
        )
    return []


class ActionShowPoints(MemberAction):
    def name(self) -> str:
        return "action_show_points"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_points(dispatcher, member)


class ActionPointsHistory(MemberAction):
    def name(self) -> str:
        return "action_points_history"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_history(dispatcher, tracker, domain, member)


class ActionShowTier(MemberAction):
    def name(self) -> str:
        return "action_show_tier"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_tier(dispatcher, tracker, domain, member)


__all__ = ["ActionPointsHistory", "ActionShowPoints", "ActionShowTier", "settings"]
