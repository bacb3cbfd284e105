"""Turns and seconds for a member who joined at a till, from "绑定会员" to seeing their own points, in the web chat.

Starts the real assistant (trained model, action server, web chat channel)
on a fresh SQLite database with the fake SMS gateway, seeds members who
joined at a till (with points from a purchase), and plays each path as a
shopper would, through the web chat's REST entry. A turn is one message the
shopper sends; the clock runs from the first message to the reply that shows
their points, and includes the SMS (read from the fake gateway as soon as it
arrives) but not the shopper's typing.

    .venv/bin/python -m bench.link_turns [--runs 5]

Paths: "绑定会员" then the number then the code (zh); the same in English with
the number in the first message; and a signup with a number that is already
a member ("我要入会", "同意", the number, the code). Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bot.wechat.dev.local_server import LocalServer
from loyalty import config, db
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.sms.dev import create_fake_sms_app
from tests.e2e.conftest import seed_minimal
from tests.support.sms import IDENTITY_SECRET, FakeSms, identity_settings
from tests.support.stack import Stack, start_stack

POINTS = "1380"


def till_member() -> str:
    number = f"137{uuid.uuid4().int % 10**8:08d}"
    member = db.run(membership.signup, phone=number, consent=True, name="老王").card.id
    db.run(orders.record_order, "pos", {"external_id": f"POS-{uuid.uuid4().hex[:10]}", "amount": POINTS + ".00",
                                        "placed_at": db.utcnow().isoformat(), "member_id": member})
    return number


def play(stack: Stack, sms: FakeSms, script: Callable[[str], list[str | None]]) -> tuple[int, float, bool]:
    """Play one path; None in the script stands for "the code from the SMS". (turns, seconds, points shown)."""
    number = till_member()
    v = stack.visitor()
    turns, shown = 0, False
    t0 = time.perf_counter()
    for text in script(number):
        replies = stack.say(v, sms.last_code(number) if text is None else text)
        turns += 1
        if any(POINTS in r for r in replies):
            shown = True
            break
    return turns, time.perf_counter() - t0, shown


PATHS: dict[str, Callable[[str], list[str | None]]] = {
    "zh: 绑定会员 → number → code": lambda n: ["绑定会员", n, None],
    "en: link my card + number → code": lambda n: [f"link my card, my number is {n}", None],
    "zh: signup with a member's number": lambda n: ["我要入会", "同意", n, None],
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.link_turns", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-link-"))
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    sms_server = LocalServer(create_fake_sms_app()).start()
    sms = FakeSms(sms_server.url)
    config.use(identity_settings(sms_server.url))
    stack = start_stack(work, url, env_extra={"SMS_PROVIDER": "fake", "SMS_FAKE_URL": sms.url,
                                               "LOYALTY_IDENTITY_SECRET": IDENTITY_SECRET})
    results: dict[str, list[tuple[int, float, bool]]] = {}
    try:
        for name, script in PATHS.items():
            play(stack, sms, script)  # warm-up
            results[name] = [play(stack, sms, script) for _ in range(a.runs)]
    finally:
        stack.stop()
        sms_server.stop()
    print(f"\nFrom the first message to the shopper's own points, web chat ({a.runs} runs each; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    print(f"{'path':<38}{'turns':>6}{'median s':>10}{'max s':>8}{'points shown':>14}")
    for name, runs in results.items():
        secs = [r[1] for r in runs]
        print(f"{name:<38}{runs[0][0]:>6}{statistics.median(secs):>10.2f}{max(secs):>8.2f}"
              f"{sum(r[2] for r in runs):>10}/{len(runs)}")


if __name__ == "__main__":
    main()
