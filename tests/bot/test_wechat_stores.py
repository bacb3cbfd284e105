"""Dedup, access token and shopper state, in memory and shared through Redis."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from bot.settings import load_wechat_settings
from bot.wechat.client import WeChatApi
from bot.wechat.dedup import MemoryDedup, RedisDedup
from bot.wechat.kv import KeyValueStore, MemoryStore, RedisStore
from bot.wechat.shoppers import ShopperState
from bot.wechat.token import AccessTokenManager, MemoryTokenStore, RedisTokenStore
from tests.bot.conftest import APP_ID, APP_SECRET, TOKEN, ScriptedAssistant, new_openid

T = TypeVar("T")


def run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[[], KeyValueStore]:
    if request.param == "memory":
        return MemoryStore
    url = request.getfixturevalue("redis_url")
    prefix = f"t{time.monotonic_ns()}:"  # tests share one server: keep their keys apart
    return lambda: RedisStore(url, prefix=prefix)


def test_store_semantics(make_store) -> None:
    async def scenario() -> list[Any]:
        store = make_store()
        seen = [
            await store.add("k", "1", 0.3),
            await store.add("k", "2", 0.3),
            await store.get("k"),
            await store.incr("n", 10),
            await store.incr("n", 10),
        ]
        await store.put("k", "3", 10)
        seen.append(await store.get("k"))
        await store.delete("k")
        seen.append(await store.get("k"))
        await store.add("gone", "x", 0.2)
        await asyncio.sleep(0.35)
        seen.append(await store.get("gone"))
        seen.append(await store.add("gone", "y", 1))
        await store.close()
        return seen

    assert run(scenario) == [True, False, "1", 1, 2, "3", None, None, True]


def test_memory_store_stays_bounded() -> None:
    async def scenario() -> int:
        store = MemoryStore(max_keys=100)
        for i in range(1000):
            await store.add(f"k{i}", "1", 60)
        return len(store._data)

    assert run(scenario) <= 100


def test_memory_dedup_claims_once() -> None:
    async def scenario() -> list[bool]:
        dedup = MemoryDedup(ttl=60)
        return [await dedup.claim("msg:1"), await dedup.claim("msg:1"), await dedup.claim("msg:2")]

    assert run(scenario) == [True, False, True]


def test_redis_dedup_is_shared_between_processes(redis_url: str) -> None:
    # Two dedup objects stand for two channel processes behind one Redis.
    key = f"msg:{time.monotonic_ns()}"

    async def scenario() -> list[bool]:
        a, b = RedisDedup(redis_url, ttl=60), RedisDedup(redis_url, ttl=60)
        results = await asyncio.gather(*[d.claim(key) for d in (a, b, a, b)])
        await a.close()
        await b.close()
        return list(results)

    assert sorted(run(scenario)) == [False, False, False, True]


def test_two_channel_processes_on_redis_run_a_retry_once(make_channel, redis_url: str) -> None:
    assistant = ScriptedAssistant()
    first = make_channel(assistant, redis_url=redis_url)
    second = make_channel(assistant, redis_url=redis_url)
    xml = first.side.text(new_openid(), "我的积分")
    assert first.send(xml).text == "收到：我的积分"
    assert second.send(xml).raw == "success"  # WeChat's retry landed on the other process
    assert len(assistant.calls) == 1


def test_choices_are_shared_between_processes(make_channel, redis_url: str) -> None:
    def menu(message: Any) -> list[dict[str, Any]]:
        return [{"text": "选一个", "buttons": [{"title": "积分", "payload": "/ask_points"}]}]

    assistant = ScriptedAssistant(script=menu)
    first = make_channel(assistant, redis_url=redis_url)
    second = make_channel(assistant, redis_url=redis_url)
    openid = new_openid()
    first.send(first.side.text(openid, "菜单"))
    second.send(second.side.text(openid, "1"))
    assert assistant.calls[-1].text == "/ask_points"


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_one_token_fetch_for_many_threads_and_processes(fake_api, request, backend: str) -> None:
    store = (
        MemoryTokenStore()
        if backend == "memory"
        else RedisTokenStore(request.getfixturevalue("redis_url"), prefix=f"t{time.monotonic_ns()}:")
    )
    # Two managers on one store stand for two processes.
    managers = [
        AccessTokenManager(APP_ID, APP_SECRET, fake_api.api_base_url, store, timeout=2) for _ in range(2)
    ]
    before = fake_api.stats()["token_fetches"]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda m=m: tokens.append(m.get())) for m in managers * 8]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens) == 16
    assert fake_api.stats()["token_fetches"] - before == 1


def test_token_is_refreshed_before_it_expires(fake_api) -> None:
    manager = AccessTokenManager(
        APP_ID, APP_SECRET, fake_api.api_base_url, MemoryTokenStore(), timeout=2, refresh_margin=7200
    )  # always inside the margin
    assert manager.get() != manager.get()


def test_wrong_secret_is_a_clear_error_without_the_secret(fake_api) -> None:
    from bot.wechat.errors import WeChatApiError

    manager = AccessTokenManager(APP_ID, "wrong-secret", fake_api.api_base_url, MemoryTokenStore())
    with pytest.raises(WeChatApiError) as info:
        manager.get()
    assert info.value.errcode == 40125 and "wrong-secret" not in str(info.value)


def test_qr_codes_and_menu_through_the_fake_api(fake_api) -> None:
    settings = load_wechat_settings(
        {}, token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, api_base_url=fake_api.api_base_url
    )

    async def scenario() -> tuple[Any, Any, Any]:
        api = WeChatApi(settings)
        try:
            permanent = await api.create_qrcode("SH001")
            temporary = await api.create_qrcode("SH002", expire_seconds=600)
            await api.create_menu({"button": [{"type": "click", "name": "我的积分", "key": "MENU_POINTS"}]})
            return permanent, temporary, await api.get_menu()
        finally:
            api.close()

    permanent, temporary, menu = run(scenario)
    assert permanent.expire_seconds is None and temporary.expire_seconds == 600
    assert permanent.ticket != temporary.ticket and "ticket=" in permanent.image_url
    qrcodes = fake_api.stats()["qrcodes"]
    assert qrcodes[permanent.ticket] == {"action_name": "QR_LIMIT_STR_SCENE", "scene": {"scene_str": "SH001"}}
    assert menu["menu"]["button"][0]["key"] == "MENU_POINTS"


def test_quota_windows(make_store) -> None:
    settings = load_wechat_settings({}, token=TOKEN, cs_quota_event=3, cs_quota_message=5)

    async def scenario() -> list[bool]:
        store = make_store()
        state = ShopperState(store, settings)
        openid = new_openid()
        unknown = await state.take_quota(openid)  # no window known: let WeChat decide
        await state.open_window(openid, "event")
        after_scan = [await state.take_quota(openid) for _ in range(4)]
        await state.open_window(openid, "message")
        after_message = [await state.take_quota(openid) for _ in range(6)]
        await state.exhaust(openid)
        exhausted = await state.take_quota(openid)
        await store.close()
        return [unknown, *after_scan, *after_message, exhausted]

    assert run(scenario) == [True, True, True, True, False, True, True, True, True, True, False, False]


def test_a_hung_api_call_is_abandoned_at_the_deadline() -> None:
    # requests' own timeout covers each socket read; the deadline covers the rest.
    from bot.wechat.errors import WeChatApiError

    settings = load_wechat_settings({}, token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET)

    async def scenario() -> float:
        api = WeChatApi(settings)
        api._deadline = 0.2
        started = time.monotonic()
        try:
            with pytest.raises(WeChatApiError, match="timed out"):
                await api._call(time.sleep, 1.0)
            return time.monotonic() - started
        finally:
            api.close()

    assert run(scenario) < 0.9
