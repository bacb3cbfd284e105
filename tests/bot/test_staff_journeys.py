"""Journeys and broadcasts in the staff app over HTTP: figures, CSV, switches, a draft's preview, roles."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from urllib.parse import quote

import requests

from loyalty import db
from loyalty.db import utcnow
from loyalty.outreach import outcomes
from loyalty.outreach import service as outreach
from tests.bot.test_staff_app import _login, server  # noqa: F401 - the server fixture
from tests.loyalty.corekit import T0, counts
from tests.loyalty.test_reports_outreach import _welcome_fixture

SHANGHAI_NOON = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT12:00")


def _form(**kw: str) -> dict[str, str]:
    return {"code": "SPRING", "text_zh": "春季上新", "text_en": "Spring arrivals", "send_at": SHANGHAI_NOON,
            "store": "RA1", **kw}


def test_a_store_manager_gets_no_journey_figures_however_asked(server: str) -> None:  # noqa: F811
    _welcome_fixture()
    manager = _login(server, "store_manager", "RA1")
    for path in ("/api/journeys", "/api/journeys.csv", "/api/journeys/welcome/preview"):
        r = manager.get(server + path)
        assert r.status_code == 403 and r.json()["error"] == "not_allowed", path
    before = counts()
    for path, body in (("/api/journeys/welcome/pause", {}), ("/api/broadcasts/preview", _form()),
                       ("/api/broadcasts", _form())):
        r = manager.post(server + path, json=body)
        assert r.status_code == 403 and r.json()["error"] == "not_allowed", path
    assert counts() == before and not db.run(outreach.paused, "welcome")
    assert requests.get(f"{server}/api/journeys").status_code == 401


def test_figures_csv_and_switches(server: str) -> None:  # noqa: F811
    _welcome_fixture()
    boss = _login(server, "marketing")
    body = boss.get(f"{server}/api/journeys").json()
    w = next(r for r in body["journeys"] if r["journey"] == "welcome")
    assert (w["treatment"], w["control"], w["reached"], w["coupon_cost_fen"]) == (3, 2, 1, 1000)
    assert "7 天内下单" in body["definitions"]["journeys"][0]
    rows = list(csv.DictReader(io.StringIO(boss.get(f"{server}/api/journeys.csv").text)))
    wc = next(r for r in rows if r["journey"] == "welcome")
    assert (wc["conversion_treatment"], wc["conversion_control"], wc["revenue_per_member_treatment_fen"]) == (
        "0.3333", "0.5", "5000")
    assert boss.post(f"{server}/api/journeys/welcome/pause").json()["journey"]["state"] == "paused"
    assert db.run(outreach.paused, "welcome")
    assert boss.post(f"{server}/api/journeys/welcome/resume").status_code == 200
    assert not db.run(outreach.paused, "welcome")
    assert boss.post(f"{server}/api/journeys/nope/pause").json()["error"] == "journey_not_found"
    # Without the app's header (a cross-site form) nothing changes.
    assert requests.post(f"{server}/api/journeys/welcome/pause", cookies=boss.cookies).status_code == 403
    assert not db.run(outreach.paused, "welcome")


def test_the_tab_says_up_to_when_outcomes_are_frozen_and_its_figures_stay(server: str) -> None:  # noqa: F811
    _welcome_fixture()
    boss = _login(server, "marketing")
    live = boss.get(f"{server}/api/journeys").json()
    assert live["outcomes_frozen_until"] is None
    at = T0 + timedelta(days=30)  # every window of the fixture has closed
    db.run(outcomes.freeze_outcomes, at)
    frozen = boss.get(f"{server}/api/journeys").json()
    assert datetime.fromisoformat(frozen["outcomes_frozen_until"]) == at
    assert frozen["journeys"] == live["journeys"]


def test_a_broadcast_previewed_then_saved(server: str) -> None:  # noqa: F811
    _welcome_fixture()
    boss = _login(server, "supervisor")
    before = counts()
    p = boss.post(f"{server}/api/broadcasts/preview", json=_form()).json()["preview"]
    assert counts() == before  # a preview writes nothing
    # Store RA1's active members: m1, m2 and the four joined in the journey fixture.
    assert p["audience"] == 6 and p["message_zh"] == "春季上新" and p["message_en"] == "Spring arrivals"
    for bad, field in (({"send_at": "tomorrow"}, "send_at"), ({"text_en": " "}, "text_en"),
                       ({"store": "ZZ9"}, "store"), ({"code": "no spaces"}, "code"),
                       ({"text_zh": "满{100减20"}, "text_zh")):
        r = boss.post(f"{server}/api/broadcasts/preview", json=_form(**bad))
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    past = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT12:00")
    r = boss.post(f"{server}/api/broadcasts", json=_form(send_at=past))
    assert r.status_code == 400 and r.json()["field"] == "send_at"
    assert counts() == before
    r = boss.post(f"{server}/api/broadcasts", json=_form())
    assert r.status_code == 201, r.text
    local = datetime.fromisoformat(SHANGHAI_NOON)
    assert r.json()["broadcast"]["send_at"].startswith(f"{local.date().isoformat()}T04:00")
    rows = boss.get(f"{server}/api/journeys").json()["journeys"]
    assert [r["state"] for r in rows if r["journey"] == "broadcast:SPRING"] == ["scheduled"]
    got = boss.get(f"{server}/api/journeys/{quote('broadcast:SPRING')}/preview")
    assert got.status_code == 200, got.text
    saved = got.json()["preview"]
    assert saved["audience"] == 6
    assert boss.post(f"{server}/api/journeys/{quote('broadcast:SPRING')}/pause").status_code == 200
    assert db.run(outreach.paused, "broadcast:SPRING")
    assert boss.post(f"{server}/api/broadcasts", json=_form()).json()["field"] == "code"  # twice: refused
    assert boss.post(f"{server}/api/broadcasts/preview", json=_form()).json()["field"] == "code"
    r = boss.post(f"{server}/api/journeys/{quote('broadcast:NOPE')}/pause")
    assert r.status_code == 404 and r.json()["error"] == "broadcast_not_found"
