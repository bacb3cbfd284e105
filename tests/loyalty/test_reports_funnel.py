"""The QR funnel against a small fixture computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.reports import funnel
from loyalty.reports import service as reports
from loyalty.reports.service import Scope
from loyalty.visits import service as visits
from tests.loyalty.corekit import T0, join
from tests.loyalty.test_reports import DAY, _fixture

WHOLE = Scope(T0 - DAY, T0 + 10 * DAY)


def _visit(code: str, channel: str, address: str, n: int, *, follow: bool = False, days: int = 0) -> None:
    assert db.run(visits.record_visit, code, channel, address, first_follow=follow, key=f"{address}:{n}",
                  now=T0 + days * DAY)


def funnel_fixture() -> dict[str, int]:
    """test_reports' three members (RA1: o-1 on WeChat, v-2 on the web chat; RB2: o-3 on WeChat), their visits,
    two visitors who did not join, a visit after the range and a third store with a signup but no visit."""
    f = _fixture()

    def add(s: Any) -> int:
        st = Store(code="RC3", name_zh="丙店", name_en="Store C", city="上海", active=True)
        s.add(st)
        s.flush()
        return int(st.id)

    f["c"] = db.run(add)
    f["m4"] = join(T0 + 2 * DAY, store_code="RC3", channel="webchat", external_id="v-4")
    funnel_visits()
    return f


def funnel_visits() -> None:
    """The visits of :func:`funnel_fixture` (at RA1 and RB2, over test_reports' fixture)."""
    _visit("RA1", "wechat", "o-1", 1, follow=True)  # m1 follows through RA1's code...
    _visit("RA1", "wechat", "o-1", 2, days=1)  # ...and scans it again the next day
    _visit("RA1", "wechat", "o-7", 1, days=1)  # a follower who scans and does not join
    _visit("RA1", "webchat", "v-2", 1, days=1)  # m2 opens the web chat with RA1's link
    _visit("RA1", "webchat", "v-8", 1, days=2)  # someone else does and does not join
    _visit("RA1", "wechat", "o-9", 1, follow=True, days=20)  # after the range
    _visit("RB2", "wechat", "o-3", 1, follow=True, days=1)  # m3


# By hand, in [T0 - 1 day, T0 + 10 days):
# RA1: visitors o-1, o-7, v-2, v-8 = 4; scans 3 (o-1 follow, o-1 scan, o-7 scan); follows 1; page opens 2;
#      signups m1, m2 = 2; follow rate 1/3; signup rate 2/4.
# RB2: visitor o-3; 1 scan, a follow; signup m3; rates 1 and 1.
# RC3: no visit; signup m4; follow rate and signup rate none (nothing to divide by).
RA1 = {"store": "RA1", "visitors": 4, "scans": 3, "follows": 1, "page_opens": 2, "signups": 2,
       "follow_rate": round(1 / 3, 4), "signup_rate": 0.5}
RB2 = {"store": "RB2", "visitors": 1, "scans": 1, "follows": 1, "page_opens": 0, "signups": 1,
       "follow_rate": 1.0, "signup_rate": 1.0}
RC3 = {"store": "RC3", "visitors": 0, "scans": 0, "follows": 0, "page_opens": 0, "signups": 1,
       "follow_rate": None, "signup_rate": None}


def _funnel(sc: Scope) -> list[dict[str, Any]]:
    return db.run(funnel.qr_funnel, sc, readonly=True)


def test_funnel_by_hand(engine: Engine) -> None:
    f = funnel_fixture()
    assert _funnel(WHOLE) == [RA1, RB2, RC3]
    # The dashboard carries it with its definition.
    every = db.run(reports.dashboard, WHOLE, T0 + 3 * DAY, readonly=True)
    assert every["qr_funnel"] == [RA1, RB2, RC3] and "qr_funnel" in every["definitions"]
    # One store: that store's row only.
    assert _funnel(Scope(WHOLE.start, WHOLE.end, store_id=f["b"])) == [RB2]
    assert _funnel(Scope(WHOLE.start, WHOLE.end, store_id=f["a"])) == [RA1]


def test_funnel_by_channel_and_range(engine: Engine) -> None:
    funnel_fixture()
    # WeChat: RA1's o-1 and o-7 (3 scans, 1 follow), m1 joined on WeChat; RB2 unchanged; RC3's m4 joined on the web.
    wechat = _funnel(Scope(WHOLE.start, WHOLE.end, channel="wechat"))
    assert wechat == [{**RA1, "visitors": 2, "page_opens": 0, "signups": 1, "signup_rate": 0.5}, RB2]
    # Web chat: RA1's two page opens and m2; RC3's m4.
    web = _funnel(Scope(WHOLE.start, WHOLE.end, channel="webchat"))
    assert web == [{"store": "RA1", "visitors": 2, "scans": 0, "follows": 0, "page_opens": 2, "signups": 1,
                    "follow_rate": None, "signup_rate": 0.5}, RC3]
    assert _funnel(Scope(WHOLE.start, WHOLE.end, channel="pos")) == []
    # Only the late follow, from day 20 on.
    late = _funnel(Scope(T0 + 15 * DAY, T0 + 25 * DAY))
    assert late == [{"store": "RA1", "visitors": 1, "scans": 1, "follows": 1, "page_opens": 0, "signups": 0,
                     "follow_rate": 1.0, "signup_rate": 0.0}]
