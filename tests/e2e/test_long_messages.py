"""100 KB messages on every way into the running assistant: refused (or cut) fast, with an answer.

The stack is the real Rasa server with the trained model, the web chat,
WeChat (plain and AES) and Rasa's own REST channel mounted.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from pathlib import Path

import requests
import websockets
from websockets.exceptions import ConnectionClosed

from bot.limits import TOO_LONG
from bot.webchat.channel import sign
from bot.wechat.dev.simulate import WeChatSide
from tests.support.stack import SECRET, WECHAT_AES_KEY, WECHAT_APP_ID, WECHAT_TOKEN, Stack

HUNDRED_KB = "积分" * 17_000  # 34,000 characters, 102 KB of UTF-8
TOO_LONG_ZH = TOO_LONG["zh"].format(max=1000)
FAST = 1.0  # seconds; generous for a busy 2-core machine (the old code took 6-33 s, or never came back)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------- one message per way in


def wechat(stack: Stack, text: str, *, aes: bool) -> tuple[float, requests.Response]:
    side = WeChatSide(WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_AES_KEY)
    params, body = side.sign(side.text("o" + uuid.uuid4().hex[:27], text), aes=aes)
    started = time.perf_counter()
    res = requests.post(f"{stack.base}/webhooks/wechat/webhook", params=params, data=body, timeout=60)
    return time.perf_counter() - started, res


def socket_url(stack: Stack, visitor: str) -> str:
    return f"ws://127.0.0.1:{stack.port}/webhooks/webchat/ws?visitor={visitor}&token={sign(visitor, SECRET.encode())}"


async def _big_frame(stack: Stack) -> tuple[float, int | None]:
    async with websockets.connect(socket_url(stack, stack.visitor()), max_size=None) as ws:
        frame = json.dumps({"type": "message", "id": uuid.uuid4().hex, "text": HUNDRED_KB}, ensure_ascii=False)
        started = time.perf_counter()
        await ws.send(frame)
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed as closed:
            return time.perf_counter() - started, closed.rcvd.code if closed.rcvd else None
    return time.perf_counter() - started, None


def socket_frame(stack: Stack) -> tuple[float, int | None]:
    """Send one 100 KB frame on a fresh socket: (seconds until closed, close code)."""
    return asyncio.run(_big_frame(stack))


def webchat_rest(stack: Stack, text: str) -> tuple[float, int, dict]:
    v = stack.visitor()
    body = json.dumps({"visitor": v, "token": sign(v, SECRET.encode()), "text": text, "id": uuid.uuid4().hex},
                      ensure_ascii=False).encode()
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    started = time.perf_counter()
    conn.request("POST", "/webhooks/webchat/send", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, r.status, json.loads(data or b"{}")


# ---------------------------------------------------------------- tests


def test_wechat_plain_and_aes_refuse_100kb_with_a_polite_reply(stack: Stack) -> None:
    side = WeChatSide(WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_AES_KEY)
    for aes in (False, True):
        wechat(stack, "hi", aes=aes)  # warm up this path of the server
        elapsed, res = wechat(stack, HUNDRED_KB, aes=aes)
        assert res.status_code == 200, res.text
        assert side.open_reply(res.text).text == TOO_LONG_ZH
        assert elapsed < FAST, (aes, elapsed)


def test_webchat_socket_closes_on_a_100kb_frame_and_keeps_serving(stack: Stack) -> None:
    elapsed, code = socket_frame(stack)
    assert code == 1009 and elapsed < FAST, (code, elapsed)

    async def still_serving() -> list[dict]:
        async with websockets.connect(socket_url(stack, stack.visitor())) as ws:
            await ws.send(json.dumps({"type": "message", "id": "t1", "text": "好" * 1500}))  # over the text limit
            await ws.send(json.dumps({"type": "message", "id": "t2", "text": "你好"}))
            frames: list[dict] = []
            while not any(f.get("type") == "ack" and f.get("id") == "t2" for f in frames):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            return frames

    frames = asyncio.run(still_serving())
    [refused] = [f for f in frames if f.get("id") == "t1"]
    assert refused == {"type": "error", "code": "too_long", "max": 1000, "text": TOO_LONG_ZH, "id": "t1"}
    assert any(f["type"] == "bot" for f in frames)


def test_webchat_rest_refuses_100kb_with_a_polite_text(stack: Stack) -> None:
    webchat_rest(stack, "你好")
    elapsed, status, data = webchat_rest(stack, HUNDRED_KB)
    assert status == 413 and data["error"] == "too_large" and data["text"] == TOO_LONG_ZH, data
    assert elapsed < FAST, elapsed
    _, status, data = webchat_rest(stack, "好" * 1001)
    assert status == 400 and data["code"] == "too_long" and data["text"] == TOO_LONG_ZH


def test_rasa_rest_channel_gets_100kb_cut_by_the_nlu_guard(stack: Stack) -> None:
    """Rasa's own REST channel has no limit: the pipeline's first component cuts the text."""
    sender = f"rest-{uuid.uuid4().hex}"
    started = time.perf_counter()
    res = requests.post(f"{stack.base}/webhooks/rest/webhook", json={"sender": sender, "message": HUNDRED_KB},
                        timeout=120)
    elapsed = time.perf_counter() - started
    assert res.status_code == 200 and res.json(), res.text  # answered
    assert elapsed < 15, elapsed  # a whole turn; without the guard NLU alone took 33 s and 12 GB
    [user] = [json.loads(r["data"]) for r in stack.tracker_rows(sender) if r["type_name"] == "user"]
    assert len(user["parse_data"]["text"]) == 1000 and user["parse_data"]["text_cut_from"] == len(HUNDRED_KB)


def test_fifty_long_messages_per_channel_do_not_grow_memory(stack: Stack) -> None:
    side = WeChatSide(WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_AES_KEY)

    def one_round() -> None:
        for aes in (False, True):
            _, res = wechat(stack, HUNDRED_KB, aes=aes)
            assert side.open_reply(res.text).text == TOO_LONG_ZH
        assert socket_frame(stack)[1] == 1009
        assert webchat_rest(stack, HUNDRED_KB)[1] == 413

    for _ in range(5):  # warm-up: first uses allocate caches for good
        one_round()
    before = rss_mb(stack.rasa_pid)
    for _ in range(50):
        one_round()
    after = rss_mb(stack.rasa_pid)
    assert after - before < 64, (before, after)
