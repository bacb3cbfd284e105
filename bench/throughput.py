"""Messages per second of the assistant against Rasa's starter bot, side by side on this machine.

Builds Rasa's starter bot (``rasa init --no-prompt`` into a temporary folder,
which trains it; ``--starter DIR`` reuses one built before) and starts it with
its REST channel, in-memory tracker store, no custom actions. Starts the
assistant as the conversation tests do (``tests/support/stack.py``: Rasa with
the web chat channel and the console's event broker, the real action server,
a bounded SQL tracker store and the loyalty database on SQLite, seeded), with
the environment the launcher gives Rasa. Then, for each concurrency C: C fresh
shoppers at once, each sending ``--turns`` messages one after another (the next
when the reply is in), first to the starter bot, then to the assistant, in the
same minutes. The assistant's shoppers are members (their points and coupon
look-ups run the real actions). Prints msg/s, p50/p95/p99 of the reply time
and the ratio of msg/s (the goal: ≥ ×0.9).

    nice .venv/bin/python -m bench.throughput                      # 32 and 128 shoppers × 10 turns
    nice .venv/bin/python -m bench.throughput --shoppers 32 --rounds 2 --starter /tmp/starter
    nice .venv/bin/python -m bench.throughput --shoppers 32 --starter /tmp/starter --profile results/tp
    nice .venv/bin/python -m bench.throughput --soak 10000 --turns 20 --soak-at 4   # memory over many turns
    nice .venv/bin/python -m bench.throughput --shoppers 32 --texts fresh   # shoppers' own phrasings, each new

``--profile DIR`` runs the assistant's Rasa process under cProfile (``DIR/assistant.prof``) and
prints its top functions at the end. ``--soak N`` measures memory instead of throughput: no
starter bot; fresh member shoppers, ``--soak-at`` at a time, ``--turns`` messages each, until
N messages have been answered; it prints the time to ready and the Rasa process's RSS after
start, every 1,000 messages and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.turn_cost import rss_mb, show_profile
from bot.webchat.channel import sign
from loyalty import db
from tests.e2e.conftest import seed_minimal
from tests.support.members import make_member
from tests.support.servers import free_port
from tests.support.stack import SECRET, Stack, start_stack

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
# What the starter bot understands (its data/nlu.yml), and what our shoppers ask most.
STARTER_TEXTS = ["hello", "I am sad", "yes", "are you a bot?", "great", "no", "I am feeling very good", "bye"]
OUR_TEXTS = ["我的积分有多少", "有什么优惠券", "推荐点护肤品", "谢谢", "how many points do I have",
             "what coupons can I get", "recommend something for me", "thanks"]
# ``--texts fresh``: shoppers' own phrasings of the same questions, each sent once (the held-out NLU
# set, tests/nlu_eval/: read here as traffic, never trained on), so no cache answers them.
FRESH_CAPABILITIES = ("points", "points_history", "tier", "coupons_available", "my_coupons", "recommend",
                      "thank", "menu", "member_card")


def fresh_texts() -> list[str]:
    """Every held-out message of the capabilities above, zh, en and mixed, in a fixed shuffled order."""
    import random

    import yaml

    texts = []
    for language in ("zh", "en", "mixed"):
        data = yaml.load((ROOT / "tests" / "nlu_eval" / f"{language}.yml").read_text(encoding="utf-8"),
                         Loader=yaml.BaseLoader)  # every message as written (no yes → True)
        for capability in FRESH_CAPABILITIES:
            texts += [str(t) for t in data["capabilities"].get(capability) or []]
    random.Random(7).shuffle(texts)
    return texts


_runs = itertools.count()


@dataclass
class Result:
    """One run: C shoppers × N turns against one bot."""

    bot: str
    shoppers: int
    messages: int
    seconds: float
    latencies: list[float]  # ms, one per message
    failures: int  # no answer, or an HTTP error

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def build_starter(where: Path) -> Path:
    """``rasa init --no-prompt`` (it trains the starter model); the folder."""
    print(f"building Rasa's starter bot in {where} (rasa init --no-prompt, trains it) …", flush=True)
    where.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
    with (where.parent / f"{where.name}-init.log").open("wb") as log:
        subprocess.run([str(BIN / "rasa"), "init", "--no-prompt", "--init-dir", str(where)], env=env,
                       stdout=log, stderr=subprocess.STDOUT, check=True, timeout=900)
    return where


def start_starter(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The starter bot's Rasa server (REST channel); its process and base URL, once it answers."""
    port = free_port()
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
    log = (folder / "rasa-run.log").open("wb")
    proc = subprocess.Popen([str(BIN / "rasa"), "run", "--model", "models", "--port", str(port),
                             "--interface", "127.0.0.1", "--credentials", "credentials.yml"],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    # Rasa's own model load trains a step of each model first: minutes on a busy 2-core machine.
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the starter bot exited: see {folder / 'rasa-run.log'}")
        try:
            asyncio.run(_get(base + "/"))
            return proc, base
        except (OSError, aiohttp.ClientError, asyncio.TimeoutError):
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the starter bot did not answer within 900 s")


async def _get(url: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
        await r.read()


async def _starter_turn(s: aiohttp.ClientSession, base: str, shopper: str, text: str) -> bool:
    async with s.post(f"{base}/webhooks/rest/webhook", json={"sender": shopper, "message": text}) as r:
        await r.json()  # may be empty: the starter bot does not answer every message out of context
        return r.status == 200


async def _our_turn(s: aiohttp.ClientSession, base: str, shopper: str, text: str) -> bool:
    payload = {"visitor": shopper, "token": sign(shopper, SECRET.encode()), "text": text, "id": uuid.uuid4().hex}
    async with s.post(f"{base}/webhooks/webchat/send", data=json.dumps(payload, ensure_ascii=False).encode(),
                      headers={"Content-Type": "application/json"}) as r:
        await r.json()
        return r.status == 200


async def _drive(bot: str, base: str, shoppers: list[str], turns: int, texts: list[str] | None = None) -> Result:
    """C shoppers × ``turns`` messages; shopper i's turn t sends ``texts[(i × turns + t) % len]``
    (fresh texts are then each sent once while there are enough of them)."""
    turn = _starter_turn if bot == "starter" else _our_turn
    pool: list[str] = texts or (STARTER_TEXTS if bot == "starter" else OUR_TEXTS)
    latencies: list[float] = []
    failures = 0
    offset = next(_runs) * len(shoppers) * turns
    # One connection per shopper, as many browsers or WeChat callbacks would open.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)

    async def shopper(i: int, who: str) -> None:
        nonlocal failures
        for t in range(turns):
            started = time.perf_counter()
            try:
                ok = await turn(session, base, who, pool[(i * turns + t + offset) % len(pool)])
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError):
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(shopper(i, who) for i, who in enumerate(shoppers)))
        seconds = time.perf_counter() - started
    return Result(bot, len(shoppers), len(latencies), seconds, latencies, failures)


def members(n: int) -> list[str]:
    """``n`` fresh web chat visitors, each a member with points."""
    out = []
    for _ in range(n):
        visitor = uuid.uuid4().hex
        make_member("webchat", f"web-{visitor}", 500)
        out.append(visitor)
    return out


def show(results: list[Result], ours: str = "assistant", base: str = "starter", goal: str = " (goal ≥ ×0.9)") -> None:
    """The table of runs, then per C the mean msg/s of ``ours`` over the mean of ``base``."""
    width = max(9, *(len(r.bot) for r in results))
    print(f"\n{'bot':>{width}}  {'C':>4}  {'msgs':>5}  {'fail':>4}  {'msg/s':>6}  {'p50 ms':>7}  {'p95 ms':>7}  "
          f"{'p99 ms':>7}")
    for r in results:
        print(f"{r.bot:>{width}}  {r.shoppers:>4}  {r.messages:>5}  {r.failures:>4}  {r.rate:6.1f}  "
              f"{r.pct(0.5):7.0f}  {r.pct(0.95):7.0f}  {r.pct(0.99):7.0f}")
    print()
    for c in sorted({r.shoppers for r in results}):
        top = [r.rate for r in results if r.shoppers == c and r.bot == ours]
        bottom = [r.rate for r in results if r.shoppers == c and r.bot == base]
        if not top or not bottom:
            continue
        ratio = statistics.mean(top) / statistics.mean(bottom)
        print(f"C={c}: {ours} {statistics.mean(top):.1f} msg/s, {base} {statistics.mean(bottom):.1f} msg/s, "
              f"ratio ×{ratio:.2f}{goal}")


def soak(base: str, pid: int, total: int, at: int, turns: int) -> None:
    """``total`` messages, ``at`` fresh shoppers at a time; the Rasa process's RSS every 1,000."""
    done, failures, next_mark, started = 0, 0, 1000, time.perf_counter()
    while done < total:
        r = asyncio.run(_drive("assistant", base, members(at), min(turns, -(-(total - done) // at))))
        done, failures = done + r.messages, failures + r.failures
        if done >= next_mark or done >= total:
            print(f"  {done} messages ({failures} failed, {done / (time.perf_counter() - started):.1f} msg/s): "
                  f"Rasa RSS {rss_mb(pid):.0f} MB", flush=True)
            next_mark += 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", default="32,128", help="concurrent shoppers, comma-separated")
    parser.add_argument("--turns", type=int, default=10, help="messages per shopper")
    parser.add_argument("--rounds", type=int, default=1, help="starter then assistant, this many times each")
    parser.add_argument("--starter", default="", help="a starter bot folder built before (else one is built)")
    parser.add_argument("--profile", default="", help="folder for a cProfile file of the assistant's Rasa process")
    parser.add_argument("--top", type=int, default=40, help="functions shown from the profile")
    parser.add_argument("--soak", type=int, default=0, help="memory mode: this many messages, no starter bot")
    parser.add_argument("--soak-at", type=int, default=4, help="memory mode: shoppers at a time")
    parser.add_argument("--texts", choices=("repeated", "fresh"), default="repeated",
                        help="the assistant's messages: 8 repeated questions, or shoppers' own phrasings, "
                             "each new to the model (the sentence encoder's cache cannot answer them)")
    args = parser.parse_args()
    levels = [int(x) for x in args.shoppers.split(",") if x.strip()]
    fresh = fresh_texts() if args.texts == "fresh" else None
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    db.configure(db.make_engine(url))
    prefix = None
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        prefix = [sys.executable, "-m", "cProfile", "-o", str(Path(args.profile).resolve() / "assistant.prof")]
    if args.soak:
        started = time.perf_counter()
        alone = start_stack(work, url, rasa_prefix=prefix)
        print(f"assistant ready in {time.perf_counter() - started:.0f} s; Rasa RSS {rss_mb(alone.rasa_pid):.0f} MB "
              "after start", flush=True)
        try:
            soak(alone.base, alone.rasa_pid, args.soak, args.soak_at, args.turns)
        finally:
            stop(alone, args.profile)
        return
    starter_dir = Path(args.starter) if args.starter else build_starter(work / "starter")
    starter, starter_base = start_starter(starter_dir)
    stack = None
    results: list[Result] = []
    try:
        stack = start_stack(work, url, rasa_prefix=prefix)
        print(f"both bots up; assistant at {stack.base}, starter at {starter_base}", flush=True)
        # Warm up each model (the first messages trace TensorFlow functions).
        asyncio.run(_drive("starter", starter_base, [uuid.uuid4().hex for _ in range(4)], 2))
        asyncio.run(_drive("assistant", stack.base, members(4), 2))
        for _ in range(args.rounds):
            for c in levels:
                ours = members(c)
                for bot, base, who in (("starter", starter_base, [uuid.uuid4().hex for _ in range(c)]),
                                       ("assistant", stack.base, ours)):
                    texts = fresh if bot == "assistant" else None
                    r = asyncio.run(_drive(bot, base, who, args.turns, texts))
                    print(f"  {bot} C={c}: {r.rate:.1f} msg/s, p50 {r.pct(0.5):.0f} ms, p95 {r.pct(0.95):.0f} ms, "
                          f"{r.failures} failed", flush=True)
                    results.append(r)
    finally:
        starter.terminate()
        starter.wait(30)
        if stack is not None:
            stop(stack, args.profile)
    show(results)
    if args.profile:
        show_profile(Path(args.profile) / "assistant.prof", args.top)


def stop(stack: Stack, profile: str) -> None:
    """Stop the assistant; under cProfile, Rasa first by SIGINT (Sanic stops cleanly, the profile is written)."""
    if profile:
        proc = stack.proc("rasa")
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    stack.stop()


if __name__ == "__main__":
    main()
