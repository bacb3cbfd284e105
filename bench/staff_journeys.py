"""How fast the staff app's journeys tab and bot figures answer at a chain's size (PostgreSQL).

Bulk-inserts (no services: this is about reading) ``--members`` members with
``--orders`` orders each spread over a year, a welcome journey's send rows
for every member (10 % control, as the holdout assigns them), a broadcast's
for a tenth of them, and ``--conversations`` conversations over the last 30
days, then times what the pages ask for: the journeys tab
(``loyalty.reports.outreach.journey_rows``, one holdout report per journey
and broadcast) and the dashboard's conversations and bot figures for 30 days.

    nice .venv/bin/python -m bench.staff_journeys --members 20000 --orders 15

Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, text

from bench.core_ops import backend
from bench.staff_dashboard import _times
from loyalty import db
from loyalty.conversations.models import Conversation
from loyalty.members.models import Member
from loyalty.orders.models import Order
from loyalty.outreach import rules
from loyalty.outreach.models import Broadcast, OutreachSend
from loyalty.reports import outreach as journeys
from loyalty.reports import service as reports

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)


def _chunks(rows: list[dict[str, Any]], size: int = 5000) -> list[list[dict[str, Any]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def seed(members: int, orders: int, conversations: int) -> None:
    rnd = random.Random(7)
    with db.engine().begin() as c:
        for part in _chunks([dict(phone=f"139{i:08d}", referral_code=f"B{i:09d}", tier="normal", points_balance=0,
                                  consent_version="b", consent_at=NOW - timedelta(days=400), marketing_opt_in=True,
                                  status="active", created_at=NOW - timedelta(days=rnd.randrange(30, 400)))
                             for i in range(members)]):
            c.execute(insert(Member), part)
        ids = [r[0] for r in c.execute(text("SELECT id FROM members ORDER BY id"))]
        rows = []
        for mid in ids:
            for k in range(orders):
                rows.append(dict(source="pos", external_id=f"O{mid}-{k}", kind="order", member_id=mid, channel="pos",
                                 placed_at=NOW - timedelta(minutes=rnd.randrange(0, 365 * 24 * 60)),
                                 amount_fen=rnd.randrange(1000, 50000), points=0, payload_hash="b", result={},
                                 created_at=NOW))
        for part in _chunks(rows):
            c.execute(insert(Order), part)
        c.execute(insert(Broadcast), [dict(code="BENCH", audience={}, text_zh="z", text_en="e",
                                           send_at=NOW - timedelta(days=20), planned_at=NOW - timedelta(days=20),
                                           created_at=NOW - timedelta(days=21))])
        sends = []
        for journey, who in (("welcome", ids), ("broadcast:BENCH", ids[::10])):
            for mid in who:
                control = rules.in_control(mid, journey, 10.0)
                at = NOW - timedelta(minutes=rnd.randrange(0, 60 * 24 * 60))
                sends.append(dict(idem_key=f"{mid}:{journey}:s:o", member_id=mid, journey=journey, step="s",
                                  occasion="o", kind="marketing", arm="control" if control else "treatment",
                                  status="control" if control else "sent", facts={}, attempts=1, planned_at=at,
                                  due_at=at, done_at=at))
        for part in _chunks(sends):
            c.execute(insert(OutreachSend), part)
        convs = []
        for i in range(conversations):
            at = NOW - timedelta(minutes=rnd.randrange(0, 30 * 24 * 60))
            turns = rnd.randrange(1, 8)
            convs.append(dict(sender_key=f"{i:064d}", channel=rnd.choice(("wechat", "webchat")),
                              member_id=rnd.choice(ids) if rnd.random() < 0.7 else None, started_at=at,
                              last_at=at + timedelta(minutes=turns), user_turns=turns, agent_turns=0,
                              fallback_turns=int(rnd.random() < 0.2), handed_off=rnd.random() < 0.1,
                              with_agent=False))
        for part in _chunks(convs):
            c.execute(insert(Conversation), part)
        c.execute(text("ANALYZE"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.staff_journeys", description=__doc__)
    p.add_argument("--members", type=int, default=20000)
    p.add_argument("--orders", type=int, default=15)
    p.add_argument("--conversations", type=int, default=100000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    with backend("postgresql"):
        t0 = time.perf_counter()
        seed(a.members, a.orders, a.conversations)
        print(f"seeded {a.members} members, {a.members * a.orders} orders, {a.members + a.members // 10} send rows, "
              f"{a.conversations} conversations in {time.perf_counter() - t0:.0f} s (PostgreSQL)")
        month = reports.Scope(NOW - timedelta(days=30), NOW)
        views: dict[str, Callable[[], Any]] = {
            "journeys tab (7 journeys + 1 broadcast)": lambda: db.run(journeys.journey_rows, readonly=True),
            "conversations figure, 30 days": lambda: db.run(reports.conversations, month, readonly=True),
            "bot figure, 30 days": lambda: db.run(reports.bot, month, readonly=True),
        }
        print("| view | p50 ms | max ms |\n| --- | --- | --- |")
        for name, fn in views.items():
            t = _times(fn, a.repeat)
            print(f"| {name} | {statistics.median(t) * 1000:.0f} | {max(t) * 1000:.0f} |")


if __name__ == "__main__":
    main()
