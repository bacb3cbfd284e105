"""QR visits: recorded once per bot message, only for a known store, pseudonymous, erased with the account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.members.models import ChannelIdentity
from loyalty.membership import service as membership
from loyalty.visits import service as visits
from loyalty.visits.models import QrVisit
from tests.loyalty.corekit import T0, join


def _store(code: str = "QV1", active: bool = True) -> int:
    def add(s: Any) -> int:
        st = Store(code=code, name_zh="扫码店", name_en="Scan store", city="上海", active=active)
        s.add(st)
        s.flush()
        return int(st.id)

    return db.run(add)


def _rows() -> list[tuple[Any, ...]]:
    with db.session(readonly=True) as s:
        return [tuple(r) for r in s.execute(select(QrVisit.store_id, QrVisit.channel, QrVisit.kind,
                                                   QrVisit.visitor_key, QrVisit.visit_key, QrVisit.occurred_at)
                                            .order_by(QrVisit.id))]


def _record(code: str, channel: str, address: str, key: str, first_follow: bool = False) -> bool:
    return db.run(visits.record_visit, code, channel, address, first_follow=first_follow, key=key, now=T0)


def test_kinds_by_channel_and_first_follow(engine: Engine) -> None:
    sid = _store()
    assert _record("QV1", "wechat", "o-openid-1", "o-openid-1:m1", first_follow=True)
    assert _record("qv1 ", "wechat", "o-openid-1", "o-openid-1:m2")  # codes are case-insensitive
    assert _record("QV1", "webchat", "web-v1", "web-v1:m1")
    rows = _rows()
    assert [(r[0], r[1], r[2], r[5]) for r in rows] == [
        (sid, "wechat", "follow", T0), (sid, "wechat", "scan", T0), (sid, "webchat", "page_open", T0)]
    # The same openid is one visitor; the raw address and message key are stored nowhere.
    assert rows[0][3] == rows[1][3] == visits.visitor_key("wechat", "o-openid-1") != rows[2][3]
    assert not any("o-openid-1" in str(v) or "web-v1" in str(v) for r in rows for v in r)


def test_a_retried_message_counts_once(engine: Engine) -> None:
    _store()
    assert _record("QV1", "wechat", "o-2", "o-2:abc", first_follow=True) is True
    assert _record("QV1", "wechat", "o-2", "o-2:abc", first_follow=True) is False
    assert len(_rows()) == 1


def test_unknown_inactive_or_malformed_stores_and_other_channels_record_nothing(engine: Engine) -> None:
    _store()
    _store("OLD1", active=False)
    for code in ("NOPE", "OLD1", "", "QV1" * 20, "QV1'; --"):
        assert _record(code, "wechat", "o-3", f"o-3:{code}") is False
    assert _record("QV1", "rest", "someone", "someone:m1") is False
    assert _record("QV1", "wechat", "", ":m1") is False
    assert _rows() == []


def test_closing_an_account_erases_its_visits_only(engine: Engine) -> None:
    _store()
    _store("QV2")
    _record("QV1", "wechat", "o-leaver", "o-leaver:m1", first_follow=True)  # before joining
    mid = join(T0, store_code="QV1", channel="wechat", external_id="o-leaver")
    db.run(lambda s: s.add(ChannelIdentity(member_id=mid, channel="webchat", external_id="web-leaver")))
    _record("QV1", "webchat", "web-leaver", "web-leaver:m1")  # the same member on the web chat
    _record("QV2", "wechat", "o-leaver", "o-leaver:m2")  # after joining
    _record("QV1", "wechat", "o-stayer", "o-stayer:m1")
    db.run(membership.close_account, mid, actor="member", now=T0)
    left = _rows()
    assert [r[3] for r in left] == [visits.visitor_key("wechat", "o-stayer")]


def test_forget_visitor_counts_what_it_deleted(engine: Engine) -> None:
    _store()
    _record("QV1", "webchat", "web-x", "web-x:m1")
    _record("QV1", "webchat", "web-x", "web-x:m2")
    assert db.run(visits.forget_visitor, "webchat", "web-x") == 2
    assert db.run(visits.forget_visitor, "webchat", "web-x") == 0


def test_migration_0011_goes_down_and_up(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    _store()
    _record("QV1", "wechat", "o-9", "o-9:m1")
    _downgrade(engine, "0009")
    assert "qr_visits" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, "0011")
    assert migrate.current(engine) == "0011"
    columns = {c["name"] for c in inspect(engine).get_columns("qr_visits")}
    assert columns == set(QrVisit.__table__.columns.keys())
