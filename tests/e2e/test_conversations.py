"""Whole conversations over HTTP with the trained model and the action server; the database is checked too."""

from __future__ import annotations

from sqlalchemy import func, select

from loyalty import db
from loyalty.coupons.models import Coupon
from loyalty.members.models import ChannelIdentity, Member
from loyalty.membership import service as membership
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


# ---------------------------------------------------------------- typed button titles


def _member_on_web(v: str) -> int:
    """A member already bound to this web chat visitor (joining by chat is tested above)."""
    phone = "139" + str(int(v[:8], 16) % 10**8).zfill(8)
    m = db.run(membership.signup, phone=phone, consent=True, channel="webchat", external_id=f"web-{v}")
    return m.card.id


def _closed(member_id: int) -> bool:
    with db.session() as s:
        m = s.get(Member, member_id)
        assert m is not None
        idents = s.execute(select(func.count()).select_from(ChannelIdentity)
                           .where(ChannelIdentity.member_id == member_id)).scalar_one()
        return m.status == "closed" and m.phone is None and idents == 0


def test_typing_a_button_title_closes_the_account_like_the_button(stack: Stack) -> None:
    v = stack.visitor()
    member = _member_on_web(v)
    stack.say(v, "确定注销")  # typed cold it is a request: the bot asks first, nothing is closed
    assert not _closed(member)
    asked = _text(stack.say(v, "注销会员"))
    assert "确定注销吗" in asked and "[确定注销]" in asked
    assert "账户已注销" in _text(stack.say(v, "确定注销"))  # the title, typed: the button's /affirm
    assert _closed(member)


def test_a_typed_english_title_works_too_ignoring_case_and_punctuation(stack: Stack) -> None:
    v = stack.visitor()
    member = _member_on_web(v)
    asked = _text(stack.say(v, "close my account"))
    assert "Close it?" in asked and "[Close my account]" in asked
    assert not _closed(member)
    assert "Your account is closed" in _text(stack.say(v, "  CLOSE MY ACCOUNT! "))
    assert _closed(member)


# ---------------------------------------------------------------- the bot's own score


def _bot_ratings(sender: str) -> list[tuple[int | None, str, int]]:
    from loyalty.conversations.models import BotRating
    from loyalty.conversations.service import sender_key

    with db.session() as s:
        return [(r.member_id, r.channel, r.rating) for r in s.execute(
            select(BotRating).where(BotRating.sender_key == sender_key(sender))).scalars()]


def test_a_goodbye_after_a_question_asks_for_a_score_once_and_keeps_it(stack: Stack) -> None:
    v = stack.visitor()
    member = _member_on_web(v)
    assert "积分" in _text(stack.say(v, "我的积分有多少"))
    bye = _text(stack.say(v, "谢谢，再见"))
    assert "再见" in bye and "打个分" in bye and "[5分]" in bye
    assert "谢谢你的评分" in _text(stack.say(v, "5分"))  # the button's title, typed
    assert _bot_ratings(f"web-{v}") == [(member, "webchat", 5)]
    again = _text(stack.say(v, "拜拜"))  # asked once per session
    assert "再见" in again and "打个分" not in again
    assert _text(stack.say(v, "3分")) and _bot_ratings(f"web-{v}") == [(member, "webchat", 5)]


def test_an_english_visitor_rates_the_bot_and_a_bare_hello_is_not_asked(stack: Stack) -> None:
    v = stack.visitor()
    stack.say(v, "hi")
    assert "how did I do" not in _text(stack.say(v, "bye"))  # nothing was asked of the bot
    stack.say(v, "recommend me something")
    bye = _text(stack.say(v, "that's all, bye"))
    assert "Bye" in bye and "how did I do" in bye and "[5]" in bye
    assert "thanks for the score" in _text(stack.say(v, "4"))
    assert _bot_ratings(f"web-{v}") == [(None, "webchat", 4)]

