"""WeChat callbacks under load: how many are answered within WeChat's 5 seconds?

32 simulated shoppers (by default) each send a series of signed callbacks
(half of them AES-encrypted) to the channel served on a loopback port, wait for
the answer (passive reply, or the customer-service message that arrives at the
local fake WeChat API) and type again after a short pause. Like WeChat, a
shopper's "server" gives up on a callback after 5 s and retries it, three
tries in all.

Two channels run in the same bench, against the same assistant:
- this channel: waits ``--passive-wait`` (4 s) then answers ``success`` and
  delivers by customer-service message;
- the baseline: the same channel without the 5-second rule, always waiting
  for the assistant's answer (passive wait 60 s). It keeps this channel's
  safety net (an answer whose connection WeChat dropped goes by
  customer-service message), so it loses no answers; a naive channel would.

The assistant is either a stand-in with a realistic latency distribution
(log-normal, median 0.6 s, a tail past 4 s, as when the action server or
database is slow) or, with ``--model models/x.tar.gz``, the real Rasa agent.

    .venv/bin/python -m bench.wechat_callbacks [--shoppers 32] [--messages 10] [--model PATH]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import glob
import math
import multiprocessing as mp
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

APP_ID = "wxbench000000001"
APP_SECRET = "bench-secret"
TOKEN = "bench-token"
AES_KEY = base64.b64encode(bytes(range(100, 132))).decode()[:-1]
WECHAT_TIMEOUT = 5.0  # WeChat's patience per try
SHOPPER_PATIENCE = 12.0  # a shopper waits this long for an answer, then types again

PHRASES = [
    "我的积分还有多少",
    "有什么优惠券可以领",
    "推荐点护肤品",
    "我是什么等级",
    "你好",
    "how many points do I have",
    "我的points还有多少",
    "积分什么时候过期",
    "我要入会",
    "转人工",
]


# ---------------------------------------------------------------- server side (child process)


class SyntheticAssistant:
    """Answers after a log-normal delay: most turns quick, a few slow."""

    def __init__(self, seed: int, median: float, sigma: float) -> None:
        self._rng = random.Random(seed)
        self._mu = math.log(median)
        self._sigma = sigma
        self.runs = 0

    async def __call__(self, message: Any) -> None:
        self.runs += 1
        await asyncio.sleep(min(self._rng.lognormvariate(self._mu, self._sigma), 20.0))
        await message.output_channel.send_text_message(message.sender_id, f"好的：{message.text}")


class RasaAssistant:
    """The trained model, through Rasa's own agent."""

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self.runs = 0

    async def __call__(self, message: Any) -> None:
        self.runs += 1
        await self._agent.handle_message(message)


def serve(conf: dict[str, Any], conn: Any) -> None:
    """Child process: the fake WeChat API and one channel, until told to stop."""
    import logging

    from sanic import Sanic

    from bot.settings import load_wechat_settings
    from bot.wechat.channel import WeChatInput
    from bot.wechat.dev.fake_server import create_fake_wechat_app
    from bot.wechat.dev.local_server import LocalServer

    logging.basicConfig(level=logging.ERROR)
    # Every message opens a fresh quota window in reality; the fake should not cap them.
    fake_app = create_fake_wechat_app(APP_ID, APP_SECRET, cs_quota=10**9)
    app = Sanic(f"bench_{uuid.uuid4().hex[:6]}")
    for name in ("sanic.root", "sanic.access", "sanic.error"):  # each Sanic() configures them
        logging.getLogger(name).setLevel(logging.ERROR)
    fake = LocalServer(fake_app).start()
    settings = load_wechat_settings(
        {},
        token=TOKEN,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        aes_key=AES_KEY,
        api_base_url=fake.url + "/cgi-bin/",
        passive_wait=conf["passive_wait"],
    )
    channel = WeChatInput(settings)
    server = LocalServer(app)
    assistant: Any
    if conf.get("model"):
        from rasa.core.agent import load_agent
        from rasa.core.utils import AvailableEndpoints, read_endpoints_from_path
        from rasa.utils.common import configure_logging_and_warnings
        from rasa.utils.log_utils import configure_structlog

        configure_logging_and_warnings(logging.ERROR)
        configure_structlog(logging.ERROR)
        # No endpoints file: in-memory tracker store and no action server.
        endpoints = (
            read_endpoints_from_path(conf["endpoints"]) if conf.get("endpoints") else AvailableEndpoints()
        )
        holder: dict[str, Any] = {}
        assistant = RasaAssistant(None)

        async def handle(message: Any) -> None:
            await assistant(message)

        app.blueprint(channel.blueprint(handle), url_prefix="/webhooks/wechat")
        server.start()
        holder["agent"] = server.call(load_agent(model_path=conf["model"], endpoints=endpoints), timeout=300)
        assistant._agent = holder["agent"]
    else:
        assistant = SyntheticAssistant(conf["seed"], conf["median"], conf["sigma"])
        app.blueprint(channel.blueprint(assistant), url_prefix="/webhooks/wechat")
        server.start()
    conn.send({"url": server.url + "/webhooks/wechat/webhook", "fake": fake.url})
    conn.recv()  # stop
    server.call(channel.drain(timeout=30), timeout=40)
    conn.send({"runs": assistant.runs, "cs_messages": len(fake_app.ctx.fake.messages)})
    server.stop()
    fake.stop()


# ---------------------------------------------------------------- WeChat's side (this process)


@dataclass
class Stats:
    """What one configuration measured."""

    first_try: list[float] = field(default_factory=list)  # seconds; a timeout counts as just over 5
    timed_out: int = 0  # first tries WeChat gave up on (no HTTP answer within 5 s)
    callbacks: int = 0
    retries: int = 0
    passive: int = 0
    answer_latency: list[float] = field(default_factory=list)  # until the shopper saw the answer
    unseen: int = 0  # no answer within the shopper's patience
    cs_messages: int = 0  # customer-service messages the fake API received, after the drain
    runs: int = 0  # times the assistant ran

    @property
    def answered_in_time(self) -> int:
        return self.callbacks - self.timed_out

    @property
    def answers(self) -> int:
        """Answers that reached the shopper: passive replies received plus CS messages."""
        return self.passive + self.cs_messages


async def _cs_count(session: aiohttp.ClientSession, fake: str, openid: str) -> int:
    async with session.get(f"{fake}/_fake/messages", params={"touser": openid}) as res:
        return len((await res.json())["messages"])


async def shopper(
    idx: int,
    session: aiohttp.ClientSession,
    url: str,
    fake: str,
    messages: int,
    rng: random.Random,
    stats: Stats,
) -> None:
    """One shopper: send, wait for the answer (either way), pause, repeat."""
    from bot.wechat.dev.simulate import WeChatSide, new_msg_id

    side = WeChatSide(TOKEN, APP_ID, AES_KEY)
    openid = f"obench{idx:03d}{uuid.uuid4().hex[:18]}"
    aes = idx % 2 == 0
    for n in range(messages):
        if n == 0:
            xml = side.subscribe(openid, f"SH{idx % 7:03d}")
        else:
            xml = side.text(openid, rng.choice(PHRASES), msg_id=new_msg_id())
        seen = await _cs_count(session, fake, openid)
        started = time.monotonic()
        stats.callbacks += 1
        reply_text = None
        for attempt in range(3):  # WeChat's tries
            params, body = side.sign(xml, aes=aes)
            try_started = time.monotonic()
            try:
                async with session.post(
                    url, params=params, data=body, timeout=aiohttp.ClientTimeout(total=WECHAT_TIMEOUT)
                ) as res:
                    text = await res.text()
                if attempt == 0:
                    stats.first_try.append(time.monotonic() - try_started)
                reply_text = side.open_reply(text).text
                break
            except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                if attempt == 0:
                    stats.timed_out += 1
                    stats.first_try.append(WECHAT_TIMEOUT + 0.001)  # censored: "more than 5 s"
                if attempt < 2:
                    stats.retries += 1
        if reply_text is not None:
            stats.passive += 1
            stats.answer_latency.append(time.monotonic() - started)
        else:
            # "success" (or no answer at all): the answer can only come by customer-service message.
            while time.monotonic() - started < SHOPPER_PATIENCE:
                if await _cs_count(session, fake, openid) > seen:
                    stats.answer_latency.append(time.monotonic() - started)
                    break
                await asyncio.sleep(0.1)
            else:
                stats.unseen += 1
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # the shopper reads and types


async def load(url: str, fake: str, shoppers: int, messages: int, seed: int) -> tuple[Stats, float]:
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=shoppers * 3)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *[
                shopper(i, session, url, fake, messages, random.Random(seed * 1000 + i), stats)
                for i in range(shoppers)
            ]
        )
    return stats, time.monotonic() - started


def run_config(conf: dict[str, Any], shoppers: int, messages: int) -> tuple[Stats, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(conf, child), daemon=True)
    proc.start()
    urls = parent.recv()
    stats, wall = asyncio.run(load(urls["url"], urls["fake"], shoppers, messages, conf["seed"]))
    parent.send("stop")
    final = parent.recv()
    stats.runs, stats.cs_messages = final["runs"], final["cs_messages"]
    proc.join(timeout=30)
    return stats, wall


# ---------------------------------------------------------------- report


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def seconds(value: float) -> str:
    return "> 5 s" if value > WECHAT_TIMEOUT else f"{value:.2f} s"


def describe(stats: Stats) -> dict[str, str]:
    waits = stats.answer_latency + [math.inf] * stats.unseen  # unseen: longer than the shopper's patience

    def wait(q: float) -> str:
        value = quantile(waits, q)
        return f"> {SHOPPER_PATIENCE:.0f} s" if value > SHOPPER_PATIENCE else f"{value:.2f} s"

    return {
        "callbacks answered within 5 s": pct(stats.answered_in_time, stats.callbacks),
        "callback answer time p50 / p95 / max": f"{seconds(quantile(stats.first_try, 0.5))} / "
        f"{seconds(quantile(stats.first_try, 0.95))} / {seconds(max(stats.first_try, default=math.nan))}",
        "WeChat retries sent": str(stats.retries),
        "passive replies received": pct(stats.passive, stats.callbacks),
        "customer-service messages": str(stats.cs_messages),
        "answers that reached the shopper": pct(stats.answers, stats.callbacks),
        "shopper's wait for the answer p50 / p95": f"{wait(0.5)} / {wait(0.95)}",
        "assistant runs / callbacks": f"{stats.runs} / {stats.callbacks}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shoppers", type=int, default=32)
    p.add_argument(
        "--messages", type=int, default=10, help="callbacks per shopper (the first is a store follow)"
    )
    p.add_argument("--passive-wait", type=float, default=4.0)
    p.add_argument("--median", type=float, default=0.6, help="stand-in assistant: median seconds")
    p.add_argument("--sigma", type=float, default=0.9, help="stand-in assistant: log-normal sigma")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--model", nargs="?", const="auto", help="use the real Rasa agent (path, or newest models/*.tar.gz)"
    )
    p.add_argument("--endpoints", default=None, help="endpoints.yml for the agent (action server)")
    p.add_argument("--no-baseline", action="store_true")
    args = p.parse_args(argv)

    model = args.model
    if model == "auto":
        found = sorted(glob.glob("models/*.tar.gz"), key=lambda f: -__import__("os").path.getmtime(f))
        if not found:
            print("no models/*.tar.gz: train first (make train)", file=sys.stderr)
            return 2
        model = found[0]
    base = {
        "seed": args.seed,
        "median": args.median,
        "sigma": args.sigma,
        "model": model,
        "endpoints": args.endpoints,
    }
    configs = [("this channel (4 s passive, then CS)", {**base, "passive_wait": args.passive_wait})]
    if not args.no_baseline:
        configs.append(("baseline: no 5-s rule, waits for the bot", {**base, "passive_wait": 60.0}))

    assistant = (
        f"Rasa agent {model}"
        if model
        else (f"stand-in, log-normal delay median {args.median:.2f} s, sigma {args.sigma:.2f}")
    )
    print(
        f"WeChat callbacks: {args.shoppers} concurrent shoppers x {args.messages} callbacks, "
        f"half AES; assistant: {assistant}; cpu: {mp.cpu_count()} cores"
    )
    results = []
    for name, conf in configs:
        stats, wall = run_config(conf, args.shoppers, args.messages)
        results.append((name, stats, describe(stats)))
        print(f"  ran {name} in {wall:.1f} s")
    names = [r[0] for r in results]
    width = max(len(k) for k in results[0][2])
    print(f"{'':{width}}  " + "  ".join(f"{n:>38}" for n in names))
    for key in results[0][2]:
        print(f"{key:{width}}  " + "  ".join(f"{r[2][key]:>38}" for r in results))
    if len(results) == 2:
        ours, base_stats = results[0][1], results[1][1]

        ratio = ours.answered_in_time / max(base_stats.answered_in_time, 1)
        print(
            f"ratio answered within 5 s (this / baseline): {ratio:.3f}; answers lost: "
            f"{ours.callbacks - ours.answers} vs {base_stats.callbacks - base_stats.answers}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
