"""What the handoff tests against the running assistant share: the stack, a console session, the tracker.

The handoff needs the assistant's side (domain, rules, actions/handoff.py from
/work/notes/HANDOFF_SPEC.md). Until this checkout has it the tests skip as
pending; ``HANDOFF_ASSISTANT=/path`` runs them against a folder that has it
(its ``models/loyalty.tar.gz`` and ``actions/``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from loyalty import db
from loyalty.config import SHANGHAI
from loyalty.handoff import auth
from loyalty.handoff.models import Handoff
from loyalty.services import coupons
from tests.bot.test_console import WsClient
from tests.e2e.conftest import seed_minimal
from tests.support.stack import ROOT, Stack, start_stack

PW = "correct horse battery"
H = {"X-Console": "1"}
# Pinned so the tests never depend on the time they run at.
ALWAYS_OPEN = {"LOYALTY_SERVICE_HOURS": "00:00-24:00", "LOYALTY_SERVICE_DAYS": "1-7"}


def assistant_root() -> Path | None:
    raw = os.environ.get("HANDOFF_ASSISTANT")
    return Path(raw) if raw else None


def pending(root: Path) -> str | None:
    """Why the assistant at ``root`` cannot hand over yet (None: it can)."""
    domain = (root / "domain.yml").read_text(encoding="utf-8")
    missing = [i for i in ("cancel_handoff", "handback", "rate") if not re.search(rf"^\s+- {i}\s*$", domain, re.M)]
    if missing:
        return f"the domain has no intent {', '.join(missing)} yet (HANDOFF_SPEC.md)"
    actions = " ".join(p.read_text(encoding="utf-8") for p in (root / "actions").glob("*.py"))
    for name in ("action_handoff", "action_cancel_handoff", "action_record_rating"):
        if f'"{name}"' not in actions:
            return f"actions/ has no {name} yet (HANDOFF_SPEC.md)"
    return None


def start_handoff_stack(work: Path) -> Stack:
    """The assistant with the console, on a seeded database with a goodwill campaign; skips while pending."""
    root = assistant_root()
    why = pending(root or ROOT)
    if why:
        pytest.skip(f"pending: {why}")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    db.run(coupons.create_campaign, code="SORRY10", name_zh="致歉券 减10元", name_en="Sorry: 10 off",
           kind="threshold", discount_fen=1000, valid_days=30, audience="goodwill")
    return start_stack(work, url, assistant=root, env_extra=ALWAYS_OPEN)


def closed_today() -> dict[str, str]:
    """Service days that leave out today (Shanghai): agents are back tomorrow at 00:00."""
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).isoweekday()
    return {"LOYALTY_SERVICE_HOURS": "00:00-24:00", "LOYALTY_SERVICE_DAYS": str(tomorrow)}


def agent(name: str, role: str = "agent", display: str | None = None) -> int:
    return db.run(auth.create_agent, name, PW, role=role, display_name=display).id


def console_login(stack: Stack, name: str) -> requests.Session:
    http = requests.Session()
    r = http.post(stack.console + "/api/login", json={"username": name, "password": PW}, headers=H, timeout=60)
    assert r.status_code == 200, r.text
    return http


def console_socket(stack: Stack, http: requests.Session) -> WsClient:
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    ws = WsClient(stack.console.replace("http://", "ws://") + "/ws", {"Cookie": cookie})
    ws.wait(lambda f: f.get("type") == "queue")
    return ws


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
