"""Signed session cookies: who is logged in, until when, valid only while the account's version holds.

The cookie carries ``agent id, session version, expiry`` signed with HMAC-SHA256.
Nothing secret is inside; logging out or changing the password bumps the
version in the database, which voids every cookie issued before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

COOKIE = "console_session"


@dataclass(frozen=True)
class Session:
    agent_id: int
    version: int
    expires: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(body: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, b"console-session:" + body.encode(), hashlib.sha256).digest())


def issue(agent_id: int, version: int, hours: int, secret: bytes, now: float | None = None) -> str:
    """A cookie value for this agent, valid ``hours`` from now."""
    expires = int((now or time.time()) + hours * 3600)
    body = _b64(json.dumps([agent_id, version, expires], separators=(",", ":")).encode())
    return f"{body}.{_mac(body, secret)}"


def read(value: str | None, secret: bytes, now: float | None = None) -> Session | None:
    """The session a cookie value carries, or None if missing, forged, malformed or expired."""
    if not value or len(value) > 512 or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    if not hmac.compare_digest(mac, _mac(body, secret)):
        return None
    try:
        agent_id, version, expires = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (agent_id, version, expires)):
        return None
    if expires <= (now or time.time()):
        return None
    return Session(agent_id, version, expires)
