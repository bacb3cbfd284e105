"""The web chat channel against the running assistant: auth, limits, dedup, replay on reconnect."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid

import websockets

from bot.webchat.channel import sign
from tests.support.stack import SECRET, Stack


def _raw_post(stack: Stack, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def test_forged_token_is_refused(stack: Stack) -> None:
    reply = stack.post(stack.visitor(), "hi", token="0" * 32)
    assert reply["status"] == 401


def test_oversized_message_refused_before_parsing(stack: Stack) -> None:
    body = b'{"text": "' + b"x" * 100_000 + b'"}'
    status, data = _raw_post(stack, "/webhooks/webchat/send", body, {"Content-Type": "application/json"})
    assert status == 413 and json.loads(data)["error"] == "too_large", data


def test_long_text_gets_a_clear_error(stack: Stack) -> None:
    reply = stack.post(stack.visitor(), "好" * 1500)
    assert reply["status"] == 400 and reply["code"] == "too_long"


def test_resent_message_is_processed_once(stack: Stack) -> None:
    v, mid = stack.visitor(), uuid.uuid4().hex
    first = stack.post(v, "你好", message_id=mid)
    second = stack.post(v, "你好", message_id=mid)
    assert first["status"] == 200 and first["messages"]
    assert second.get("duplicate") is True and not second.get("messages")


def test_socket_reconnect_replays_missed_messages(stack: Stack) -> None:
    v = stack.visitor()
    url = f"ws://127.0.0.1:{stack.port}/webhooks/webchat/ws?visitor={v}&token={sign(v, SECRET.encode())}"

    async def scenario() -> None:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "last_ts": 0}))
            await ws.send(json.dumps({"type": "message", "id": "m1", "text": "你好"}))
            frames = []
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                frames.append(frame)
                if frame["type"] == "ack":
                    break
            bots = [f for f in frames if f["type"] == "bot"]
            assert bots and all(f["ts"] for f in bots)
        # A new page (last_ts 0) gets the whole history back, the shopper's side included.
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "last_ts": 0}))
            replay = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(len(bots) + 1)]
            assert replay[0] == {"type": "user", "ts": replay[0]["ts"], "text": "你好"}
            assert [f["text"] for f in replay[1:]] == [f["text"] for f in bots]
        # A reconnecting page that saw everything gets nothing again.
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "last_ts": bots[-1]["ts"]}))
            try:
                extra = await asyncio.wait_for(ws.recv(), 2)
            except asyncio.TimeoutError:
                extra = None
            assert extra is None

    asyncio.run(scenario())


def test_socket_with_bad_token_is_closed(stack: Stack) -> None:
    async def scenario() -> dict:
        url = f"ws://127.0.0.1:{stack.port}/webhooks/webchat/ws?visitor=abc&token=nope"
        async with websockets.connect(url) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(scenario()) == {"type": "error", "code": "unauthorized"}
