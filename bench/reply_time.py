"""Reply time of the running assistant: a points question over HTTP and over the web chat socket.

Starts the real Rasa server and action server (as the conversation tests
do) on a fresh SQLite database with one member, warms up, then asks
"我的积分还有多少" N times in a row and prints p50/p95. The baseline, run in
the same process, is a turn that needs no custom action ("谢谢").

    .venv/bin/python -m bench.reply_time [--n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import websockets

from bot.webchat.channel import sign
from loyalty import db
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from tests.e2e.conftest import seed_minimal
from tests.support.stack import SECRET, Stack, start_stack


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def http_times(stack: Stack, visitor: str, text: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        replies = stack.say(visitor, text)
        out.append((time.perf_counter() - t) * 1000)
        assert replies, "no reply"
    return out


async def socket_times(stack: Stack, visitor: str, text: str, n: int) -> list[float]:
    url = f"ws://127.0.0.1:{stack.port}/webhooks/webchat/ws?visitor={visitor}&token={sign(visitor, SECRET.encode())}"
    out = []
    async with websockets.connect(url) as ws:
        for i in range(n):
            t = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "id": f"b{i}-{time.time()}", "text": text}))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "bot":
                    out.append((time.perf_counter() - t) * 1000)
                if frame["type"] == "ack":
                    break
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reply-bench-"))
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    stack = start_stack(work, url)
    try:
        visitor = stack.visitor()
        sign_up = db.run(membership.signup, phone="13800138888", consent=True, channel="webchat",
                         external_id=f"web-{visitor}")
        db.run(orders.record_order, "pos", {"external_id": "B1", "placed_at": datetime.now(timezone.utc).isoformat(),
                                            "amount": "99.00", "member_id": sign_up.card.id})
        question, baseline = "我的积分还有多少", "谢谢"
        http_times(stack, visitor, question, 3)  # warm-up
        http_times(stack, visitor, baseline, 3)
        rows = [
            ("points question, HTTP round trip", http_times(stack, visitor, question, a.n)),
            ("baseline (no custom action), HTTP", http_times(stack, visitor, baseline, a.n)),
            ("points question, web chat socket", asyncio.run(socket_times(stack, visitor, question, a.n))),
            ("baseline (no custom action), socket", asyncio.run(socket_times(stack, visitor, baseline, a.n))),
        ]
        print(f"reply time over {a.n} sequential questions after warm-up (ms), 2-core machine")
        print(f"{'':40s} {'p50':>8s} {'p95':>8s} {'mean':>8s}")
        for name, xs in rows:
            print(f"{name:40s} {pct(xs, .5):8.1f} {pct(xs, .95):8.1f} {statistics.mean(xs):8.1f}")
        print(f"ratio points/baseline p50: HTTP x{pct(rows[0][1], .5) / pct(rows[1][1], .5):.2f}, "
              f"socket x{pct(rows[2][1], .5) / pct(rows[3][1], .5):.2f}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
