"""The loyalty HTTP API over real HTTP on a loopback port.

The service-level tests cover the business rules in depth; these cover the
HTTP contract: keys, status codes, idempotent replays under concurrency,
error bodies for bad input with nothing written, and outages.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from sanic import Sanic
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.apikeys import service as apikeys
from loyalty.apikeys.models import ApiClient
from loyalty.apps.api import create_app
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon
from loyalty.db import Base
from loyalty.errors import InvalidInput, Refused
from loyalty.identity import member_codes
from loyalty.identity.models import MemberCode
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders.models import Order
from loyalty.points.models import LedgerEntry
from tests.support.live_api import LiveServer
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(180)


# --------------------------------------------------------------------------- a live server


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    # Test mode lets Sanic start a second app in one process (other test modules run theirs).
    Sanic.test_mode = True
    server = LiveServer(create_app(f"loyalty-api-test-{id(object())}"))
    yield server.start()
    server.stop()


@dataclass
class Api:
    """A caller with a key; each call is one real HTTP request on a fresh connection."""

    base: str
    key: str

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Connection": "close", **(extra or {})}

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None, auth: bool = True) -> requests.Response:
        if raw is None:
            raw = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        h = self.headers(headers) if auth else {"Connection": "close", **(headers or {})}
        return requests.post(self.base + path, data=raw, headers=h, timeout=60)

    def get(self, path: str, *, auth: bool = True, headers: dict[str, str] | None = None) -> requests.Response:
        h = self.headers(headers) if auth else {"Connection": "close", **(headers or {})}
        return requests.get(self.base + path, headers=h, timeout=60)


def _client(base_url: str, source: str = "pos") -> Api:
    return Api(base_url, db.run(apikeys.create_api_client, source))


@pytest.fixture
def pos(base_url: str, engine: Engine) -> Api:
    """The till's client, on SQLite and on PostgreSQL."""
    return _client(base_url)


@pytest.fixture
def pos_lite(base_url: str, sqlite_engine: Engine) -> Api:
    """The till's client where the backend does not matter."""
    return _client(base_url)


# --------------------------------------------------------------------------- data helpers


def _member(phone: str = "13800138000") -> int:
    return db.run(membership.signup, phone=phone, consent=True).card.id


def _store(code: str = "SH01") -> None:
    db.run(lambda s: s.add(Store(code=code, name_zh="上海店", name_en="Shanghai", city="上海")))


def _coupon(member_id: int, campaign: str = "C20") -> str:
    db.run(coupons.create_campaign, code=campaign, name_zh="满100减20", name_en="20 off 100", kind="threshold",
           threshold_fen=10000, discount_fen=2000, total_stock=100, valid_days=30, points_cost=0)
    return db.run(coupons.claim, member_id, campaign, key=f"k-{campaign}").coupon.code


def _order(ext: str = "A1", amount: str = "128.50", **more: Any) -> dict[str, Any]:
    now = db.utcnow() - timedelta(minutes=5)
    return {"external_id": ext, "placed_at": now.isoformat(), "amount": amount, **more}


def _counts() -> dict[str, Any]:
    """Rows in every table and the state of every coupon: what "nothing written" compares."""
    def read(s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
                               for t in Base.metadata.sorted_tables}
        out["coupon_states"] = sorted(s.execute(select(Coupon.code, Coupon.status, Coupon.redeemed_ref)).all())
        out["balances"] = sorted(s.execute(select(Member.id, Member.points_balance)).all())
        return out
    return db.run(read, readonly=True)


def _earn_entries(member_id: int) -> list[int]:
    return db.run(lambda s: list(s.execute(
        select(LedgerEntry.delta).where(LedgerEntry.member_id == member_id, LedgerEntry.kind == "earn")
    ).scalars()), readonly=True)


def _balance(member_id: int) -> int:
    return db.run(lambda s: s.get(Member, member_id).points_balance, readonly=True)


def _at_once(n: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    """Run ``call(i)`` for i < n in n threads released together, each on its own connection."""
    gate = threading.Barrier(n)

    def go(i: int) -> requests.Response:
        gate.wait(10)
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


# --------------------------------------------------------------------------- health


def test_health_needs_no_key_and_readiness_checks_the_database(pos_lite: Api) -> None:
    r = pos_lite.get("/health", auth=False)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = pos_lite.get("/ready", auth=False)
    assert r.status_code == 200 and r.json() == {"status": "ready", "database": "ok"}


# --------------------------------------------------------------------------- orders


def test_an_order_posted_again_earns_once_and_replays_the_first_answer(pos: Api) -> None:
    mid = _member()
    body = _order(member_id=mid)
    first = pos.post("/orders", body)
    assert first.status_code == 201, first.text
    assert first.json()["points_earned"] == 128 and first.json()["replayed"] is False
    for _ in range(4):
        again = pos.post("/orders", body)
        assert again.status_code == 200
        assert again.json() == {**first.json(), "replayed": True}
    assert _earn_entries(mid) == [128]
    assert _balance(mid) == 128


def test_twenty_concurrent_posts_of_one_order_earn_once(pos: Api) -> None:
    mid = _member()
    body = _order("PAR-1", "300.00", member_id=mid)
    rs = _at_once(20, lambda i: pos.post("/orders", body))
    assert sorted(r.status_code for r in rs) == [200] * 19 + [201], [r.text for r in rs if r.status_code >= 300]
    firsts = {json.dumps({**r.json(), "replayed": None}, sort_keys=True) for r in rs}
    assert len(firsts) == 1  # every caller got the first result
    assert _earn_entries(mid) == [300]
    assert _balance(mid) == 300
    assert _counts()["orders"] == 1


def test_concurrent_posts_of_an_anonymous_order_record_it_once(pos: Api) -> None:
    # No member row to lock: the unique (source, external_id) decides, and the loser replays.
    body = _order("ANON-1", "59.90")
    rs = _at_once(10, lambda i: pos.post("/orders", body))
    assert sorted(r.status_code for r in rs) == [200] * 9 + [201], [r.text for r in rs]
    assert len({r.json()["order_id"] for r in rs}) == 1
    assert _counts()["orders"] == 1


def test_same_order_id_with_other_content_is_409_and_changes_nothing(pos: Api) -> None:
    mid = _member()
    assert pos.post("/orders", _order(member_id=mid)).status_code == 201
    before = _counts()
    r = pos.post("/orders", {**_order(member_id=mid), "amount": "999.00"})
    assert r.status_code == 409
    assert r.json()["error"] == "idempotency_conflict" and r.json()["external_id"] == "A1"
    assert _counts() == before


def test_the_key_decides_the_source_of_an_order(pos_lite: Api) -> None:
    shop = _client(pos_lite.base, "webshop")
    mid = _member()
    body = _order("SAME-ID", "100.00", member_id=mid)
    assert pos_lite.post("/orders", body).status_code == 201
    # The same id from another source is another order, not a replay.
    r = shop.post("/orders", body)
    assert r.status_code == 201 and r.json()["replayed"] is False
    sources = db.run(lambda s: sorted(s.execute(select(Order.source)).scalars()), readonly=True)
    assert sources == ["pos", "webshop"]
    # A caller cannot pick its source in the body.
    forged = shop.post("/orders", {**_order("X-2", member_id=mid), "source": "pos"})
    assert forged.status_code == 400 and forged.json()["error"] == "unknown_field"


def test_a_return_claws_back_and_replays(pos: Api) -> None:
    mid = _member()
    assert pos.post("/orders", _order("O-1", "200.00", member_id=mid)).status_code == 201
    ret = {**_order("R-1", "50.00"), "original_external_id": "O-1"}
    first = pos.post("/returns", ret)
    assert first.status_code == 201, first.text
    assert first.json()["points_clawed_back"] == 50 and first.json()["balance"] == 150
    again = pos.post("/returns", ret)
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}
    assert _balance(mid) == 150

    before = _counts()
    too_much = pos.post("/returns", {**_order("R-2", "150.01"), "original_external_id": "O-1"})
    assert too_much.status_code == 400
    assert too_much.json() | {"message": None} == {"error": "return_exceeds_order", "message": None,
                                                     "returnable": "150.00"}
    unknown = pos.post("/returns", {**_order("R-3", "1.00"), "original_external_id": "NOPE"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_order"
    assert _counts() == before


# --------------------------------------------------------------------------- coupons


def test_twenty_concurrent_redemptions_of_one_code_succeed_once(pos: Api) -> None:
    code = _coupon(_member())
    rs = _at_once(20, lambda i: pos.post("/coupons/redeem", {
        "code": code, "order_ref": f"T-{i}", "order_amount": "150.00"}))
    ok = [r for r in rs if r.status_code == 200]
    assert len(ok) == 1, [r.text for r in rs]
    assert {r.json()["error"] for r in rs if r is not ok[0]} == {"already_redeemed"}
    assert all(r.status_code == 409 for r in rs if r is not ok[0])
    assert ok[0].json()["discount"] == "20.00" and ok[0].json()["replayed"] is False
    states = _counts()["coupon_states"]
    assert states == [(code, "redeemed", f"pos:{ok[0].json()['order_ref']}")]


def test_concurrent_replays_of_one_redemption_all_get_its_answer(pos: Api) -> None:
    code = _coupon(_member())
    body = {"code": code, "order_ref": "T-1", "order_amount": "150.00"}
    rs = _at_once(10, lambda i: pos.post("/coupons/redeem", body))
    assert [r.status_code for r in rs] == [200] * 10, [r.text for r in rs]
    assert sorted(r.json()["replayed"] for r in rs) == [False] + [True] * 9
    assert len({(r.json()["redeemed_at"], r.json()["discount"]) for r in rs}) == 1


def test_a_redemption_replays_for_its_order_only(pos_lite: Api) -> None:
    code = _coupon(_member())
    body = {"code": code.lower(), "order_ref": "T-9", "order_amount": 150, "store_code": None}
    first = pos_lite.post("/coupons/redeem", body)
    assert first.status_code == 200, first.text
    assert first.json() | {"redeemed_at": None} == {
        "code": code, "campaign_code": "C20", "kind": "threshold", "discount": "20.00", "gift_sku": None,
        "order_ref": "T-9", "redeemed_at": None, "replayed": False}
    again = pos_lite.post("/coupons/redeem", body)
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}
    other = pos_lite.post("/coupons/redeem", {**body, "order_ref": "T-10"})
    assert other.status_code == 409 and other.json()["error"] == "already_redeemed"
    # The same order reference from another system is not a replay.
    shop = _client(pos_lite.base, "webshop")
    theirs = shop.post("/coupons/redeem", body)
    assert theirs.status_code == 409 and theirs.json()["error"] == "already_redeemed"


def test_a_refused_redemption_leaves_the_coupon_usable(pos_lite: Api) -> None:
    code = _coupon(_member())
    _store("SH01")
    before = _counts()
    r = pos_lite.post("/coupons/redeem", {"code": code, "order_ref": "T-1", "order_amount": "99.99"})
    assert r.status_code == 409 and r.json()["error"] == "threshold_not_met" and r.json()["threshold"] == "100.00"
    assert _counts() == before
    ok = pos_lite.post("/coupons/redeem", {"code": code, "order_ref": "T-1", "order_amount": "100.00",
                                           "store_code": "sh01"})
    assert ok.status_code == 200, ok.text
    assert db.run(lambda s: s.execute(select(Coupon.redeemed_store_id)).scalar_one(), readonly=True) is not None


# --------------------------------------------------------------------------- keys


ENDPOINTS = [
    ("POST", "/orders"),
    ("POST", "/returns"),
    ("POST", "/coupons/redeem"),
    ("GET", "/members/1/points"),
]


def _call(api: Api, method: str, path: str, headers: dict[str, str], auth: bool) -> requests.Response:
    if method == "GET":
        return api.get(path, auth=auth, headers=headers)
    return api.post(path, _order("K-1", member_id=1), auth=auth, headers=headers)


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_protected_endpoint_refuses_bad_keys_and_writes_nothing(pos_lite: Api, method: str, path: str) -> None:
    _member()
    inactive_key = db.run(apikeys.create_api_client, "old-till")
    db.run(apikeys.deactivate, "old-till")
    before = _counts()
    cases = [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer lk_not-a-key"}, "invalid_api_key"),
        ({"Authorization": f"Basic {pos_lite.key}"}, "invalid_api_key"),
        ({"Authorization": "Bearer "}, "invalid_api_key"),
        ({"X-Api-Key": "x" * 5000}, "invalid_api_key"),
        ({"X-Api-Key": inactive_key}, "inactive_api_key"),
    ]
    for headers, code in cases:
        r = _call(pos_lite, method, path, headers, auth=False)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == code and r.json()["message"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert _counts() == before
    # X-Api-Key is the alternative header.
    r = _call(pos_lite, method, path, {"X-Api-Key": pos_lite.key}, auth=False)
    assert r.status_code != 401, r.text


def test_rotating_a_key_stops_the_old_one_at_once(pos_lite: Api) -> None:
    assert pos_lite.get("/members/999/points").json()["error"] == "member_not_found"
    new = db.run(apikeys.rotate_key, "pos")
    assert pos_lite.get("/members/999/points").json()["error"] == "invalid_api_key"
    assert Api(pos_lite.base, new).get("/members/999/points").json()["error"] == "member_not_found"


def test_keys_are_stored_as_hashes_only(sqlite_engine: Engine) -> None:
    key = db.run(apikeys.create_api_client, "webshop")
    assert key.startswith("lk_") and len(key) >= 40
    row = db.run(lambda s: s.execute(select(ApiClient)).scalar_one(), readonly=True)
    assert row.key_hash == apikeys.hash_key(key) and key not in row.key_hash
    assert db.run(apikeys.authenticate, key) == "webshop"
    assert db.run(apikeys.authenticate, key + "x") is None
    assert db.run(apikeys.authenticate, "bad key\n") is None
    with pytest.raises(Refused) as exists:
        db.run(apikeys.create_api_client, "webshop")
    assert exists.value.code == "api_client_exists"
    with pytest.raises(InvalidInput):
        db.run(apikeys.create_api_client, "Web Shop!")
    assert db.run(apikeys.deactivate, "webshop") is True
    assert db.run(apikeys.authenticate, key) is None
    assert [c.active for c in db.run(apikeys.clients)] == [False]


# --------------------------------------------------------------------------- bad input


def _bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


JSON = {"Content-Type": "application/json"}
FUTURE = (db.utcnow() + timedelta(days=1)).isoformat()

# (path, body bytes, headers, status, error code)
BAD_INPUT = {
    "no content type": ("/orders", b'{"external_id": "B1"}', {}, 415, "unsupported_media_type"),
    "text content type": ("/orders", b'{"external_id": "B1"}', {"Content-Type": "text/plain"}, 415,
                          "unsupported_media_type"),
    "latin-1 charset": ("/orders", b'{"external_id": "B1"}',
                        {"Content-Type": "application/json; charset=latin-1"}, 415, "unsupported_media_type"),
    "empty body": ("/orders", b"", JSON, 400, "empty_body"),
    "malformed json": ("/orders", b'{"external_id": ', JSON, 400, "invalid_json"),
    "not utf-8": ("/orders", '{"external_id": "单号"}'.encode("gbk"), JSON, 400, "invalid_json"),
    "NaN amount": ("/orders", b'{"external_id": "B1", "amount": NaN}', JSON, 400, "invalid_json"),
    "number of 5000 digits": ("/orders", b'{"external_id": "B1", "amount": ' + b"9" * 5000 + b"}", JSON, 400,
                              "invalid_json"),
    "nested too deeply": ("/orders", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "invalid_json"),
    "NUL in a string": ("/orders", _bytes(_order("B\u0000")), JSON, 400, "invalid_json"),
    "lone surrogate": ("/orders", _bytes(_order("B\ud800")), JSON, 400, "invalid_json"),
    "top-level list": ("/orders", b"[]", JSON, 400, "invalid_body"),
    "field twice": ("/orders", b'{"external_id": "B1", "external_id": "B2"}', JSON, 400, "duplicate_field"),
    "unknown field": ("/orders", _bytes(_order(points=999)), JSON, 400, "unknown_field"),
    "missing id": ("/orders", _bytes({**_order(), "external_id": None}), JSON, 400, "missing_field"),
    "negative amount": ("/orders", _bytes(_order(amount="-1.00")), JSON, 400, "invalid_amount"),
    "fractional fen": ("/orders", _bytes(_order(amount="12.345")), JSON, 400, "invalid_amount"),
    "amount junk": ("/orders", _bytes(_order(amount="12元")), JSON, 400, "invalid_amount"),
    "time without zone": ("/orders", _bytes({**_order(), "placed_at": "2026-01-01T10:00:00"}), JSON, 400,
                          "invalid_time"),
    "time in future": ("/orders", _bytes({**_order(), "placed_at": FUTURE}), JSON, 400, "invalid_time"),
    "unknown member": ("/orders", _bytes(_order(member_id=987654)), JSON, 400, "unknown_member"),
    "member id text": ("/orders", _bytes(_order(member_id="1")), JSON, 400, "invalid_field"),
    # Found by the fuzzing (test_api_fuzz.py): both were 500s on SQLite before.
    "member id beyond 32 bits": ("/orders", _bytes(_order(member_id=10**30)), JSON, 400, "invalid_field"),
    "time out of range in UTC": ("/orders", _bytes({**_order(), "placed_at": "0001-01-01T00:00:00+14:00"}), JSON,
                                 400, "invalid_time"),
    "unknown store": ("/orders", _bytes(_order(store_code="NOPE")), JSON, 400, "unknown_store"),
    "bad phone": ("/orders", _bytes(_order(phone="12345")), JSON, 400, "invalid_phone"),
    "zero qty": ("/orders", _bytes(_order(lines=[{"sku": "S1", "qty": 0, "unit_price": "1.00"}])), JSON, 400,
                 "invalid_field"),
    "bad channel": ("/orders", _bytes(_order(channel="phone")), JSON, 400, "invalid_field"),
    "return without original": ("/returns", _bytes(_order("R1")), JSON, 400, "missing_field"),
    "return of unknown order": ("/returns", _bytes({**_order("R1"), "original_external_id": "X"}), JSON, 404,
                                "unknown_order"),
    "redeem unknown field": ("/coupons/redeem", _bytes({"code": "C", "order_ref": "R", "order_amount": "1",
                                                        "member_id": 1}), JSON, 400, "unknown_field"),
    "redeem without code": ("/coupons/redeem", _bytes({"order_ref": "R", "order_amount": "1"}), JSON, 400,
                            "missing_field"),
    "redeem code not text": ("/coupons/redeem", _bytes({"code": 12, "order_ref": "R", "order_amount": "1"}), JSON,
                             400, "invalid_field"),
    "redeem without amount": ("/coupons/redeem", _bytes({"code": "C", "order_ref": "R"}), JSON, 400,
                              "missing_field"),
    "redeem amount junk": ("/coupons/redeem", _bytes({"code": "C", "order_ref": "R", "order_amount": "abc"}), JSON,
                           400, "invalid_amount"),
    "redeem amount bool": ("/coupons/redeem", _bytes({"code": "C", "order_ref": "R", "order_amount": True}), JSON,
                           400, "invalid_amount"),
    "redeem ref too long": ("/coupons/redeem", _bytes({"code": "C", "order_ref": "R" * 65, "order_amount": "1"}),
                            JSON, 400, "invalid_field"),
    "redeem unknown code": ("/coupons/redeem", _bytes({"code": "ZZZZ", "order_ref": "R", "order_amount": "1"}),
                            JSON, 404, "unknown_coupon"),
    "redeem unknown store": ("/coupons/redeem", _bytes({"code": "@COUPON", "order_ref": "R",
                                                        "order_amount": "200", "store_code": "NOPE"}), JSON, 400,
                             "unknown_store"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_a_clear_error_and_writes_nothing(pos_lite: Api, case: str) -> None:
    path, raw, headers, status, code = BAD_INPUT[case]
    mid = _member()
    coupon = _coupon(mid)
    assert pos_lite.post("/orders", _order("EXISTING", member_id=mid)).status_code == 201
    raw = raw.replace(b"@COUPON", coupon.encode())
    before = _counts()
    r = pos_lite.post(path, raw=raw, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert _counts() == before


@pytest.mark.parametrize("query,code", [("?recent=abc", "invalid_field"), ("?recent=51", "invalid_field"),
                                        ("?recent=%C2%B2", "invalid_field"), ("?member=2", "unknown_field")])
def test_bad_query_parameters_are_refused(pos_lite: Api, query: str, code: str) -> None:
    mid = _member()
    r = pos_lite.get(f"/members/{mid}/points{query}")
    assert r.status_code == 400 and r.json()["error"] == code


def test_unknown_routes_methods_and_huge_headers_answer_json(pos_lite: Api) -> None:
    r = pos_lite.get("/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "no_such_endpoint"
    r = pos_lite.get("/orders")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = pos_lite.get("/health", headers={"X-Padding": "p" * 20_000})
    assert r.status_code == 413 and r.json()["error"] == "headers_too_large"


def test_a_body_over_the_limit_is_refused_before_it_is_read(pos_lite: Api) -> None:
    before = _counts()
    host, port = pos_lite.base.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        # Announce 10 MB and send none of it: the answer must come anyway.
        conn.sendall(
            b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {pos_lite.key}\r\nContent-Length: 10000000\r\n\r\n".encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"] == "body_too_large"
    # A real oversized body gets the same answer.
    big = {**_order("BIG"), "lines": [{"sku": "S" * 60, "qty": 1, "unit_price": "1.00"}] * 4000}
    r = pos_lite.post("/orders", big)
    assert r.status_code == 413 and r.json() == {"error": "body_too_large", "limit": 262144,
                                                 "message": r.json()["message"]}
    assert _counts() == before


# --------------------------------------------------------------------------- points


def test_member_points_shows_balance_expiry_and_recent_entries(pos_lite: Api) -> None:
    mid = _member()
    for i, amount in enumerate(["10.00", "20.00", "30.00"]):
        assert pos_lite.post("/orders", _order(f"P-{i}", amount, member_id=mid)).status_code == 201
    r = pos_lite.get(f"/members/{mid}/points?recent=2")
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["member_id"] == mid and v["balance"] == 60 and v["tier"] == "normal"
    assert v["next_expiry"] is not None and v["next_expiry_points"] == 60
    assert [e["delta"] for e in v["recent"]] == [30, 20]
    assert [e["balance_after"] for e in v["recent"]] == [60, 30]
    assert "phone" not in json.dumps(v)
    for missing in (987654, 0, -3, 10**12):
        r = pos_lite.get(f"/members/{missing}/points")
        assert r.status_code == 404 and r.json()["error"] == "member_not_found", missing
    db.run(membership.close_account, mid, actor="test")
    assert pos_lite.get(f"/members/{mid}/points").json()["error"] == "member_not_found"


# --------------------------------------------------------------------------- outages and logs


def test_database_down_is_503_unavailable(pos_lite: Api, sqlite_engine: Engine, tmp_path: Any) -> None:
    before = _counts()
    closed_pg = db.make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/loyalty",
                               connect_args={"connect_timeout": 2})
    # A directory is no SQLite file: "unable to open database file". (make_engine creates the
    # file, so the directory takes its place before the first connection.)
    gone = os.path.join(str(tmp_path), "gone.db")
    unreadable = db.make_engine(f"sqlite:///{gone}")
    os.remove(gone)
    os.mkdir(gone)
    try:
        for down in (closed_pg, unreadable):
            db.configure(down)
            # Liveness does not depend on the database; readiness does, and says why not.
            assert pos_lite.get("/health", auth=False).status_code == 200
            r = pos_lite.get("/ready", auth=False)
            assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
            assert r.json()["reason"] == "database_unreachable"
            assert r.headers["Retry-After"]
            r = pos_lite.post("/orders", _order("DOWN-1"))
            assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
            r = pos_lite.post("/coupons/redeem", {"code": "C", "order_ref": "R", "order_amount": "1"})
            assert r.status_code == 503 and r.json()["error"] == "unavailable"
    finally:
        db.configure(sqlite_engine)
    assert pos_lite.get("/ready", auth=False).status_code == 200
    assert _counts() == before


def test_logs_carry_neither_keys_nor_phone_numbers(pos_lite: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loyalty")
    _member("13912345678")
    assert pos_lite.post("/orders", _order("L-1", phone="13912345678")).status_code == 201
    assert pos_lite.post("/orders", _order("L-2"), headers={"Authorization": "Bearer lk_wrong-key-123"}
                         ).status_code == 401
    text = caplog.text
    assert "status=201 source=pos" in text and "error=invalid_api_key" in text
    for secret in ("13912345678", pos_lite.key, "lk_wrong-key-123"):
        assert secret not in text


# --------------------------------------------------------------------------- member codes (会员码)


MC_PATH = "/member-codes/resolve"


def _shown(member_id: int, seconds_ago: float = 0) -> str:
    return db.run(member_codes.issue, member_id, now=db.utcnow() - timedelta(seconds=seconds_ago)).code


def _used() -> list[tuple[str, str | None]]:
    return db.run(lambda s: sorted(s.execute(select(MemberCode.code, MemberCode.used_by)).all()), readonly=True)


def test_a_member_code_resolves_once(pos: Api) -> None:
    member = _member("13800138000")
    code = _shown(member)
    r = pos.post(MC_PATH, {"code": code})
    assert r.status_code == 200, r.text
    assert r.json() == {"member_id": member, "tier": "normal", "points": 0, "phone_masked": "138****8000"}
    again = pos.post(MC_PATH, {"code": code})
    assert again.status_code == 409 and again.json()["error"] == "member_code_used"
    assert _used() == [(code, "pos")]


def test_a_code_claimed_for_another_member_is_refused_and_stays_usable(pos: Api) -> None:
    member, other = _member("13800138000"), _member("13900139000")
    code = _shown(member)
    before = _counts()
    r = pos.post(MC_PATH, {"code": code, "member_id": other})
    assert r.status_code == 409 and r.json()["error"] == "member_code_mismatch"
    assert _counts() == before and _used() == [(code, None)]
    ok = pos.post(MC_PATH, {"code": code, "member_id": member})
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
    r = pos_lite.post(MC_PATH, body)
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert r.json()["message"]
    assert _counts() == before and _used() == [(code, None)]


def test_an_expired_code_is_refused_and_writes_nothing(pos: Api) -> None:
    member = _member()
    code = _shown(member, seconds_ago=61)
    before = _counts()
    r = pos.post(MC_PATH, {"code": code})
    assert r.status_code == 409 and r.json()["error"] == "member_code_expired"
    assert "fresh" in r.json()["message"]
    assert _counts() == before and _used() == [(code, None)]


def test_the_key_is_needed(pos_lite: Api) -> None:
    code = _shown(_member())
    r = pos_lite.post(MC_PATH, {"code": code}, auth=False)
    assert r.status_code == 401 and _used() == [(code, None)]
    r = pos_lite.post(MC_PATH, raw=b"code=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_tills_scanning_the_same_code_at_once_get_it_once(pos: Api) -> None:
    code = _shown(_member())
    replies = _at_once(16, lambda i: pos.post(MC_PATH, {"code": code}))
    assert sorted(r.status_code for r in replies) == [200] + [409] * 15
    assert {r.json()["error"] for r in replies if r.status_code == 409} == {"member_code_used"}
