"""One member on every channel, end to end: the trained assistant, the action server, the web chat and
WeChat channels, the fake SMS gateway and the fake WeChat API, all as real servers and processes.

A member who joined at a till links the web chat and WeChat by SMS code and
then sees their own points; the code never lands in the tracker or a log;
a wrong code, a resend in the cool-down, unlinking, a taken number at
signup, a WeChat UnionID and the member code (decoded from its image with
zbar, then resolved as a till would) are each played through.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.wechat.dev.fake_server import create_fake_wechat_app
from bot.wechat.dev.local_server import LocalServer
from bot.wechat.dev.simulate import WeChatSide
from loyalty import config, db
from loyalty.identity import member_codes
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from tests.e2e.conftest import seed_minimal
from tests.support.sms import IDENTITY_SECRET, FakeSms, identity_settings, shows_code
from tests.support.stack import Stack, require_model, start_stack

pytestmark = pytest.mark.timeout(600)

APP_ID, APP_SECRET, TOKEN = "wxlinktest0000001", "link-test-secret", "link-test-token"


class FakeWeChat:
    def __init__(self, server: LocalServer) -> None:
        self.base = server.url

    def messages(self, openid: str) -> list[dict[str, Any]]:
        res = requests.get(self.base + "/_fake/messages", params={"touser": openid}, timeout=5)
        return list(res.json()["messages"])

    def wait(self, openid: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(openid)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.messages(openid)

    def media(self, media_id: str) -> bytes:
        return requests.get(f"{self.base}/_fake/media/{media_id}", timeout=5).content

    def give_unionid(self, openid: str, unionid: str) -> None:
        requests.post(self.base + "/_fake/users", json={"openid": openid, "unionid": unionid},
                      timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def fake_wechat() -> Iterator[FakeWeChat]:
    server = LocalServer(create_fake_wechat_app(APP_ID, APP_SECRET, cs_quota=1000)).start()
    yield FakeWeChat(server)
    server.stop()


@pytest.fixture(scope="module")
def link_stack(tmp_path_factory: pytest.TempPathFactory, fake_sms_server: FakeSms,
               fake_wechat: FakeWeChat) -> Iterator[Stack]:
    require_model()
    work: Path = tmp_path_factory.mktemp("link-stack")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    env = {
        "SMS_PROVIDER": "fake", "SMS_FAKE_URL": fake_sms_server.url, "LOYALTY_IDENTITY_SECRET": IDENTITY_SECRET,
        "WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_BASE_URL": fake_wechat.base + "/cgi-bin/", "WECHAT_PASSIVE_WAIT": "4.5",
    }
    s = start_stack(work, url, env_extra=env, extra_channels="bot.wechat.channel.WeChatInput: {}\n")
    yield s
    s.stop()


@pytest.fixture
def stack(link_stack: Stack, fake_sms_server: FakeSms) -> Iterator[Stack]:
    """The running assistant, with this process's core on its database, secret and SMS gateway."""
    engine = db.make_engine(link_stack.database_url)
    db.configure(engine)
    config.use(identity_settings(fake_sms_server.url))
    yield link_stack
    engine.dispose()


def till_member(points: str = "1380.00", name: str | None = "老王") -> tuple[int, str]:
    """A member who joined at a till long ago, with points from a purchase; no chat linked."""
    number = f"137{uuid.uuid4().int % 10**8:08d}"
    member = db.run(membership.signup, phone=number, consent=True, name=name).card.id
    db.run(orders.record_order, "pos", {"external_id": f"POS-{uuid.uuid4().hex[:10]}", "amount": points,
                                        "placed_at": db.utcnow().isoformat(), "member_id": member})
    return member, number


def masked(number: str) -> str:
    return f"{number[:3]}****{number[-4:]}"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def tracker_text(stack: Stack) -> str:
    """Every event of every conversation in the tracker store, as stored."""
    with sqlite3.connect(stack.workdir / "tracker.db") as c:
        return "\n".join(row[0] for row in c.execute("SELECT data FROM events"))


def logs(stack: Stack) -> str:
    return "\n".join((stack.workdir / name).read_text(errors="replace") for name in ("rasa.log", "actions.log"))


def say_wechat(stack: Stack, openid: str, text: str) -> str:
    """One text message from WeChat's servers; the passive reply's text ('' for 'success')."""
    side = WeChatSide(TOKEN, APP_ID)
    params, body = side.sign(side.text(openid, text))
    res = requests.post(f"{stack.base}/webhooks/wechat/webhook", params=params, data=body, timeout=30)
    assert res.status_code == 200, res.text
    return side.open_reply(res.text).text or ""


# ------------------------------------------------------------------ web chat


def test_web_chat_link_flow(stack: Stack, fake_sms_server: FakeSms) -> None:
    member, number = till_member()
    v = stack.visitor()
    [ask] = stack.say(v, "绑定会员")
    assert "手机号" in ask
    [sent] = stack.say(v, number)
    assert masked(number) in sent and "验证码" in sent and number not in sent
    code = fake_sms_server.last_code(number)
    [again] = stack.say(v, "重新发送")
    assert "秒后再试" in again
    [nope] = stack.say(v, wrong(code))
    assert "还能再试 4 次" in nope
    [linked] = stack.say(v, " ".join([code[:3], code[3:]]))
    assert "绑定成功" in linked and "1380" in linked and "老王" in linked
    points = "\n".join(stack.say(v, "我的积分"))
    assert "1380" in points
    [replay] = stack.say(v, code)
    assert "用过" in replay
    # The code is nowhere in the tracker, the slots or the logs; the number only masked in replies.
    assert not shows_code(code, tracker_text(stack)) and not shows_code(code, logs(stack))
    assert "/link_code" in tracker_text(stack)


def test_web_chat_link_in_english_with_the_number_given_at_once(stack: Stack, fake_sms_server: FakeSms) -> None:
    member, number = till_member(name=None)
    v = stack.visitor()
    [sent] = stack.say(v, f"link my card, my number is {number}")
    assert "texted a code" in sent and masked(number) in sent
    code = fake_sms_server.last_code(number)
    [linked] = stack.say(v, code)
    assert linked.startswith("Linked") and "Points: 1380" in linked
    assert not shows_code(code, tracker_text(stack))


def test_a_number_that_belongs_to_a_member_at_signup_sends_a_code(stack: Stack, fake_sms_server: FakeSms) -> None:
    member, number = till_member()
    v = stack.visitor()
    for text in ("我要入会", "同意"):
        stack.say(v, text)
    replies = stack.say(v, number)
    joined = "\n".join(replies)
    assert "已经是会员" in joined and masked(number) in joined and "验证码" in joined
    [linked] = stack.say(v, fake_sms_server.last_code(number))
    assert "绑定成功" in linked
    with db.session(readonly=True) as s:
        from sqlalchemy import func, select

        from loyalty.members.models import Member
        assert s.execute(select(func.count()).select_from(Member).where(Member.phone == number)).scalar_one() == 1


def test_locked_code_and_unlink(stack: Stack, fake_sms_server: FakeSms) -> None:
    member, number = till_member()
    v = stack.visitor()
    stack.say(v, "绑定会员")
    stack.say(v, number)
    code = fake_sms_server.last_code(number)
    for _ in range(4):
        stack.say(v, wrong(code))
    [locked] = stack.say(v, wrong(code))
    assert "重新发送" in locked and "失效" in locked
    [still] = stack.say(v, code)
    assert "失效" in still
    assert "\n".join(stack.say(v, "我的积分")).count("1380") == 0
    # The chat's cool-down holds for any number.
    other, number2 = till_member(points="88.00")
    stack.say(v, "绑定会员")
    [wait] = stack.say(v, number2)
    assert "秒后再试" in wait
    # Another chat links it; unlinking asks first.
    v2 = stack.visitor()
    stack.say(v2, f"绑定会员 {number2}")
    [linked] = stack.say(v2, fake_sms_server.last_code(number2))
    assert "88" in linked
    confirm = stack.say(v2, "解绑")
    assert "确认解绑" in "\n".join(confirm)
    [done] = stack.say(v2, "确认解绑")
    assert "已解绑" in done
    assert "入会" in "\n".join(stack.say(v2, "我的积分"))


def test_member_code_in_the_web_chat_resolves_at_the_till(stack: Stack, fake_sms_server: FakeSms,
                                                          tmp_path: Path) -> None:
    member, number = till_member()
    v = stack.visitor()
    stack.say(v, f"绑定会员 {number}")
    stack.say(v, fake_sms_server.last_code(number))
    reply = stack.post(v, "会员码")
    [msg] = [m for m in reply["messages"] if m.get("image")]
    digits = "".join(ch for ch in msg["text"].split("\n")[0] if ch.isdigit())
    assert digits.startswith("88") and len(digits) == 10
    png = tmp_path / "code.png"
    png.write_bytes(__import__("base64").b64decode(msg["image"].split(",", 1)[1]))
    out = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == digits
    assert db.run(member_codes.resolve, digits, source="pos") == member
    # Refresh: a new code; the old one is spent anyway.
    refreshed = stack.post(v, "刷新会员码")
    [msg2] = [m for m in refreshed["messages"] if m.get("image")]
    assert digits not in msg2["text"]


# ------------------------------------------------------------------ WeChat


def test_wechat_link_flow_unionid_and_member_code(stack: Stack, fake_sms_server: FakeSms,
                                                  fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    member, number = till_member()
    openid = "o" + uuid.uuid4().hex[:27]
    fake_wechat.give_unionid(openid, "u-" + openid)
    assert "手机号" in say_wechat(stack, openid, "我在门店办过卡")
    sent = say_wechat(stack, openid, number)
    assert masked(number) in sent
    code = fake_sms_server.last_code(number)
    assert "还能再试 4 次" in say_wechat(stack, openid, wrong(code))
    linked = say_wechat(stack, openid, code)
    assert "绑定成功" in linked and "1380" in linked
    assert "1380" in say_wechat(stack, openid, "我的积分")
    assert not shows_code(code, tracker_text(stack)) and not shows_code(code, logs(stack))

    # The brand's other WeChat app: same UnionID, another openid, recognised at once.
    other = "o" + uuid.uuid4().hex[:27]
    fake_wechat.give_unionid(other, "u-" + openid)
    assert "1380" in say_wechat(stack, other, "我的积分")

    # The member code arrives as an image message that decodes to the code in the text.
    text = say_wechat(stack, openid, "会员码")
    digits = "".join(ch for ch in text.split("\n")[0] if ch.isdigit())
    images = [m for m in fake_wechat.wait(openid, 1) if m.get("msgtype") == "image"]
    assert images, fake_wechat.messages(openid)
    png = tmp_path / "wx.png"
    png.write_bytes(fake_wechat.media(images[-1]["image"]["media_id"]))
    out = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == digits
    assert db.run(member_codes.resolve, digits, source="pos") == member

    assert "确认解绑" in say_wechat(stack, openid, "解绑")
    assert "已解绑" in say_wechat(stack, openid, "1")
    assert json.dumps(code) not in tracker_text(stack)
