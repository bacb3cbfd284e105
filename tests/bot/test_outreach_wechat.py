"""Outreach on WeChat against the fake API: the 48-hour window, template messages, subscription credits."""

from __future__ import annotations

import time as _time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import func, select, update

from bot.outreach import CsWindow, WeChatTransport
from bot.settings import load_wechat_settings
from bot.wechat.client import WeChatApi
from bot.wechat.kv import MemoryStore
from loyalty import db
from loyalty.common import local_date
from loyalty.config import SHANGHAI
from loyalty.members import service as members
from loyalty.outreach import delivery
from loyalty.outreach import service as svc
from loyalty.outreach.models import OutreachSend, SubscriptionCredit
from loyalty.outreach.settings import OutreachSettings
from tests.bot.conftest import APP_ID, APP_SECRET, FakeApi, new_openid
from tests.loyalty.corekit import buy, join

DAY = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
CFG = OutreachSettings(holdout_percent=0.0, template_ids={"points_expiring": "TPL-POINTS"})


@pytest.fixture
def wechat(fake_api: FakeApi, redis_url: str) -> Iterator[dict[str, Any]]:
    fake_api.reset()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    settings = load_wechat_settings({}, app_id=APP_ID, app_secret=APP_SECRET, token="t",
                                    api_base_url=fake_api.api_base_url, redis_url=redis_url)
    api = WeChatApi(settings)
    yield {"wechat": WeChatTransport(api, CsWindow(redis_url, settings), CFG), "redis": r}
    api.close()


def notices(fake_api: FakeApi, openid: str) -> list[dict[str, Any]]:
    return requests.get(fake_api.base + "/_fake/notices", params={"touser": openid}, timeout=5).json()["notices"]


def wechat_member(openid: str) -> int:
    mid = join(now=DAY)
    db.run(members.bind_identity, mid, "wechat", openid)
    return mid


def run(journey: str, now: datetime, transports: dict[str, Any]) -> None:
    db.run(svc.plan_journey, journey, now, CFG)
    while delivery.deliver_due("w", transports, now=now, cfg=CFG).sent:
        pass


def test_inside_the_window_a_customer_service_message_shares_the_quota(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    wechat_member("o-open")
    wechat["redis"].set("wechat:cs:allow:o-open", "5", ex=48 * 3600)
    wechat["redis"].set("wechat:cs:used:o-open", "4", ex=48 * 3600)  # the conversation used four
    run("welcome", DAY + timedelta(hours=1), {"wechat": wechat["wechat"]})
    assert len(fake_api.messages("o-open")) == 1 and "欢迎" in fake_api.messages("o-open")[0]
    assert wechat["redis"].get("wechat:cs:used:o-open") == "5"


def test_outside_the_window_marketing_is_never_a_template(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    cfg_all_templates = replace(CFG, template_ids={"welcome": "TPL-POINTS"})
    # Even with a template configured for the welcome journey, outside the window it does not go.
    transport = WeChatTransport(_api(fake_api), CsWindow(None, _settings(fake_api)), cfg_all_templates)
    wechat_member("o-closed")
    run("welcome", DAY + timedelta(hours=1), {"wechat": transport})
    assert fake_api.messages("o-closed") == [] and notices(fake_api, "o-closed") == []
    [send] = db.run(lambda s: list(s.execute(select(OutreachSend)).scalars()))
    assert (send.status, send.reason) == ("skipped", "wechat_no_window_no_credit")


def _settings(fake_api: FakeApi) -> Any:
    return load_wechat_settings({}, app_id=APP_ID, app_secret=APP_SECRET, token="t", api_base_url=fake_api.api_base_url)


def _api(fake_api: FakeApi) -> WeChatApi:
    return WeChatApi(_settings(fake_api))


def test_outside_the_window_a_service_notice_goes_as_a_template(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    mid = wechat_member("o-points")
    buy(mid, "80.00", DAY)
    from loyalty.points.models import PointsLot

    expires = db.run(lambda s: s.execute(select(PointsLot.expires_at)).scalar())
    # 10:00 local, 30 days before the lot's day of expiry (outside the quiet hours).
    at = datetime.combine(local_date(expires) - timedelta(days=30), time(10, 0), tzinfo=SHANGHAI)
    run("points_expiring", at, {"wechat": wechat["wechat"]})
    [notice] = notices(fake_api, "o-points")
    assert notice["kind"] == "template" and notice["template_id"] == "TPL-POINTS"
    assert "80" in notice["data"]["content"]["value"]


def test_a_subscription_send_spends_exactly_one_credit_and_none_without(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    with_credit, without = wechat_member("o-credit"), wechat_member("o-none")
    db.run(svc.grant_credit, with_credit, "SUB-MARKETING")
    db.run(svc.grant_credit, with_credit, "SUB-MARKETING")
    run("welcome", DAY + timedelta(hours=1), {"wechat": wechat["wechat"]})
    [notice] = notices(fake_api, "o-credit")
    assert notice["kind"] == "subscribe" and len(notice["data"]["thing1"]["value"]) <= 20
    assert notices(fake_api, "o-none") == []
    assert db.run(svc.open_credits, with_credit, "SUB-MARKETING") == 1
    spent = db.run(lambda s: s.execute(select(func.count()).where(SubscriptionCredit.spent_at.is_not(None))).scalar())
    assert spent == 1
    assert db.run(lambda s: s.execute(select(OutreachSend.reason).where(OutreachSend.member_id == without))
                  .scalar()) == "wechat_no_window_no_credit"


def test_a_send_the_member_refuses_voids_their_credits_for_that_template_only(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    mid = wechat_member("o-refused")
    for template in ("SUB-MARKETING", "SUB-MARKETING", "SUB-BIRTHDAY"):
        db.run(svc.grant_credit, mid, template)
    fake_api.fail_next(43101, path="message/subscribe/bizsend")  # the user refuses this template
    run("welcome", DAY + timedelta(hours=1), {"wechat": wechat["wechat"]})
    send = db.run(lambda s: s.execute(select(OutreachSend)).scalar_one())
    assert (send.status, send.errcode) == ("failed", "43101")
    # WeChat would refuse the other credit of that template too; the other template's stays.
    assert _credits(mid) == {"SUB-BIRTHDAY": 1}
    revoked = db.run(lambda s: list(s.execute(select(SubscriptionCredit.send_id).where(
        SubscriptionCredit.revoked_at.is_not(None)).order_by(SubscriptionCredit.id)).scalars()))
    assert revoked == [send.id, None]  # the attempt stays linked to its send


def test_a_send_wechat_fails_for_another_reason_keeps_its_credit(
        engine: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    mid = wechat_member("o-busy")
    db.run(svc.grant_credit, mid, "SUB-MARKETING")
    fake_api.fail_next(45009, path="message/subscribe/bizsend")  # the API's daily limit, not the member
    run("welcome", DAY + timedelta(hours=1), {"wechat": wechat["wechat"]})
    send = db.run(lambda s: s.execute(select(OutreachSend)).scalar_one())
    assert (send.status, send.errcode) == ("failed", "45009")
    assert _credits(mid) == {"SUB-MARKETING": 1}


def _credits(mid: int) -> dict[str, int]:
    rows = db.run(lambda s: list(s.execute(select(SubscriptionCredit.template_id, func.count())
                                           .where(SubscriptionCredit.member_id == mid,
                                                  SubscriptionCredit.spent_at.is_(None),
                                                  SubscriptionCredit.revoked_at.is_(None))
                                           .group_by(SubscriptionCredit.template_id))), readonly=True)
    return dict(rows)


def test_the_subscription_popup_callback_grants_one_credit_per_accepted_template_once(
        engine: Any, make_channel: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    openid, stranger = new_openid(), new_openid()
    mid = wechat_member(openid)
    ch = make_channel()
    created = int(_time.time())
    popup = ch.side.subscribe_popup(openid, [("SUB-MARKETING", "accept"), ("TPL-OTHER", "reject"),
                                             ("SUB-BIRTHDAY", "accept")], create_time=created)
    assert ch.send(popup, aes=True).raw == "success"
    assert _credits(mid) == {"SUB-MARKETING": 1, "SUB-BIRTHDAY": 1}
    # WeChat's retries (re-signed, plain or encrypted): the channel's dedup drops them.
    assert [ch.send(popup, aes=aes).raw for aes in (True, False)] == ["success", "success"]
    # A retry reaching another process after the dedup store forgot it: the core grants nothing twice.
    other = make_channel(store=MemoryStore())
    assert other.send(popup, aes=True).raw == "success"
    assert _credits(mid) == {"SUB-MARKETING": 1, "SUB-BIRTHDAY": 1}
    # A later pop-up (one item: WeChat's XML has a single <List>) is a new consent.
    again = ch.side.subscribe_popup(openid, [("SUB-MARKETING", "accept")], create_time=created + 5)
    ch.send(again)
    assert _credits(mid) == {"SUB-MARKETING": 2, "SUB-BIRTHDAY": 1}
    ch.send(ch.side.subscribe_popup(stranger, [("SUB-MARKETING", "accept")]))  # not a member: nobody to credit
    assert db.run(lambda s: s.execute(select(func.count()).select_from(SubscriptionCredit)).scalar()) == 3
    assert ch.assistant.calls == [] and other.assistant.calls == []  # consent is not a conversation
    # The credits are what the outreach spends: one subscription message each, then nothing.
    for day in (1, 2, 3):  # three broadcasts on three days (the frequency cap allows two a week)
        at = DAY + timedelta(days=7 * day)
        db.run(svc.create_broadcast, f"B{day}", {}, f"第{day}条", f"No. {day}", at, actor="ops")
        db.run(svc.plan_all, at, replace(CFG, journeys=()))
        while delivery.deliver_due("w", {"wechat": wechat["wechat"]}, now=at, cfg=CFG).sent:
            pass
    assert [n["kind"] for n in notices(fake_api, openid)] == ["subscribe", "subscribe"]
    assert _credits(mid) == {"SUB-BIRTHDAY": 1}


def test_turning_a_template_off_in_wechat_voids_the_credits_granted_before_it(
        engine: Any, make_channel: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    openid, stranger = new_openid(), new_openid()
    mid = wechat_member(openid)
    ch = make_channel()
    created = int(_time.time())
    ch.send(ch.side.subscribe_popup(openid, [("SUB-MARKETING", "accept"), ("SUB-BIRTHDAY", "accept")],
                                    create_time=created - 60))
    ch.send(ch.side.subscribe_popup(openid, [("SUB-MARKETING", "accept")], create_time=created - 30))
    assert _credits(mid) == {"SUB-MARKETING": 2, "SUB-BIRTHDAY": 1}
    change = ch.side.subscribe_change(openid, ["SUB-MARKETING"], create_time=created)
    assert ch.send(change, aes=True).raw == "success"
    assert _credits(mid) == {"SUB-BIRTHDAY": 1}
    assert ch.send(ch.side.subscribe_change(stranger, ["SUB-BIRTHDAY"])).raw == "success"  # not a member
    assert ch.assistant.calls == []  # settings are not a conversation
    # A later consent counts again; the change event retried after it (another process, dedup forgotten)
    # voids nothing granted after the shopper acted.
    ch.send(ch.side.subscribe_popup(openid, [("SUB-MARKETING", "accept")], create_time=created + 5))
    assert make_channel(store=MemoryStore()).send(change, aes=False).raw == "success"
    assert _credits(mid) == {"SUB-MARKETING": 1, "SUB-BIRTHDAY": 1}
    # Nothing is sent on a revoked credit: one broadcast, one subscription message on the new credit.
    at = DAY + timedelta(days=7)
    db.run(svc.create_broadcast, "B-after", {}, "新品到店", "New in store", at, actor="ops")
    db.run(svc.plan_all, at, replace(CFG, journeys=()))
    while delivery.deliver_due("w", {"wechat": wechat["wechat"]}, now=at, cfg=CFG).sent:
        pass
    assert [n["kind"] for n in notices(fake_api, openid)] == ["subscribe"]
    assert _credits(mid) == {"SUB-BIRTHDAY": 1}


def test_wechats_sent_report_settles_a_send_left_in_doubt(
        engine: Any, make_channel: Any, wechat: dict[str, Any], fake_api: FakeApi) -> None:
    delivered, blocked, stranger = new_openid(), new_openid(), new_openid()
    ok_m, blocked_m = wechat_member(delivered), wechat_member(blocked)
    for mid in (ok_m, blocked_m, blocked_m):
        db.run(svc.grant_credit, mid, "SUB-MARKETING", DAY)
    run("welcome", DAY + timedelta(hours=1), {"wechat": wechat["wechat"]})
    # The scheduler died inside both API calls: its restart marked them in doubt (never sent again).
    db.run(lambda s: s.execute(update(OutreachSend).values(status="in_doubt")))
    at = int((DAY + timedelta(hours=1, minutes=2)).timestamp())
    ch = make_channel()
    report = ch.side.subscribe_sent(delivered, [("SUB-MARKETING", "success")], create_time=at)
    assert ch.send(report, aes=True).raw == "success"
    ch.send(ch.side.subscribe_sent(blocked, [("SUB-MARKETING", "failed:user block")], create_time=at))
    ch.send(ch.side.subscribe_sent(stranger, [("SUB-MARKETING", "success")], create_time=at))  # not a member

    def state() -> dict[int, tuple[str, str | None]]:
        rows = db.run(lambda s: list(s.execute(select(OutreachSend.member_id, OutreachSend.status,
                                                      OutreachSend.errcode))), readonly=True)
        return {m: (status, err) for m, status, err in rows}

    assert state() == {ok_m: ("sent", None), blocked_m: ("failed", "failed:user block")}
    assert _credits(blocked_m) == {}  # WeChat would refuse the member's other credit too
    # A replayed report (another process, dedup forgotten) settles nothing more; a report of a send
    # more than an hour after it cannot be matched to it.
    db.run(lambda s: s.execute(update(OutreachSend).where(OutreachSend.member_id == ok_m)
                               .values(status="in_doubt")))
    late = int((DAY + timedelta(hours=2, minutes=5)).timestamp())
    make_channel(store=MemoryStore()).send(ch.side.subscribe_sent(delivered, [("SUB-MARKETING", "success")],
                                                                  create_time=late))
    assert state()[ok_m] == ("in_doubt", None)
    assert ch.assistant.calls == []  # a delivery report is not a conversation
