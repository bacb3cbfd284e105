"""Journey and broadcast copy in the staff app over HTTP: show, preview (nothing written), save, reset, roles."""

from __future__ import annotations

from urllib.parse import quote

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.outreach import service as outreach
from tests.bot.test_staff_app import _login, server  # noqa: F401 - the server fixture
from tests.loyalty.corekit import counts, join

EXPIRY = {"step": "d30", "text_zh": "{points}积分{date}到期，快来兑换", "text_en": "{points} points expire {date}"}


def test_marketing_previews_saves_and_resets_a_steps_copy(server: str) -> None:  # noqa: F811
    join(channel="wechat", external_id="o-copy")
    mkt = _login(server, "marketing")
    steps = {s["step"]: s for s in mkt.get(f"{server}/api/copy/points_expiring").json()["steps"]}
    assert set(steps) == {"d30", "d7"} and steps["d30"]["fields"][:2] == ["date", "points"]
    before = counts()
    r = mkt.post(f"{server}/api/copy/points_expiring/preview", json=EXPIRY)
    assert r.status_code == 200 and r.json()["preview"]["message_zh"] == "500积分2026-12-31到期，快来兑换"
    bad = mkt.post(f"{server}/api/copy/points_expiring/preview", json={**EXPIRY, "text_en": "{balance} left"})
    assert bad.status_code == 400 and bad.json()["field"] == "text_en" and "{balance}" in bad.json()["message"]
    assert counts() == before  # previews write nothing, not even an audit line
    saved = mkt.post(f"{server}/api/copy/points_expiring", json=EXPIRY).json()["steps"]
    assert saved[0]["edited"] and saved[0]["text_zh"] == EXPIRY["text_zh"]
    assert db.run(outreach.step_for, "points_expiring", "d30", readonly=True).en == EXPIRY["text_en"]
    back = mkt.post(f"{server}/api/copy/points_expiring", json={"step": "d30", "reset": True}).json()["steps"]
    assert not back[0]["edited"] and back[0]["text_zh"] == back[0]["code_zh"]
    assert mkt.get(f"{server}/api/copy/{quote('broadcast:NOPE')}").status_code == 404


def test_a_store_manager_may_not_touch_copy(server: str) -> None:  # noqa: F811
    db.run(lambda s: s.add(Store(code="RC1", name_zh="丙店", name_en="Store C", city="上海", active=True)))
    manager = _login(server, "store_manager", "RC1")
    before = counts()
    assert manager.get(f"{server}/api/copy/welcome").status_code == 403
    for path in ("/api/copy/points_expiring", "/api/copy/points_expiring/preview"):
        assert manager.post(server + path, json=EXPIRY).status_code == 403
    assert counts() == before
