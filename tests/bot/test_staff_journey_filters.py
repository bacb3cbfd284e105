"""The journeys tab's dates and store over HTTP: the members whose latest send falls in them, by hand."""

from __future__ import annotations

import csv
import io

import requests

from tests.bot.test_staff_app import _login, server  # noqa: F401 - the server fixture
from tests.loyalty.corekit import T0
from tests.loyalty.test_reports import DAY
from tests.loyalty.test_reports_outreach import _welcome_fixture

FIRST, SECOND = T0.date().isoformat(), (T0 + DAY).date().isoformat()  # T0 is noon in Shanghai


def _welcome(http: requests.Session, base: str, **args: str) -> tuple[int, int, int]:
    r = http.get(f"{base}/api/journeys", params=args)
    assert r.status_code == 200, r.text
    row = next(x for x in r.json()["journeys"] if x["journey"] == "welcome")
    return row["treatment"], row["control"], row["reached"]


def test_dates_and_store_choose_the_members_by_their_latest_send(server: str) -> None:  # noqa: F811
    _welcome_fixture()  # day 1: m1 sent, m4 skipped (treatment), m6 control; day 2: m2 failed, m3 control (RB2)
    mkt = _login(server, "marketing")
    assert _welcome(mkt, server) == (3, 2, 1)  # since the journey began
    assert _welcome(mkt, server, start=FIRST, end=FIRST) == (2, 1, 1)
    assert _welcome(mkt, server, start=SECOND, end=SECOND) == (1, 1, 0)
    assert _welcome(mkt, server, store="RB2") == (0, 1, 0)
    assert _welcome(mkt, server, start=FIRST, end=SECOND, store="RA1") == (3, 1, 1)
    rows = list(csv.DictReader(io.StringIO(mkt.get(f"{server}/api/journeys.csv",
                                                   params={"start": SECOND, "end": SECOND}).text)))
    welcome = next(r for r in rows if r["journey"] == "welcome")
    assert (welcome["treatment"], welcome["control"]) == ("1", "1")
    bad = mkt.get(f"{server}/api/journeys", params={"start": SECOND, "end": FIRST})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_range"
