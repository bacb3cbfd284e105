"""The staff app over HTTP: roles, a store manager held to their store, CSV, campaigns, CSRF."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.console import sessions
from bot.settings import load_console_settings
from bot.staff.app import create_app
from bot.wechat.dev.local_server import LocalServer
from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.coupons.models import CouponCampaign
from loyalty.staff import service as staff
from tests.loyalty.corekit import T0, counts
from tests.loyalty.test_reports import DAY, _fixture

PW = "correct horse battery"
RANGE = {"start": (T0 - DAY).date().isoformat(), "end": (T0 + 9 * DAY).date().isoformat()}
_names = itertools.count()


@pytest.fixture
def server(engine: Engine, tmp_path: Any) -> Iterator[str]:
    cfg = load_console_settings({}, secret="staff-tests-secret-0123456789", var_dir=str(tmp_path))
    srv = LocalServer(create_app(cfg, name=f"staff_test_{next(_names)}")).start()
    yield srv.url + "/staff"
    srv.stop()


def _login(base: str, role: str, store: str | None = None) -> requests.Session:
    name = f"{role.replace('_', '')}{next(_names)}"
    db.run(staff.create_staff, name, PW, role=role, store=store)
    http = requests.Session()
    r = http.post(f"{base}/api/login", json={"username": name, "password": PW}, headers={"X-Staff": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["me"]["role"] == role
    http.headers["X-Staff"] = "1"
    return http


def test_roles_and_a_store_managers_own_store_only(server: str) -> None:
    _fixture()
    boss = _login(server, "marketing")
    manager = _login(server, "store_manager", "RA1")
    every = boss.get(f"{server}/api/dashboard", params=RANGE).json()
    assert {r["store"] for r in every["new_members"]} == {"RA1", "RB2"}
    # The store filter changes the numbers.
    only_b = boss.get(f"{server}/api/dashboard", params={**RANGE, "store": "RB2"}).json()
    assert {r["store"] for r in only_b["new_members"]} == {"RB2"} and only_b["active_members"] == 1
    mine = manager.get(f"{server}/api/dashboard", params=RANGE).json()
    assert {r["store"] for r in mine["new_members"]} == {"RA1"} and mine["active_members"] == 1
    # Another store, however asked: page data, CSV, QR sheet.
    for path in ("/api/dashboard", "/api/dashboard/new_members.csv"):
        r = manager.get(server + path, params={**RANGE, "store": "RB2"})
        assert r.status_code == 403 and r.json()["error"] == "other_store"
    assert manager.get(f"{server}/api/stores/RB2/qr-sheet.png").status_code == 403
    assert [s["code"] for s in manager.get(f"{server}/api/stores").json()["stores"]] == ["RA1"]
    # No campaigns for a store manager.
    r = manager.post(f"{server}/api/campaigns", json={"code": "NOPE"})
    assert r.status_code == 403 and r.json()["error"] == "not_allowed"
    assert requests.get(f"{server}/api/dashboard").status_code == 401


def test_csv_equals_the_hand_computed_rows(server: str) -> None:
    _fixture()
    boss = _login(server, "supervisor")
    r = boss.get(f"{server}/api/dashboard/new_members.csv", params=RANGE)
    assert r.headers["content-type"].startswith("text/csv")
    day0, day1 = T0.date().isoformat(), (T0 + DAY).date().isoformat()
    assert list(csv.DictReader(io.StringIO(r.text))) == [
        {"day": day0, "store": "RA1", "channel": "wechat", "members": "1"},
        {"day": day1, "store": "RA1", "channel": "webchat", "members": "1"},
        {"day": day1, "store": "RB2", "channel": "wechat", "members": "1"},
    ]
    wechat = boss.get(f"{server}/api/dashboard/new_members.csv", params={**RANGE, "channel": "wechat"})
    assert wechat.text.count("\n") == 3  # header and two rows


def test_bad_campaigns_are_refused_and_write_nothing(server: str) -> None:
    _fixture()
    boss = _login(server, "marketing")
    good = {"code": "WEB20", "name_zh": "满100减20", "name_en": "20 off 100", "kind": "threshold",
            "threshold": "100", "discount": "20", "valid_days": "30", "total_stock": "50"}
    before = counts()
    for bad, field in (({"claim_start": "2026-03-10", "claim_end": "2026-03-01"}, "claim_end"),
                       ({"total_stock": "-5"}, "total_stock"), ({"discount": "abc"}, "discount")):
        r = boss.post(f"{server}/api/campaigns", json={**good, **bad})
        assert r.status_code == 400 and r.json()["field"] == field, r.text
        assert r.json()["message"]
    assert counts() == before
    # Without the app's header (a cross-site form), nothing is written either.
    assert requests.post(f"{server}/api/campaigns", json=good, cookies=boss.cookies).status_code == 403
    assert counts() == before


def test_a_campaign_made_in_the_app_runs_pauses_and_ends(server: str) -> None:
    f = _fixture()
    boss = _login(server, "marketing")
    r = boss.post(f"{server}/api/campaigns", json={"code": "web20", "name_zh": "满100减20", "name_en": "20 off",
                                                  "kind": "threshold", "threshold": "100", "discount": "20",
                                                  "valid_days": "30", "total_stock": "5"})
    assert r.status_code == 201 and r.json()["campaign"]["state"] == "active"
    claim = db.run(coupons.claim, f["m1"], "WEB20", key="web-1")
    assert claim.coupon.campaign.code == "WEB20"
    assert boss.post(f"{server}/api/campaigns/WEB20", json={"total_stock": "0"}).status_code == 400  # below issued
    assert boss.post(f"{server}/api/campaigns/WEB20", json={"kind": "percent"}).json()["field"] == "kind"
    assert boss.post(f"{server}/api/campaigns/WEB20/pause").json()["campaign"]["state"] == "paused"
    assert "WEB20" not in [o.campaign.code for o in db.run(coupons.offers, f["m2"], readonly=True)]
    assert boss.post(f"{server}/api/campaigns/WEB20/end").json()["campaign"]["state"] == "ended"
    assert boss.post(f"{server}/api/campaigns/WEB20/resume").status_code == 409
    stock = db.run(lambda s: s.execute(select(func.sum(CouponCampaign.issued))).scalar(), readonly=True)
    assert stock == 1


def test_a_console_cookie_is_no_staff_cookie(server: str) -> None:
    db.run(staff.create_staff, "cookieboss", PW, role="supervisor")
    view = db.run(lambda s: staff.accounts(s)[0], readonly=True)
    forged = sessions.issue(view.id, view.session_version, 1, b"staff-tests-secret-0123456789")
    r = requests.get(f"{server}/api/me", cookies={"staff_session": forged})
    assert r.status_code == 401


def test_bot_csv_and_a_managers_conversations(server: str) -> None:
    from loyalty.conversations.service import rate_bot
    from tests.loyalty.test_conversations import talk

    talk()
    for sender, score in (("o-1", 5), ("o-3", 2)):  # m1 of store A, m3 of store B
        db.run(rate_bot, sender, "wechat", score, session_started_at=T0, now=T0 + DAY)
    boss = _login(server, "supervisor")
    rows = {r["figure"]: r["value"] for r in csv.DictReader(io.StringIO(
        boss.get(f"{server}/api/dashboard/bot.csv", params=RANGE).text))}
    # tests/loyalty/test_conversations.py: 5 conversations, 3 contained, 3 of the bot's 9 turns not understood.
    assert (rows["conversations"], rows["contained"], rows["containment"]) == ("5", "3", "0.6")
    assert (rows["fallback_rate"], rows["handoff_rate_request"], rows["handoffs_complaint"]) == ("0.3333", "0.2", "1")
    assert (rows["rated"], rows["satisfaction"], rows["bot_rated"], rows["bot_satisfaction"]) == ("0", "", "2", "3.5")
    manager = _login(server, "store_manager", "RB2")
    mine = manager.get(f"{server}/api/dashboard", params=RANGE).json()
    # Store B's only member (m3) had one conversation, handed off for a complaint.
    assert [(r["channel"], r["conversations"], r["handed_off"]) for r in mine["conversations"]] == [("wechat", 1, 1)]
    assert (mine["bot"]["conversations"], mine["bot"]["containment"]) == (1, 0.0)
    assert (mine["bot"]["bot_rated"], mine["bot"]["bot_satisfaction"]) == (1, 2.0)
    r = manager.get(f"{server}/api/dashboard/conversations.csv", params={**RANGE, "store": "RA1"})
    assert r.status_code == 403 and r.json()["error"] == "other_store"
