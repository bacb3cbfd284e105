"""What the handoff tests against the running assistant share: the stack, a console session, the tracker.

``HANDOFF_ASSISTANT=/path`` runs them against another assistant folder (its
``models/loyalty.tar.gz`` and ``actions/``) instead of this checkout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyalty import db
from loyalty.config import SHANGHAI
from loyalty.coupons import service as coupons
from loyalty.handoff.models import Handoff
from tests.e2e.conftest import seed_minimal
from tests.support.console import PW, H, WsClient, agent, console_login, console_socket  # noqa: F401
from tests.support.stack import Stack, start_stack

# Pinned so the tests never depend on the time they run at.
ALWAYS_OPEN = {"LOYALTY_SERVICE_HOURS": "00:00-24:00", "LOYALTY_SERVICE_DAYS": "1-7"}


def assistant_root() -> Path | None:
    raw = os.environ.get("HANDOFF_ASSISTANT")
    return Path(raw) if raw else None


def start_handoff_stack(work: Path) -> Stack:
    """The assistant with the console, on a seeded database with a goodwill campaign."""
    root = assistant_root()
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    db.run(coupons.create_campaign, code="SORRY10", name_zh="致歉券 减10元", name_en="Sorry: 10 off",
           kind="threshold", discount_fen=1000, valid_days=30, audience="goodwill")
    return start_stack(work, url, assistant=root, env_extra=ALWAYS_OPEN)


def closed_today() -> dict[str, str]:
    """Service days that leave out today (Shanghai): agents are back tomorrow at 00:00."""
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).isoweekday()
    return {"LOYALTY_SERVICE_HOURS": "00:00-24:00", "LOYALTY_SERVICE_DAYS": str(tomorrow)}


def texts(replies: list[str]) -> str:
    return "\n".join(replies)


def handoff_of(sender: str) -> Handoff | None:
    """The latest handoff of a conversation."""
    from sqlalchemy import select

    with db.session() as s:
        return s.execute(
            select(Handoff).where(Handoff.sender_id == sender).order_by(Handoff.id.desc()).limit(1)
        ).scalar_one_or_none()


def wait_for(check: Any, timeout: float = 30, every: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def tracker_events(stack: Stack, sender: str) -> list[dict[str, Any]]:
    """The conversation's events as the SQL tracker store keeps them."""
    with sqlite3.connect(stack.workdir / "tracker.db") as conn:
        rows = conn.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (sender,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def after_last_user(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max(i for i, e in enumerate(events) if e["event"] == "user")
    return events[last + 1:]


_shared: dict[str, Stack] = {}


def shared_stack(request: pytest.FixtureRequest) -> Stack:
    """One handoff stack for every module that asks, stopped when the session ends.

    The session's other stack (tests/e2e/conftest.py) configured loyalty.db for
    its database: it gets it back at the end.
    """
    if "stack" not in _shared:
        previous = db._engine
        work = request.getfixturevalue("tmp_path_factory").mktemp("handoff")
        _shared["stack"] = start_handoff_stack(work)

        def stop() -> None:
            _shared.pop("stack").stop()
            if previous is not None:
                db.configure(previous)

        request.config.add_cleanup(stop)
    return _shared["stack"]
