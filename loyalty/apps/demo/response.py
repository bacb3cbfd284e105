"""Simulated shoppers who answer outreach with a known effect, so the holdout report can be checked.

Each member of a journey buys within the attribution window with probability
``base`` (the control arm's rate), plus ``effect`` if a message reached them.
Orders go through the real order service, as a till would post them.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from loyalty import db
from loyalty.orders import service as orders
from loyalty.outreach.models import OutreachSend


def respond(journey: str, *, base: float, effect: float, seed: int = 7, amount: str = "100.00") -> int:
    """Post the simulated orders of every member of ``journey``; returns how many were placed."""
    rng = random.Random(f"respond:{journey}:{seed}")
    rows = db.run(lambda s: list(s.execute(
        select(OutreachSend.member_id, OutreachSend.done_at, OutreachSend.status)
        .where(OutreachSend.journey == journey, OutreachSend.done_at.is_not(None))
        .order_by(OutreachSend.id))), readonly=True)
    placed = 0
    for mid, at, status in rows:
        p = base + (effect if status == "sent" else 0.0)
        if rng.random() < p:
            when = at + timedelta(hours=rng.uniform(1, 24 * 6))
            payload = {"external_id": f"SIM-{journey}-{mid}", "member_id": mid, "placed_at": when.isoformat(),
                       "amount": amount}
            db.run(orders.record_order, "pos", payload, now=when)
            placed += 1
    return placed
