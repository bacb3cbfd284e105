"""Agents' accounts: create, log in (argon2id), change passwords; throttle failed logins.

Passwords are hashed with argon2id (argon2-cffi's defaults: 64 MiB, 3 passes,
RFC 9106's second recommended profile). A hash takes ~0.15 s of CPU, so
:func:`login` verifies outside any database transaction and only then
records the outcome.

Failed logins are counted per (name, client address) and per client address,
never per account alone:

* **name at address**: ``MAX_FAILURES`` failures of one name from one address
  within ``WINDOW`` lock that pair for ``LOCK_FOR``. A stranger guessing an
  agent's password from address A locks only themselves: the agent still logs
  in from address B.
* **address**: ``ADDRESS_MAX_FAILURES`` failures from one address, under any
  names, lock that address for ``LOCK_FOR``. This stops one client from
  spraying guesses over many names (or one name, after each pair lock ends).
* **no account-wide lock**: any limit that refuses an account's logins from
  everywhere is a lock a stranger can keep closed, so there is none. Guessing
  from many addresses stays bounded per address (5 guesses a name, 20 in all,
  per 15 minutes), against argon2id hashes of passwords of 10+ characters.

An unknown name is answered exactly as a wrong password: the counters are
keyed by the name as typed, whether or not an agent has it (names no agent
can have are keyed by a digest), a dummy hash is verified so that both take
the same time, and the same database work is done. A deactivated account
answers the same too. Locks are checked before the password, and once more
when the outcome is recorded, so a burst of parallel guesses learns at most
the outcomes counted before the lock.

The counters live in the database (``login_throttles``), shared by every
process. IPv6 clients are counted by their /64 network, the block one
subscriber usually gets, so hopping through it gains nothing. Rows are
deleted once their window and lock are over; no address is logged in full.
Which address is the client's (behind a proxy) is the console's decision:
bot/console/api.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.handoff.models import ROLES, Agent, LoginThrottle

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
MIN_PASSWORD, MAX_PASSWORD = 10, 256
MAX_FAILURES = 5  # failed logins of one name from one address before that pair is locked
ADDRESS_MAX_FAILURES = 20  # failed logins from one address, any names, before the address is locked
WINDOW = timedelta(minutes=15)  # failures older than this (counted from the first) are forgotten
LOCK_FOR = timedelta(minutes=15)
ANY_NAME = ""  # the username of an address's own counter
UNKNOWN_ADDRESS = "unknown"

log = logging.getLogger(__name__)
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
    """The outcome of a login: the account's view (an agent's, or a staff member's), or why not."""

    agent: Any
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
              session_version=1, created_at=now_or(None))
    s.add(a)
    s.flush()
    audit(s, actor, "agent_create", None, agent=name, role=role)
    return agent_view(a)


def _by_name(s: Session, username: str) -> Agent:
    a = s.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
    if a is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return a


def client_key(address: str | None) -> str:
    """How a client address is counted: IPv4 as is, IPv6 by its /64 network, else ``"unknown"``."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.IPv6Network((ip.exploded, 64), strict=False))
        return str(ip)
    except ValueError:
        return UNKNOWN_ADDRESS


def masked(address: str) -> str:
    """An address key fit for a log line: 203.0.113.x, 2001:db8:1:2::/64 cut to 2001:db8::/32."""
    if "." in address:
        return address.rsplit(".", 1)[0] + ".x"
    if ":" in address:
        return str(ipaddress.IPv6Network(address, strict=False).supernet(new_prefix=32))
    return address


def _name_key(name: str) -> str:
    """The counter key of a typed name: the name if an agent could have it, else a digest."""
    if USERNAME_RE.match(name):
        return name
    # "~" cannot start a username, so a digest never meets a real name; 31 hex digits fit the column.
    return "~" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:31]


def _counters(s: Session, who: str, where: str, *, for_update: bool = False) -> list[LoginThrottle]:
    q = (
        select(LoginThrottle)
        .where(LoginThrottle.address == where, LoginThrottle.username.in_((who, ANY_NAME)))
        .order_by(LoginThrottle.id)  # one locking order for every login: no deadlock between two
    )
    if for_update:
        q = q.with_for_update()
    return list(s.execute(q).scalars())


def _retry_after(counters: list[LoginThrottle], at: datetime) -> int:
    """Seconds until every lock among ``counters`` is over (0: none holds)."""
    ends = [c.locked_until for c in counters if c.locked_until is not None and c.locked_until > at]
    return int((max(ends) - at).total_seconds()) + 1 if ends else 0


def _count_failure(s: Session, row: LoginThrottle | None, who: str, where: str, limit: int,
                   at: datetime) -> bool:
    """Add one failure to a counter (created if new, restarted if its window is over); True if it locks now."""
    if row is None:
        row = LoginThrottle(username=who, address=where, failures=0, window_start=at)
        s.add(row)
    elif row.window_start + WINDOW <= at or (row.locked_until is not None and row.locked_until <= at):
        row.failures, row.window_start, row.locked_until = 0, at, None
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = at + LOCK_FOR
    row.expires_at = max(row.window_start + WINDOW, row.locked_until or at)
    return row.locked_until is not None


def login(username: object, password: object, now: datetime | None = None, *,
          address: str | None = None, accounts: Any = Agent,
          view_of: Callable[[Any], Any] = agent_view) -> LoginResult:
    """Check a username and password from a client ``address``; count failures, lock as the module says.

    Runs its own short transactions (see the module docstring). Unknown user,
    wrong password and deactivated account all answer ``bad_credentials``,
    and all count alike. ``accounts`` is the table of accounts (agents by
    default; the staff app passes its own, with the same username, hash,
    active and last-login columns) and ``view_of`` turns a row into its view.
    The failure counters are shared by both tables, keyed by the name typed.
    """
    at = now_or(now)
    name = username.strip().lower() if isinstance(username, str) else ""
    pw = password if isinstance(password, str) and len(password) <= MAX_PASSWORD else ""
    who, where = _name_key(name), client_key(address)

    def load(s: Session) -> tuple[tuple[int, str, bool] | None, int]:
        a = s.execute(select(accounts).where(accounts.username == who)).scalar_one_or_none()
        row = None if a is None else (a.id, a.password_hash, a.active)
        return row, _retry_after(_counters(s, who, where), at)

    row, retry = db.run(load, readonly=True)
    if retry:
        return LoginResult(None, "locked", retry)
    # Every refusal verifies a hash, a real one or the dummy: the time taken tells nothing.
    # A short stand-in for a missing password can never match (passwords have 10+ characters).
    matched = _verify(row[1] if row else _DUMMY_HASH, pw or "x")
    ok = row is not None and bool(pw) and matched and row[2]
    rehash = _hasher.hash(pw) if ok and row and _hasher.check_needs_rehash(row[1]) else None

    def record(s: Session) -> LoginResult:
        s.execute(delete(LoginThrottle).where(LoginThrottle.expires_at < at))
        counters = _counters(s, who, where, for_update=True)
        retry = _retry_after(counters, at)
        if retry:  # locked meanwhile by parallel failures: this outcome stays unknown too
            return LoginResult(None, "locked", retry)
        pair = next((c for c in counters if c.username == who), None)
        if ok and row is not None:
            a = s.get(accounts, row[0])
            assert a is not None
            a.last_login_at = at
            if rehash:
                a.password_hash = rehash
            if pair is not None:
                s.delete(pair)
            return LoginResult(view_of(a))
        per_address = next((c for c in counters if c.username == ANY_NAME), None)
        pair_locked = _count_failure(s, pair, who, where, MAX_FAILURES, at)
        address_locked = _count_failure(s, per_address, ANY_NAME, where, ADDRESS_MAX_FAILURES, at)
        if not (pair_locked or address_locked):
            return LoginResult(None, "bad_credentials")
        if address_locked:
            log.warning("console logins locked for address %s after %d failures", masked(where),
                        ADDRESS_MAX_FAILURES)
        if pair_locked and row is not None:
            audit(s, "console", "agent_locked", None, agent=who, scope="name_at_address")
        return LoginResult(None, "locked", int(LOCK_FOR.total_seconds()))

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
    # The new password is for the agent: their name is unlocked at every address.
    s.execute(delete(LoginThrottle).where(LoginThrottle.username == a.username))
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
