"""Human takeover latencies on this machine, against the running assistant.

Starts the real stack (Rasa with the web chat channel, the console and its
event broker; the action server; a fresh SQLite database) and measures:

1. request → console: a shopper writes "转人工" in the web chat; how long until
   the conversation appears in a console that is open (its websocket gets the
   queue snapshot with it). Baseline, same run and same messages: how long the
   shopper waits for the bot's own answer ("you are queued").
2. agent reply → shopper: an agent sends a reply from the console API; how long
   until the shopper's open web chat page receives it. Baseline: a bot turn
   seen by the same page (the shopper types "你好", the greeting arrives).

    .venv/bin/python -m bench.handoff_latency [--requests 20] [--messages 50] [--assistant DIR]

``--assistant`` (or HANDOFF_ASSISTANT) names a folder with the handoff domain's
``models/loyalty.tar.gz`` and ``actions/`` when this checkout has not got them
yet. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bot.webchat.channel import sign
from loyalty import db
from loyalty.handoff import auth, service
from tests.e2e.conftest import seed_minimal
from tests.e2e.handoff_kit import ALWAYS_OPEN, PW
from tests.support.stack import SECRET, Stack, start_stack

H = {"X-Console": "1"}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values in seconds, as milliseconds."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000


def row(name: str, values: list[float]) -> str:
    return f"  {name:<44} p50 {pct(values, 50):8.1f} ms   p95 {pct(values, 95):8.1f} ms   (n={len(values)})"


class Page:
    """A shopper's open web chat page: its socket, and the bot frames it receives (with arrival times)."""

    def __init__(self, http: aiohttp.ClientSession, stack: Stack) -> None:
        self.http, self.stack = http, stack
        self.visitor = uuid.uuid4().hex
        self.frames: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def open(self) -> None:
        token = sign(self.visitor, SECRET.encode())
        url = f"{self.stack.base.replace('http', 'ws')}/webhooks/webchat/ws?visitor={self.visitor}&token={token}"
        self.ws = await self.http.ws_connect(url)
        await self.ws.send_str(json.dumps({"type": "hello", "last_ts": time.time()}))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("type") == "bot":
                self.frames.put_nowait((time.perf_counter(), data))

    async def send(self, text: str) -> None:
        await self.ws.send_str(json.dumps({"type": "message", "id": uuid.uuid4().hex, "text": text}))

    async def next_bot(self, pred: Any = lambda f: True, timeout: float = 60) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            at, frame = await asyncio.wait_for(self.frames.get(), deadline - time.perf_counter())
            if pred(frame):
                return at

    async def drain(self) -> None:
        await asyncio.sleep(0.3)
        while not self.frames.empty():
            self.frames.get_nowait()


async def console(http: aiohttp.ClientSession, stack: Stack) -> tuple[aiohttp.ClientWebSocketResponse, asyncio.Queue]:
    r = await http.post(f"{stack.console}/api/login", json={"username": "bench", "password": PW}, headers=H)
    assert r.status == 200, await r.text()
    ws = await http.ws_connect(f"{stack.console.replace('http', 'ws')}/ws", origin=stack.base)
    snaps: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def read() -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("type") == "queue":
                snaps.put_nowait((time.perf_counter(), data))

    asyncio.create_task(read())
    return ws, snaps


async def measure(stack: Stack, requests_n: int, messages_n: int) -> None:
    # unsafe=True: keep cookies of a bare IP host (127.0.0.1), which aiohttp drops by default.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        _, snaps = await console(http, stack)
        await asyncio.wait_for(snaps.get(), 30)  # the first snapshot on connect

        # 1. request → console, and the shopper's own answer as the baseline
        appear, answered = [], []
        for _ in range(requests_n):
            page = Page(http, stack)
            await page.open()
            await page.send("你好")
            await page.next_bot()
            await page.drain()
            sender = f"web-{page.visitor}"
            t0 = time.perf_counter()
            await page.send("转人工")
            answer_at = await page.next_bot()
            answered.append(answer_at - t0)
            h = await db.arun(service.open_for, sender, readonly=True)
            assert h is not None, "the assistant did not queue the conversation"
            while True:  # snapshots keep their arrival time in the queue: order of reading does not matter
                at, snap = await asyncio.wait_for(snaps.get(), 60)
                if any(e["id"] == h.id for e in snap["queue"]):
                    appear.append(at - t0)
                    break
            await page.ws.close()
            page.reader.cancel()

        # 2. agent reply → shopper, and a bot turn on the same page as the baseline
        page = Page(http, stack)
        await page.open()
        await page.send("你好")
        await page.next_bot()
        await page.send("转人工")
        await page.next_bot()
        h = await db.arun(service.open_for, f"web-{page.visitor}")
        r = await http.post(f"{stack.console}/api/handoffs/{h.id}/take", headers=H)
        assert r.status == 200, await r.text()
        await page.next_bot()  # the greeting
        await page.drain()
        replies = []
        for i in range(messages_n):
            text = f"第{i}条回复"
            t0 = time.perf_counter()
            r = await http.post(f"{stack.console}/api/handoffs/{h.id}/reply", json={"text": text}, headers=H)
            assert r.status == 200, await r.text()
            at = await page.next_bot(lambda f, t=text: f.get("text") == t)
            replies.append(at - t0)
        r = await http.post(f"{stack.console}/api/handoffs/{h.id}/close", headers=H)
        assert r.status == 200
        await page.drain()
        bot_turns = []
        for _ in range(messages_n):
            t0 = time.perf_counter()
            await page.send("你好")
            bot_turns.append(await page.next_bot() - t0)
            await page.drain()

    print(f"\nhuman takeover latencies on this machine ({os.cpu_count()} cores), real Rasa + action server + SQLite")
    print(row("request → conversation in the open console", appear))
    print(row("baseline: request → shopper sees 'queued'", answered))
    print(f"  ratio p50 {pct(appear, 50) / pct(answered, 50):.2f}   p95 {pct(appear, 95) / pct(answered, 95):.2f}")
    print(row("agent reply → shopper's page", replies))
    print(row("baseline: shopper 'hi' → bot's answer", bot_turns))
    print(f"  ratio p50 {pct(replies, 50) / pct(bot_turns, 50):.2f}   p95 {pct(replies, 95) / pct(bot_turns, 95):.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20, help="shoppers asking for a person (default 20)")
    p.add_argument("--messages", type=int, default=50, help="agent replies measured (default 50)")
    p.add_argument("--assistant", default=os.environ.get("HANDOFF_ASSISTANT"),
                   help="folder with the handoff model and actions (default: this checkout)")
    a = p.parse_args(argv)
    root = Path(a.assistant) if a.assistant else None
    work = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    db.run(auth.create_agent, "bench", PW, display_name="Bench")
    print("starting the assistant (about a minute) …", flush=True)
    stack = start_stack(work, url, assistant=root, env_extra=ALWAYS_OPEN)
    try:
        asyncio.run(measure(stack, a.requests, a.messages))
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
