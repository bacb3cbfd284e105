"""Agents' accounts: create, log in (argon2id), change passwords, lock after repeated failures.

Passwords are hashed with argon2id (argon2-cffi's defaults: 64 MiB, 3 passes,
RFC 9106's second recommended profile). A hash takes ~0.15 s of CPU, so
:func:`login` verifies outside any database transaction and only then
records the outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.handoff.models import ROLES, Agent

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
MIN_PASSWORD, MAX_PASSWORD = 10, 256
MAX_FAILURES = 5  # failed logins in a row before the account is locked for LOCK_FOR
LOCK_FOR = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


@dataclass(frozen=True)
class AgentView:
    """An agent as the console and the CLI see it (never the hash)."""

    id: int
    username: str
    display_name: str
    role: str
    active: bool
    session_version: int

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a login: the agent, or why not (``bad_credentials`` | ``locked``)."""

    agent: AgentView | None
    error: str | None = None
    retry_after: int = 0  # seconds, when locked


def agent_view(a: Agent) -> AgentView:
    return AgentView(a.id, a.username, a.display_name, a.role, a.active, a.session_version)


def normalize_username(raw: object) -> str:
    """Lower-case and check a username: 3-32 of a-z 0-9 _ . - starting with a letter or digit."""
    name = raw.strip().lower() if isinstance(raw, str) else ""
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "A username has 3-32 characters: a-z, 0-9, '_', '.', '-', starting with a letter or digit.",
            code="invalid_username",
        )
    return name


def check_password(password: object) -> str:
    """A password fit to be set: 10-256 characters, not only spaces."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or not password.strip():
        raise InvalidInput(f"A password has {MIN_PASSWORD}-{MAX_PASSWORD} characters.", code="weak_password")
    if "\x00" in password:
        raise InvalidInput("A password cannot contain NUL.", code="weak_password")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of a password that passed :func:`check_password`."""
    return _hasher.hash(check_password(password))


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def create_agent(
    s: Session,
    username: str,
    password: str,
    *,
    role: str = "agent",
    display_name: str | None = None,
    actor: str = "cli",
) -> AgentView:
    """Add an agent or supervisor; the username must be new."""
    name = normalize_username(username)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    shown = (display_name or name).strip()
    if not shown or len(shown) > 50:
        raise InvalidInput("A display name has 1-50 characters.", code="invalid_display_name")
    hashed = hash_password(password)
    if s.execute(select(Agent.id).where(Agent.username == name)).first():
        raise Refused("An agent with this username exists.", code="agent_exists")
    a = Agent(username=name, display_name=shown, password_hash=hashed, role=role, active=True,
              session_version=1, failed_logins=0, created_at=now_or(None))
    s.add(a)
    s.flush()
    audit(s, actor, "agent_create", None, agent=name, role=role)
    return agent_view(a)


def _by_name(s: Session, username: str) -> Agent:
    a = s.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
    if a is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return a


def login(username: object, password: object, now: datetime | None = None) -> LoginResult:
    """Check a username and password; count failures and lock the account after too many.

    Runs its own short transactions (see the module docstring). Unknown user,
    wrong password and deactivated account all answer ``bad_credentials``.
    """
    at = now_or(now)
    name = username.strip().lower() if isinstance(username, str) else ""
    pw = password if isinstance(password, str) and len(password) <= MAX_PASSWORD else ""

    def load(s: Session) -> tuple[int, str, bool, datetime | None] | None:
        a = s.execute(select(Agent).where(Agent.username == name)).scalar_one_or_none()
        return None if a is None else (a.id, a.password_hash, a.active, a.locked_until)

    row = db.run(load, readonly=True) if USERNAME_RE.match(name) else None
    if row is None:
        _verify(_DUMMY_HASH, pw or "x")
        return LoginResult(None, "bad_credentials")
    agent_id, stored, active, locked_until = row
    if locked_until is not None and locked_until > at:
        return LoginResult(None, "locked", int((locked_until - at).total_seconds()) + 1)
    ok = bool(pw) and _verify(stored, pw) and active
    rehash = _hasher.hash(pw) if ok and _hasher.check_needs_rehash(stored) else None

    def record(s: Session) -> LoginResult:
        a = s.get(Agent, agent_id)
        assert a is not None
        if ok:
            a.failed_logins, a.locked_until, a.last_login_at = 0, None, at
            if rehash:
                a.password_hash = rehash
            return LoginResult(agent_view(a))
        a.failed_logins += 1
        if a.failed_logins >= MAX_FAILURES:
            a.failed_logins, a.locked_until = 0, at + LOCK_FOR
            audit(s, "console", "agent_locked", None, agent=a.username)
            return LoginResult(None, "locked", int(LOCK_FOR.total_seconds()))
        return LoginResult(None, "bad_credentials")

    return db.run(record)


def session_agent(s: Session, agent_id: int, session_version: int) -> AgentView | None:
    """The agent a session cookie names, if still active and not logged out everywhere since."""
    a = s.get(Agent, agent_id) if isinstance(agent_id, int) else None
    if a is None or not a.active or a.session_version != session_version:
        return None
    return agent_view(a)


def change_password(s: Session, agent_id: int, old: str, new: str) -> AgentView:
    """An agent changes their own password; every other session ends."""
    a = s.get(Agent, agent_id)
    if a is None or not a.active:
        raise NotFound("No such agent.", code="agent_not_found")
    if not isinstance(old, str) or not _verify(a.password_hash, old):
        raise Refused("The current password is wrong.", code="bad_credentials")
    a.password_hash = hash_password(new)
    a.session_version += 1
    audit(s, a.username, "agent_password", None, agent=a.username)
    return agent_view(a)


def set_password(s: Session, username: str, new: str, *, actor: str) -> AgentView:
    """Reset an agent's password (CLI or supervisor); unlocks the account and ends its sessions."""
    a = _by_name(s, normalize_username(username))
    a.password_hash = hash_password(new)
    a.session_version += 1
    a.failed_logins, a.locked_until = 0, None
    audit(s, actor, "agent_password_reset", None, agent=a.username)
    return agent_view(a)


def set_active(s: Session, username: str, active: bool, *, actor: str) -> AgentView:
    """Deactivate (or reactivate) an agent; deactivation ends its sessions at once."""
    a = _by_name(s, normalize_username(username))
    if a.active != active:
        a.active = active
        a.session_version += 1
        audit(s, actor, "agent_activate" if active else "agent_deactivate", None, agent=a.username)
    return agent_view(a)


def end_sessions(s: Session, agent_id: int) -> None:
    """Log an agent out everywhere (every signed cookie issued so far stops working)."""
    s.execute(update(Agent).where(Agent.id == agent_id).values(session_version=Agent.session_version + 1))


def agents(s: Session, *, active_only: bool = True) -> list[AgentView]:
    """Every agent, by username."""
    q = select(Agent).order_by(Agent.username)
    if active_only:
        q = q.where(Agent.active.is_(True))
    return [agent_view(a) for a in s.execute(q).scalars()]
