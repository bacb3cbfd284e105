"""Staff accounts: create, log in, sessions, passwords; the agents' argon2 hashing and login throttle.

Logins go through :func:`loyalty.handoff.auth.login` with this table, so the
same lockout rules hold (per name at an address, per address) and the same
failure counters are shared with the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.catalogue.models import Store
from loyalty.common import now_or
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.handoff import auth
from loyalty.staff.models import ROLES, StaffAccount


@dataclass(frozen=True)
class StaffView:
    """A staff member as the app sees them (never the hash)."""

    id: int
    username: str
    display_name: str
    role: str
    store_id: int | None
    store_code: str | None
    active: bool
    session_version: int

    @property
    def all_stores(self) -> bool:
        """Whether this person may read every store's numbers (everyone but a store manager)."""
        return self.role != "store_manager"

    @property
    def may_manage_campaigns(self) -> bool:
        return self.role in ("marketing", "supervisor")


def staff_view(a: StaffAccount, store_code: str | None = None) -> StaffView:
    return StaffView(a.id, a.username, a.display_name, a.role, a.store_id, store_code, a.active, a.session_version)


def _with_store(s: Session, a: StaffAccount) -> StaffView:
    code = s.execute(select(Store.code).where(Store.id == a.store_id)).scalar() if a.store_id else None
    return staff_view(a, code)


def create_staff(s: Session, username: str, password: str, *, role: str, store: str | None = None,
                 display_name: str | None = None, actor: str = "cli") -> StaffView:
    """Add a staff account; a store manager names their store by its code, the other roles none."""
    name = auth.normalize_username(username)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    store_id = None
    if role == "store_manager":
        if not store:
            raise InvalidInput("A store manager needs a store (its code).", code="store_needed")
        store_id = s.execute(select(Store.id).where(Store.code == store.strip().upper())).scalar()
        if store_id is None:
            raise NotFound("No store has this code.", code="unknown_store")
    elif store:
        raise InvalidInput("Only a store manager has a store.", code="store_not_allowed")
    shown = (display_name or name).strip()
    if not shown or len(shown) > 50:
        raise InvalidInput("A display name has 1-50 characters.", code="invalid_display_name")
    hashed = auth.hash_password(password)
    if s.execute(select(StaffAccount.id).where(StaffAccount.username == name)).first():
        raise Refused("A staff account with this username exists.", code="staff_exists")
    a = StaffAccount(username=name, display_name=shown, password_hash=hashed, role=role, store_id=store_id,
                     active=True, session_version=1, created_at=now_or(None))
    s.add(a)
    s.flush()
    audit(s, actor, "staff_create", None, staff=name, role=role)
    return _with_store(s, a)


def login(username: object, password: object, *, address: str | None) -> auth.LoginResult:
    """Check a staff login (its own transactions; see :func:`loyalty.handoff.auth.login`)."""
    return auth.login(username, password, address=address, accounts=StaffAccount, view_of=staff_view)


def session_staff(s: Session, staff_id: int, session_version: int) -> StaffView | None:
    """The staff member a session cookie names, if still active and not logged out since."""
    a = s.get(StaffAccount, staff_id) if isinstance(staff_id, int) else None
    if a is None or not a.active or a.session_version != session_version:
        return None
    return _with_store(s, a)


def end_sessions(s: Session, staff_id: int) -> None:
    """Log out everywhere: every cookie issued so far stops working."""
    s.execute(update(StaffAccount).where(StaffAccount.id == staff_id)
              .values(session_version=StaffAccount.session_version + 1))


def set_password(s: Session, username: str, new: str, *, actor: str) -> StaffView:
    """Reset a staff member's password; their sessions end."""
    a = s.execute(select(StaffAccount).where(StaffAccount.username == auth.normalize_username(username))
                  ).scalar_one_or_none()
    if a is None:
        raise NotFound("No such staff account.", code="staff_not_found")
    a.password_hash = auth.hash_password(new)
    a.session_version += 1
    audit(s, actor, "staff_password_reset", None, staff=a.username)
    return _with_store(s, a)


def accounts(s: Session) -> list[StaffView]:
    """Every staff account, by username."""
    return [_with_store(s, a) for a in s.execute(select(StaffAccount).order_by(StaffAccount.username)).scalars()]
