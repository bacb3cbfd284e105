"""The WeChat pieces of one member on every channel, against the fake WeChat API and a real database:
UnionID look-ups, member-code images sent as image messages, and the channel's screen for typed codes."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import requests
from sqlalchemy import select

from bot import linking
from bot.settings import load_wechat_settings
from bot.wechat.client import WeChatApi
from bot.wechat.delivery import Delivery
from bot.wechat.kv import MemoryStore
from bot.wechat.outbound import PushOutput, TurnCollector, png_of
from bot.wechat.shoppers import ShopperState
from bot.wechat.token import MemoryTokenStore
from bot.wechat.unionid import UnionIds
from loyalty import db
from loyalty.identity import service as identity
from loyalty.identity.render import data_url, member_code_png
from loyalty.members import service as members
from loyalty.members.models import ChannelIdentity
from tests.bot.conftest import APP_ID, APP_SECRET, TOKEN, FakeApi, new_openid
from tests.loyalty.corekit import join
from tests.support.sms import FakeSms


def _api(fake_api: FakeApi) -> tuple[WeChatApi, Any]:
    settings = load_wechat_settings({}, token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET,
                                    api_base_url=fake_api.api_base_url, http_timeout=2.0)
    return WeChatApi(settings, MemoryTokenStore()), settings


def _give_unionid(fake_api: FakeApi, openid: str, unionid: str) -> None:
    requests.post(fake_api.base + "/_fake/users", json={"openid": openid, "unionid": unionid},
                  timeout=5).raise_for_status()


def test_a_unionid_links_the_brands_other_openid_once_a_day(fake_api: FakeApi, sqlite_engine: Any) -> None:
    fake_api.reset()
    api, _ = _api(fake_api)
    member = join()
    first, second = new_openid(), new_openid()
    db.run(members.bind_identity, member, "wechat", first)
    for openid in (first, second):
        _give_unionid(fake_api, openid, "union-1")
    unions = UnionIds(api, MemoryStore())
    before = fake_api.stats()["user_lookups"]  # the session's fake API counts earlier tests' look-ups too
    asyncio.run(unions.note(first))  # stamps the identity
    asyncio.run(unions.note(second))  # links the second app's openid
    lookups = fake_api.stats()["user_lookups"]
    asyncio.run(unions.note(second))  # cached: no second look-up today
    assert fake_api.stats()["user_lookups"] == lookups == before + 2
    with db.session(readonly=True) as s:
        rows = dict(s.execute(select(ChannelIdentity.external_id, ChannelIdentity.union_id)
                              .where(ChannelIdentity.member_id == member)).all())
    assert rows == {first: "union-1", second: "union-1"}
    api.close()


def test_a_failed_look_up_never_breaks_the_turn(fake_api: FakeApi, sqlite_engine: Any) -> None:
    fake_api.reset()
    api, _ = _api(fake_api)
    fake_api.fail_next(45009, path="user/info")
    store = MemoryStore()
    openid = new_openid()
    asyncio.run(UnionIds(api, store).note(openid))  # logged, not raised
    assert asyncio.run(store.get(f"union:{openid}")) == "-"  # retried later, not at every message
    asyncio.run(UnionIds(None, store).note(new_openid()))  # no API configured: nothing to do
    api.close()


def test_a_member_code_image_is_uploaded_and_sent(fake_api: FakeApi) -> None:
    fake_api.reset()
    api, settings = _api(fake_api)
    state = ShopperState(MemoryStore(), settings)
    out = PushOutput(Delivery(api, state, settings.max_text_bytes), state)
    png = member_code_png("8812345678")
    openid = new_openid()
    asyncio.run(out.send_image_url(openid, data_url(png)))
    sent = requests.get(fake_api.base + "/_fake/messages", params={"touser": openid}, timeout=5).json()["messages"]
    assert [m["msgtype"] for m in sent] == ["image"]
    media = requests.get(f"{fake_api.base}/_fake/media/{sent[0]['image']['media_id']}", timeout=5).content
    assert media == png
    # Any other image stays a link, as before.
    collector = TurnCollector()
    asyncio.run(collector.send_image_url(openid, "https://example.com/a.png"))
    assert collector.texts == ["https://example.com/a.png"] and collector.images == []
    asyncio.run(collector.send_image_url(openid, data_url(png)))
    assert collector.images == [png]
    api.close()


def test_png_of_takes_only_png_data_urls() -> None:
    png = member_code_png("8812345678")
    assert png_of(data_url(png)) == png
    for other in ("https://x/y.png", "data:image/png;base64,!!!", "data:image/jpeg;base64,AAAA",
                  "data:image/png;base64," + base64.b64encode(b"GIF89a").decode()):
        assert png_of(other) is None


def test_the_screen_swaps_a_code_for_its_outcome(sqlite_engine: Any, fake_sms: FakeSms) -> None:
    member = join(phone="13600136000")
    openid = new_openid()
    assert asyncio.run(linking.screen("wechat", openid, "123456")) == "123456"  # no code asked: plain text
    identity.request_link_code("wechat", openid, "13600136000")
    code = fake_sms.last_code("13600136000")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert asyncio.run(linking.screen("wechat", openid, "我的积分")) == "我的积分"
    assert asyncio.run(linking.screen("wechat", openid, wrong)) == '/link_code{"link_outcome":"wrong"}'
    assert asyncio.run(linking.screen("wechat", openid, code)) == '/link_code{"link_outcome":"linked"}'
    assert db.run(members.identity_owner, "wechat", openid) == member
