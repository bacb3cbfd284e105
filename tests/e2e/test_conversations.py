"""Whole conversations over HTTP with the trained model and the action server; the database is checked too."""

from __future__ import annotations

from sqlalchemy import func, select

from loyalty import db
from loyalty.coupons.models import Coupon
from loyalty.members.models import ChannelIdentity, Member
from tests.support.stack import Stack


def _text(replies: list[str]) -> str:
    return "\n".join(replies)


def test_join_then_points_in_chinese(stack: Stack) -> None:
    v = stack.visitor()
    assert "成为会员" in _text(stack.say(v, "我的积分有多少"))  # offered to join
    assert "隐私" in _text(stack.say(v, "好的"))  # consent is asked first
    assert "手机号" in _text(stack.say(v, "同意"))
    assert "还能试 2 次" in _text(stack.say(v, "12345"))
    stack.say(v, "138 0013 8001")
    stack.say(v, "跳过")
    after = _text(stack.say(v, "跳过"))
    assert "入会成功" in after
    assert "你现在有 0 积分" in after  # the question is answered right after joining
    with db.session() as s:
        m = s.execute(select(Member).where(Member.phone == "13800138001")).scalar_one()
        assert m.consent_version and m.consent_at is not None
        ident = s.execute(select(ChannelIdentity).where(ChannelIdentity.member_id == m.id)).scalar_one()
        assert ident.channel == "webchat" and ident.external_id == f"web-{v}"
        assert s.execute(select(func.count()).select_from(Coupon).where(Coupon.member_id == m.id)).scalar_one() == 1
