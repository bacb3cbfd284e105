"""Segment moves in the staff app over HTTP: the figure and its CSVs by hand, a store manager held to their store."""

from __future__ import annotations

import csv
import io

import requests

from tests.bot.test_staff_app import RANGE, _login, server  # noqa: F401 - the server fixture
from tests.loyalty.test_reports import _fixture
from tests.loyalty.test_segment_moves import _add_moves


def _csv(http: requests.Session, url: str, **params: str) -> list[dict[str, str]]:
    r = http.get(url, params={**RANGE, **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def test_moves_by_hand_and_a_managers_own_store_only(server: str) -> None:  # noqa: F811
    _add_moves(_fixture())  # m1, m2 joined at store RA1, m3 at RB2
    boss = _login(server, "marketing")
    manager = _login(server, "store_manager", "RA1")
    every = boss.get(f"{server}/api/dashboard", params=RANGE).json()["segment_moves"]
    assert [(c["from"], c["to"], c["members"]) for c in every["lifecycle"]["matrix"]] == [
        (None, "new", 3), ("new", "active", 2), ("active", "dormant", 1)]
    assert every["definition"][1].startswith("Changes of a member's lifecycle stage")
    # The manager's numbers leave out m3, whether or not the page names the store.
    for params in ({}, {"store": "RA1"}):
        mine = manager.get(f"{server}/api/dashboard", params={**RANGE, **params}).json()["segment_moves"]
        assert [(c["from"], c["to"], c["members"]) for c in mine["lifecycle"]["matrix"]] == [
            (None, "new", 2), ("new", "active", 1), ("active", "dormant", 1)]
    assert _csv(manager, f"{server}/api/dashboard/segment_moves_lifecycle_matrix.csv") == [
        {"from": "", "to": "new", "members": "2"}, {"from": "new", "to": "active", "members": "1"},
        {"from": "active", "to": "dormant", "members": "1"}]
    rows = _csv(manager, f"{server}/api/dashboard/segment_moves_rfm.csv")
    assert [(r["segment"], r["first"], r["moved_in"], r["moved_out"], r["net"]) for r in rows if r["segment"] in
            ("new", "potential", "prospect")] == [("potential", "0", "1", "0", "1"), ("new", "2", "0", "2", "0"),
                                                  ("prospect", "0", "1", "0", "1")]
    assert rows[0] == {"segment": "champions", "name_zh": "重要价值会员", "name_en": "Champions", "first": "0",
                       "moved_in": "0", "moved_out": "0", "net": "0"}
    # Another store, however asked.
    for path in ("/api/dashboard", "/api/dashboard/segment_moves_rfm.csv",
                 "/api/dashboard/segment_moves_lifecycle_matrix.csv"):
        r = manager.get(server + path, params={**RANGE, "store": "RB2"})
        assert r.status_code == 403 and r.json()["error"] == "other_store", path
    # The boss's store filter and channel filter go through too.
    only_b = _csv(boss, f"{server}/api/dashboard/segment_moves_lifecycle_matrix.csv", store="RB2")
    assert only_b == [{"from": "", "to": "new", "members": "1"}, {"from": "new", "to": "active", "members": "1"}]
    webchat = _csv(boss, f"{server}/api/dashboard/segment_moves_rfm_matrix.csv", channel="webchat")
    assert webchat == [{"from": "", "to": "new", "members": "1"}, {"from": "new", "to": "prospect", "members": "1"}]
    assert boss.get(f"{server}/api/dashboard/segment_moves_nope.csv", params=RANGE).status_code == 400
