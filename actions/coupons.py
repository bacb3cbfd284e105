"""Coupons: what may be claimed, claiming by number, name or button, exchanges, my coupons."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import MemberAction, core, message_key, pick, render
from loyalty.coupons import service as coupons
from loyalty.coupons.service import CampaignView, Offer
from loyalty.errors import NotFound, Refused
from loyalty.membership.service import MemberCard

MAX_LINES = 6
REFUSALS = {"out_of_stock", "limit_reached", "tier_too_low", "not_in_segment", "insufficient_points", "not_open"}
FILLER = re.compile(r"的|那张|那个|这张|这个|券|优惠|coupon|voucher|\bone\b|\bthe\b|领|要|claim|get|i want|\s+")
CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "last": -1, "最后": -1}
# A number word is a position only as the whole choice ("number one"), never inside a name.
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _name(tracker: Tracker, c: CampaignView) -> str:
    return pick(tracker, c.name_zh, c.name_en)


def _yuan(v: str) -> str:
    return f"{Decimal(v):g}"


def _index(choice: str) -> int | None:
    """1-based position from "2", "two", "第二张", "头一个", "second", "last" (-1)."""
    t = choice.strip().lower()
    if t.isdecimal():  # what int() reads, full-width "２" too ("²" is isdigit but not a number)
        return int(t)
    if t in NUMBER_WORDS:
        return NUMBER_WORDS[t]
    for word, n in ORDINALS.items():
        if word in t:
            return n
    m = re.fullmatch(r"[第头]?([一二两三四五六七八九])[张个]?", t)
    return CN_DIGITS[m.group(1)] if m else None


def _figures(text: str) -> tuple[set[str], int | None]:
    """Yuan figures and a percentage named in a choice ("满100减20" → {100, 20}; "8折" → 20 % off)."""
    nums = set(re.findall(r"\d+(?:\.\d+)?", text))
    pct = None
    m = re.search(r"(\d)(?:\.(\d))?\s*折", text)
    if m:
        pct = 100 - int(m.group(1)) * 10 - int(m.group(2) or 0)
    for zh, n in CN_DIGITS.items():
        if f"{zh}折" in text:
            pct = 100 - n * 10
    m = re.search(r"(\d+)\s*%", text)
    if m:
        pct = int(m.group(1))
    return nums, pct


def resolve(choice: str, shown: list[str], offers: list[Offer]) -> CampaignView | None:
    """The campaign a shopper means by a number, a code or part of its name; None if unclear."""
    by_code = {o.campaign.code: o.campaign for o in offers}
    text = unicodedata.normalize("NFKC", str(choice)).strip()
    pos = _index(text)
    if pos is not None:
        codes = shown or [o.campaign.code for o in offers]
        if pos == -1 and codes:
            return by_code.get(codes[-1])
        return by_code.get(codes[pos - 1]) if 1 <= pos <= len(codes) else None
    if text.upper() in by_code:
        return by_code[text.upper()]
    key = FILLER.sub("", text.lower())
    nums, pct = _figures(text.lower())
    matches = []
    for o in offers:
        c = o.campaign
        names = (FILLER.sub("", c.name_zh.lower()), FILLER.sub("", c.name_en.lower()))
        by_name = bool(key) and any(key in n for n in names)
        by_figure = False
        if pct is not None:
            by_figure = c.kind == "percent" and c.percent_off == pct
        elif nums and c.kind == "threshold":
            figures = {_yuan(c.discount), _yuan(c.threshold)}
            by_figure = nums <= figures and _yuan(c.discount) in nums
        if by_name or by_figure:
            matches.append(c)
    return matches[0] if len(matches) == 1 else None


def refuse(dispatcher: CollectingDispatcher, tracker: Tracker, code: str, c: CampaignView, balance: int) -> None:
    name = f"utter_claim_refused_{code}" if code in REFUSALS else "utter_claim_refused_other"
    dispatcher.utter_message(
        response=name, coupon_name=_name(tracker, c), points_cost=c.points_cost,
        balance=balance, shortfall=max(0, c.points_cost - balance),
    )


def _lines(tracker: Tracker, domain: DomainDict, offers: list[Offer]) -> list[str]:
    out = []
    for n, o in enumerate(offers, 1):
        name = _name(tracker, o.campaign)
        if not o.claimable:
            reason = render(domain, tracker, f"utter_reason_{o.reason}")
            out.append(render(domain, tracker, "utter_coupon_line_unavailable", n=n, name=name, reason=reason))
        elif o.campaign.points_cost:
            out.append(render(domain, tracker, "utter_coupon_line_points", n=n, name=name,
                              points_cost=o.campaign.points_cost))
        else:
            out.append(render(domain, tracker, "utter_coupon_line", n=n, name=name))
    return out


def _buttons(tracker: Tracker, offers: list[Offer]) -> list[dict[str, str]]:
    return [
        {"title": _name(tracker, o.campaign), "payload": f'/claim_coupon{{"coupon_choice":"{o.campaign.code}"}}'}
        for o in offers if o.claimable
    ]


async def show_offers(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, member: MemberCard,
    *, exchange_only: bool = False,
) -> list[EventType]:
    """List what the member may claim (or exchange); remembers the order for "the second one"."""
    offers = await core(coupons.offers, member.id, readonly=True)
    if exchange_only:
        offers = [o for o in offers if o.campaign.points_cost > 0]
    offers = sorted(offers, key=lambda o: not o.claimable)[:MAX_LINES]
    if not offers:
        dispatcher.utter_message(response="utter_no_exchangeable_coupons" if exchange_only
                                 else "utter_no_claimable_coupons")
        return [SlotSet("offered_campaigns", [])]
    lines = "\n".join(_lines(tracker, domain, offers))
    if exchange_only:
        dispatcher.utter_message(response="utter_exchangeable_coupons", balance=member.points,
                                 coupon_lines=lines, buttons=_buttons(tracker, offers))
    else:
        dispatcher.utter_message(response="utter_claimable_coupons", coupon_lines=lines,
                                 buttons=_buttons(tracker, offers))
    return [SlotSet("offered_campaigns", [o.campaign.code for o in offers])]


async def claim_or_confirm(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, member: MemberCard,
    choice: str, *, confirm: bool = True,
) -> list[EventType]:
    """Claim a free coupon at once; ask to confirm one that costs points (or refuse, saying why)."""
    offers = await core(coupons.offers, member.id, readonly=True)
    shown = tracker.get_slot("offered_campaigns") or []
    c = resolve(choice, shown, offers)
    if c is None:
        dispatcher.utter_message(response="utter_coupon_choice_unclear")
        return await show_offers(dispatcher, tracker, domain, member)
    offer = next(o for o in offers if o.campaign.code == c.code)
    if not offer.claimable and offer.reason:
        refuse(dispatcher, tracker, offer.reason, c, member.points)
        return [SlotSet("pending_exchange", None)]
    if c.points_cost:
        if not confirm:
            return await show_offers(dispatcher, tracker, domain, member, exchange_only=True)
        dispatcher.utter_message(response="utter_confirm_exchange", points_cost=c.points_cost,
                                 coupon_name=_name(tracker, c), balance_after=member.points - c.points_cost)
        return [SlotSet("pending_exchange", c.code)]
    try:
        claim = await core(coupons.claim, member.id, c.code, key=message_key(tracker))
    except (Refused, NotFound) as e:
        refuse(dispatcher, tracker, e.code, c, member.points)
        return [SlotSet("pending_exchange", None)]
    dispatcher.utter_message(response="utter_coupon_claimed", coupon_name=_name(tracker, c),
                             valid_until=claim.coupon.last_day.isoformat(), code=claim.coupon.code)
    return [SlotSet("pending_exchange", None)]


async def show_mine(dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict,
                    member: MemberCard) -> list[EventType]:
    mine = await core(coupons.member_coupons, member.id, readonly=True)
    if not mine:
        dispatcher.utter_message(response="utter_no_coupons")
        return []
    lines = [
        render(domain, tracker, "utter_my_coupon_line", name=_name(tracker, c.campaign),
               last_day=c.last_day.isoformat(), code=c.code)
        for c in mine[:MAX_LINES]
    ]
    dispatcher.utter_message(response="utter_my_coupons", coupon_lines="\n".join(lines))
    return []


def chosen_coupon(tracker: Tracker) -> str | None:
    """The campaign code the shopper named (the coupon_choice slot), if any."""
    value = tracker.get_slot("coupon_choice")
    if isinstance(value, list):
        value = value[-1] if value else None
    return str(value) if value not in (None, "") else None


class ActionListCoupons(MemberAction):
    def name(self) -> str:
        return "action_list_coupons"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_offers(dispatcher, tracker, domain, member)


class ActionClaimCoupon(MemberAction):
    def name(self) -> str:
        return "action_claim_coupon"

    def neutral(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("coupon_choice", None), SlotSet("pending_exchange", None)]

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        choice = chosen_coupon(tracker)
        if choice is None:
            events = await show_offers(dispatcher, tracker, domain, member)
            return [*events, *self.neutral(tracker)]
        return [SlotSet("coupon_choice", None), *await claim_or_confirm(dispatcher, tracker, domain, member, choice)]


class ActionExchangeCoupon(MemberAction):
    def name(self) -> str:
        return "action_exchange_coupon"

    def neutral(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("coupon_choice", None), SlotSet("pending_exchange", None)]

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        choice = chosen_coupon(tracker)
        if choice is None:
            events = await show_offers(dispatcher, tracker, domain, member, exchange_only=True)
            return [*events, *self.neutral(tracker)]
        return [SlotSet("coupon_choice", None), *await claim_or_confirm(dispatcher, tracker, domain, member, choice)]


class ActionConfirmExchange(MemberAction):
    """The yes/no after "swap N points for …?": points and stock change together or not at all."""

    def name(self) -> str:
        return "action_confirm_exchange"

    def neutral(self, tracker: Tracker) -> list[EventType]:
        return [SlotSet("pending_exchange", None)]

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        code = tracker.get_slot("pending_exchange")
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if not code or intent != "affirm":
            dispatcher.utter_message(response="utter_exchange_cancelled")
            return self.neutral(tracker)
        try:
            claim = await core(coupons.claim, member.id, code, key=message_key(tracker))
        except (Refused, NotFound) as e:
            offers = await core(coupons.offers, member.id, readonly=True)
            c = next((o.campaign for o in offers if o.campaign.code == code), None)
            if c is None:
                dispatcher.utter_message(response="utter_claim_refused_other")
            else:
                refuse(dispatcher, tracker, e.code, c, member.points)
            return self.neutral(tracker)
        c = claim.coupon.campaign
        dispatcher.utter_message(response="utter_exchange_done", coupon_name=_name(tracker, c),
                                 balance=claim.balance if claim.balance is not None else member.points)
        return self.neutral(tracker)


class ActionMyCoupons(MemberAction):
    def name(self) -> str:
        return "action_my_coupons"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_mine(dispatcher, tracker, domain, member)
