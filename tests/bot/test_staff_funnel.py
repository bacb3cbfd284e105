"""The QR funnel through the staff app: JSON and CSV equal the hand-computed rows; a manager sees their store only."""

from __future__ import annotations

import csv
import io

import requests

from tests.bot.test_staff_app import RANGE, _login, server  # noqa: F401 - the server fixture
from tests.loyalty.test_reports_funnel import RA1, RB2, RC3, funnel_fixture


def _text(row: dict[str, object]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in row.items()}


def test_the_funnel_as_json_and_csv(server: str) -> None:  # noqa: F811
    funnel_fixture()
    boss = _login(server, "marketing")
    d = boss.get(f"{server}/api/dashboard", params=RANGE).json()
    assert d["qr_funnel"] == [RA1, RB2, RC3]
    zh, en = d["definitions"]["qr_funnel"]
    assert "关注率" in zh and "follow rate = follows / scans" in en
    r = boss.get(f"{server}/api/dashboard/qr_funnel.csv", params=RANGE)
    assert r.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(r.text))) == [_text(RA1), _text(RB2), _text(RC3)]


def test_a_store_manager_reads_only_their_stores_funnel(server: str) -> None:  # noqa: F811
    funnel_fixture()
    manager = _login(server, "store_manager", "RA1")
    assert manager.get(f"{server}/api/dashboard", params=RANGE).json()["qr_funnel"] == [RA1]
    # Even with the channel filter, and with no store named, their own store only.
    web = manager.get(f"{server}/api/dashboard", params={**RANGE, "channel": "webchat"}).json()["qr_funnel"]
    assert [row["store"] for row in web] == ["RA1"]
    for path in ("/api/dashboard", "/api/dashboard/qr_funnel.csv"):
        for store in ("RB2", "RC3", "rb2"):
            r = manager.get(server + path, params={**RANGE, "store": store})
            assert r.status_code == 403 and r.json()["error"] == "other_store"
    csv_rows = list(csv.DictReader(io.StringIO(manager.get(f"{server}/api/dashboard/qr_funnel.csv",
                                                           params=RANGE).text)))
    assert csv_rows == [_text(RA1)]
    assert requests.get(f"{server}/api/dashboard/qr_funnel.csv", params=RANGE).status_code == 401
