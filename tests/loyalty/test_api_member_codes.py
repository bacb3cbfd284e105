"""The tills' member-code endpoint over real HTTP, on SQLite and PostgreSQL: one use, clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from loyalty import db
from loyalty.identity import member_codes
from loyalty.identity.models import MemberCode
from tests.loyalty.test_api import Api, _at_once, _counts, _member, base_url, pos, pos_lite  # noqa: F401

pytestmark = pytest.mark.timeout(180)
PATH = "/member-codes/resolve"


def _shown(member_id: int, seconds_ago: float = 0) -> str:
    return db.run(member_codes.issue, member_id, now=db.utcnow() - timedelta(seconds=seconds_ago)).code


def _used() -> list[tuple[str, str | None]]:
    return db.run(lambda s: sorted(s.execute(select(MemberCode.code, MemberCode.used_by)).all()), readonly=True)


def test_a_member_code_resolves_once(pos: Api) -> None:
    member = _member("13800138000")
    code = _shown(member)
    r = pos.post(PATH, {"code": code})
    assert r.status_code == 200, r.text
    assert r.json() == {"member_id": member, "tier": "normal", "points": 0, "phone_masked": "138****8000"}
    again = pos.post(PATH, {"code": code})
    assert again.status_code == 409 and again.json()["error"] == "member_code_used"
    assert _used() == [(code, "pos")]


def test_a_code_claimed_for_another_member_is_refused_and_stays_usable(pos: Api) -> None:
    member, other = _member("13800138000"), _member("13900139000")
    code = _shown(member)
    before = _counts()
    r = pos.post(PATH, {"code": code, "member_id": other})
    assert r.status_code == 409 and r.json()["error"] == "member_code_mismatch"
    assert _counts() == before and _used() == [(code, None)]
    ok = pos.post(PATH, {"code": code, "member_id": member})
    assert ok.status_code == 200 and ok.json()["member_id"] == member


@pytest.mark.parametrize("body, status, error", [
    ({"code": "12345"}, 400, "invalid_member_code"),
    ({"code": "9912345678"}, 400, "invalid_member_code"),
    ({"code": "88abcdefgh"}, 400, "invalid_member_code"),
    ({"code": 8812345678}, 400, "invalid_member_code"),
    ({"code": "8" * 100}, 400, "invalid_member_code"),
    ({}, 400, "missing_field"),
    ({"code": "8800000000", "store": "SH01"}, 400, "unknown_field"),
    ({"code": "8800000000", "member_id": "7"}, 400, "invalid_field"),
    ({"code": "8800000000"}, 404, "unknown_member_code"),
])
def test_bad_input_is_answered_clearly_and_writes_nothing(pos_lite: Api, body: dict, status: int,
                                                          error: str) -> None:
    member = _member()
    code = _shown(member)
    if body.get("code") == "8800000000" and code == "8800000000":
        pytest.skip("the random code happens to be the unknown one")
    before = _counts()
    r = pos_lite.post(PATH, body)
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert r.json()["message"]
    assert _counts() == before and _used() == [(code, None)]


def test_an_expired_code_is_refused_and_writes_nothing(pos: Api) -> None:
    member = _member()
    code = _shown(member, seconds_ago=61)
    before = _counts()
    r = pos.post(PATH, {"code": code})
    assert r.status_code == 409 and r.json()["error"] == "member_code_expired"
    assert "fresh" in r.json()["message"]
    assert _counts() == before and _used() == [(code, None)]


def test_the_key_is_needed(pos_lite: Api) -> None:
    code = _shown(_member())
    r = pos_lite.post(PATH, {"code": code}, auth=False)
    assert r.status_code == 401 and _used() == [(code, None)]
    r = pos_lite.post(PATH, raw=b"code=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_tills_scanning_the_same_code_at_once_get_it_once(pos: Api) -> None:
    code = _shown(_member())
    replies = _at_once(16, lambda i: pos.post(PATH, {"code": code}))
    assert sorted(r.status_code for r in replies) == [200] + [409] * 15
    assert {r.json()["error"] for r in replies if r.status_code == 409} == {"member_code_used"}
