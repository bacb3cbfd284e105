"""The points ledger: earn, spend, expire, claw back, adjust.

Invariant, kept by every function here: ``Member.points_balance`` = sum of
the member's ledger deltas = sum of ``remaining`` over the member's lots.
Decrements are guarded updates (``WHERE points_balance >= n``) on a member
row the caller has locked, and a CHECK constraint backs them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from loyalty.audit import audit
from loyalty.common import days, known_balance, local_date, local_midnight, note_balance, now_or
from loyalty.config import Settings, settings
from loyalty.errors import Conflict, InvalidInput, Refused
from loyalty.members.lock import lock_member
from loyalty.members.models import Member
from loyalty.points.models import LedgerEntry, PointsLot

# Statements of the hot paths, built once: building and keying a statement costs more than
# running it on SQLite. Those that load no objects and need no autoflush (the inserts, the
# balance, a column the ORM never writes) run on the session's connection, below the ORM's
# execution layer, which costs as much again.
_BY_KEY = select(LedgerEntry).where(LedgerEntry.idem_key == bindparam("key"))
_BALANCE = select(Member.points_balance).where(Member.id == bindparam("member_id"))
_ADD = (
    update(Member)
    .where(Member.id == bindparam("member_id"))
    .values(points_balance=Member.points_balance + bindparam("delta"))
    .execution_options(synchronize_session=False)
)
# The guard: a decrement only applies while the balance covers it.
_TAKE = _ADD.where(Member.points_balance >= bindparam("needed"))
_NEW_ENTRY = insert(LedgerEntry)
_NEW_LOT = insert(PointsLot)
_DUE_LOTS = (
    select(PointsLot)
    .where(
        PointsLot.member_id == bindparam("member_id"),
        PointsLot.remaining > 0,
        PointsLot.expires_at <= bindparam("now"),
    )
    .order_by(PointsLot.expires_at, PointsLot.id)
    .with_for_update()
)
_LIVE_LOTS = (
    select(PointsLot)
    .where(PointsLot.member_id == bindparam("member_id"), PointsLot.remaining > 0)
    .order_by(PointsLot.expires_at, PointsLot.id)
    .with_for_update()
)
# A lot is live while something is left and its expiry is still ahead.
_LIVE = (
    PointsLot.member_id == bindparam("member_id"),
    PointsLot.remaining > 0,
    PointsLot.expires_at > bindparam("now"),
)
_LIVE_BALANCE = select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(*_LIVE)
_NEXT_EXPIRY = select(func.min(PointsLot.expires_at)).where(*_LIVE).scalar_subquery()
# One row whatever the number of lots: a long-standing member has thousands of them.
_LIVE_TOTALS = select(
    func.coalesce(func.sum(PointsLot.remaining), 0),
    func.coalesce(func.sum(case((PointsLot.expires_at <= bindparam("soon"), PointsLot.remaining), else_=0)), 0),
    _NEXT_EXPIRY,
    func.coalesce(func.sum(case((PointsLot.expires_at == _NEXT_EXPIRY, PointsLot.remaining), else_=0)), 0),
).where(*_LIVE)
_RECENT = (
    select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.delta, LedgerEntry.balance_after,
           LedgerEntry.created_at, LedgerEntry.reason)
    .where(LedgerEntry.member_id == bindparam("member_id"))
    .order_by(LedgerEntry.id.desc())
    .limit(bindparam("n"))
)


@dataclass(frozen=True)
class LedgerLine:
    """One ledger entry as a member sees it."""

    id: int
    kind: str
    delta: int
    balance_after: int
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class PointsSummary:
    """A member's balance, what expires next and the latest entries."""

    balance: int
    expiring_soon: int  # points expiring within settings.expiring_soon_days
    next_expiry: date | None  # last valid day (Asia/Shanghai) of the next lot to expire
    next_expiry_points: int
    recent: tuple[LedgerLine, ...]


@dataclass(frozen=True)
class Movement:
    """The result of a change of points."""

    entry_id: int
    delta: int
    balance: int
    shortfall: int = 0


def expiry_for(earned_at: datetime, st: Settings | None = None) -> datetime:
    """When points earned at ``earned_at`` expire (an Asia/Shanghai midnight).

    "days": valid through the N-th local day after earning, gone at the next
    midnight. "year_end_next": valid through 31 December of the next year.
    """
    st = st or settings()
    d = local_date(earned_at)
    if st.expiry_mode == "year_end_next":
        return local_midnight(date(d.year + 2, 1, 1))
    return local_midnight(d + days(st.expiry_days + 1))


def _whole(points: object) -> bool:
    # bool is an int in Python, and "10" or 1.5 must not reach arithmetic or the database.
    return isinstance(points, int) and not isinstance(points, bool)


def _movement(e: LedgerEntry) -> Movement:
    return Movement(e.id, e.delta, e.balance_after, e.shortfall)


def _by_key(s: Session, key: str | None, member_id: int) -> LedgerEntry | None:
    """The entry an idempotency key already made, if any (keys are unique across members)."""
    if key is None:
        return None
    entry = s.execute(_BY_KEY, {"key": key}).scalar_one_or_none()
    if entry is not None and entry.member_id != member_id:
        raise Conflict("This request key belongs to another member.")
    return entry


def _change_balance(s: Session, member_id: int, delta: int) -> int:
    """Apply ``delta`` to the running balance, refusing to go below zero; returns the new balance."""
    if delta < 0:
        res = s.connection().execute(_TAKE, {"member_id": member_id, "delta": delta, "needed": -delta})
    else:
        res = s.connection().execute(_ADD, {"member_id": member_id, "delta": delta})
    if res.rowcount != 1:
        raise Refused("Not enough points.", code="insufficient_points", needed=-delta)
    # The row is ours until the transaction ends (its lock, or this very update, holds it), so
    # a balance known in this transaction plus delta is the new one: no need to read it back.
    known = known_balance(s, member_id)
    if known is not None:
        balance = known + delta
    else:
        balance = s.connection().execute(_BALANCE, {"member_id": member_id}).scalar_one()
    note_balance(s, member_id, balance)
    # Keep an already loaded Member object truthful for the rest of the transaction.
    loaded = s.identity_map.get(identity_key(Member, member_id))
    if loaded is not None:
        s.expire(loaded, ["points_balance"])
    return balance


def _append(
    s: Session,
    member_id: int,
    kind: str,
    delta: int,
    balance_after: int,
    at: datetime,
    *,
    growth: int = 0,
    shortfall: int = 0,
    order_id: int | None = None,
    key: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Movement:
    # A Core insert skips the unit of work (nobody needs the entry as an object), but it
    # does not autoflush: rows still pending (an order, a member) must reach the database first.
    s.flush()
    entry_id = s.connection().execute(_NEW_ENTRY, dict(
        member_id=member_id, kind=kind, delta=delta, balance_after=balance_after, growth=growth,
        shortfall=shortfall, order_id=order_id, idem_key=key, reason=reason, actor=actor, created_at=at,
    )).inserted_primary_key[0]
    return Movement(entry_id, delta, balance_after, shortfall)


def _check_credit(points: int) -> None:
    if not _whole(points) or points < 0:
        raise InvalidInput("points must be a whole number, not negative", code="invalid_points")


def credit(
    s: Session,
    member_id: int,
    points: int,
    *,
    kind: str,
    at: datetime,
    growth: int = 0,
    order_id: int | None = None,
    key: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Movement:
    """Add ``points`` as a new lot (member already locked by the caller)."""
    _check_credit(points)
    existing = _by_key(s, key, member_id)
    if existing is not None:
        if existing.delta != points:
            raise Conflict("This request key was used for another amount.")
        return _movement(existing)
    return credit_fresh(s, member_id, points, kind=kind, at=at, growth=growth, order_id=order_id, key=key,
                        reason=reason, actor=actor)


def credit_fresh(
    s: Session,
    member_id: int,
    points: int,
    *,
    kind: str,
    at: datetime,
    growth: int = 0,
    order_id: int | None = None,
    key: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Movement:
    """:func:`credit` under a key that cannot have been used yet, without looking it up.

    For keys naming a row this transaction just inserted (``order:<new id>``);
    the unique index on the key still refuses a second entry.
    """
    _check_credit(points)
    balance = _change_balance(s, member_id, points) if points else _current(s, member_id)
    mv = _append(
        s, member_id, kind, points, balance, at,
        growth=growth, order_id=order_id, key=key, reason=reason, actor=actor,
    )
    if points:
        s.connection().execute(_NEW_LOT, dict(
            member_id=member_id, entry_id=mv.entry_id, order_id=order_id,
            amount=points, remaining=points, earned_at=at, expires_at=expiry_for(at),
        ))
    return mv


def _current(s: Session, member_id: int) -> int:
    known = known_balance(s, member_id)
    if known is not None:
        return known
    return s.connection().execute(_BALANCE, {"member_id": member_id}).scalar_one()


def current_balance(s: Session, member_id: int) -> int:
    """The member's running balance as this transaction sees it (no query when already known)."""
    return _current(s, member_id)


def _take_from_lots(s: Session, member_id: int, points: int, first_order_id: int | None = None) -> int:
    """Take up to ``points`` from live lots, earliest-expiring first; returns what was taken."""
    lots = list(s.execute(_LIVE_LOTS, {"member_id": member_id}).scalars())
    if first_order_id is not None:
        # A return takes back from the order's own lot before anything else.
        lots.sort(key=lambda lot: lot.order_id != first_order_id)
    left = points
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        left -= take
    s.flush()
    return points - left


def debit(
    s: Session,
    member_id: int,
    points: int,
    *,
    kind: str,
    at: datetime,
    key: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> Movement:
    """Take ``points`` from the member's lots, all or nothing (member locked by the caller)."""
    if not _whole(points) or points <= 0:
        raise InvalidInput("points must be a positive whole number", code="invalid_points")
    existing = _by_key(s, key, member_id)
    if existing is not None:
        if existing.delta != -points:
            raise Conflict("This request key was used for another amount.")
        return _movement(existing)
    expire_member(s, member_id, at)
    balance = _change_balance(s, member_id, -points)
    taken = _take_from_lots(s, member_id, points)
    if taken != points:  # the invariant broke: stop before anything is written
        raise RuntimeError(f"lots of member {member_id} hold less than the balance")
    return _append(s, member_id, kind, -points, balance, at, key=key, reason=reason, actor=actor)


def spend(
    s: Session, member_id: int, points: int, *, key: str, reason: str, now: datetime | None = None
) -> Movement:
    """Spend points (on a gift, a coupon), exactly once per ``key``."""
    if not isinstance(key, str) or not key.strip() or len(key) > 100:
        raise InvalidInput("A spend needs a request key of at most 100 characters.", code="invalid_key")
    if not _whole(points) or points <= 0:
        raise InvalidInput("points must be a positive whole number", code="invalid_points")
    reason = _check_reason(reason)
    lock_member(s, member_id)
    # The caller's key is the member's own: two members may both send "gift-1".
    return debit(s, member_id, points, kind="spend", at=now_or(now), key=f"spend:{member_id}:{key}",
                 reason=reason)


def _check_reason(reason: object) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise InvalidInput("A reason is needed.", code="reason_required")
    if len(text) > 200:
        raise InvalidInput("Give a reason of at most 200 characters.", code="invalid_reason")
    return text


def adjust(
    s: Session,
    member_id: int,
    delta: int,
    *,
    reason: str,
    actor: str,
    key: str | None = None,
    now: datetime | None = None,
) -> Movement:
    """A manual correction by staff, with a reason and an actor, audited.

    With a ``key`` it happens once: a replay returns the first movement and is
    not audited again; the same key with another delta is a :class:`Conflict`.
    """
    reason = _check_reason(reason)
    if not actor:
        raise InvalidInput("An adjustment needs an actor.", code="actor_required")
    if not isinstance(actor, str) or len(actor) > 64:
        raise InvalidInput("An actor of at most 64 characters.", code="invalid_actor")
    if not _whole(delta) or delta == 0 or abs(delta) > 1_000_000:
        raise InvalidInput("Adjust by a non-zero whole number up to 1,000,000.", code="invalid_points")
    if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > 100):
        raise InvalidInput("A request key of at most 100 characters.", code="invalid_key")
    at = now_or(now)
    lock_member(s, member_id)
    k = f"adjust:{member_id}:{key}" if key else None
    existing = _by_key(s, k, member_id)
    if existing is not None:
        if existing.delta != delta:
            raise Conflict("This request key was used for another amount.")
        return _movement(existing)
    if delta > 0:
        mv = credit(s, member_id, delta, kind="adjust", at=at, key=k, reason=reason, actor=actor)
    else:
        mv = debit(s, member_id, -delta, kind="adjust", at=at, key=k, reason=reason, actor=actor)
    audit(s, actor, "points_adjust", member_id, note=reason, delta=delta, entry_id=mv.entry_id)
    return mv


def clawback(
    s: Session,
    member_id: int,
    points: int,
    *,
    order_id: int,
    at: datetime,
    growth: int = 0,
    key: str | None = None,
) -> Movement:
    """Take back points a returned order earned, never below zero; the rest is recorded as shortfall."""
    existing = _by_key(s, key, member_id)
    if existing is not None:
        return _movement(existing)
    expire_member(s, member_id, at)
    taken = _take_from_lots(s, member_id, points, first_order_id=order_id) if points else 0
    balance = _change_balance(s, member_id, -taken) if taken else _current(s, member_id)
    return _append(
        s, member_id, "clawback", -taken, balance, at,
        growth=growth, shortfall=points - taken, order_id=order_id, key=key, reason="return",
    )


def expire_member(s: Session, member_id: int, now: datetime) -> int:
    """Expire the member's lots that are due; returns the points expired. Idempotent."""
    due = list(s.execute(_DUE_LOTS, {"member_id": member_id, "now": now}).scalars())
    total = 0
    for lot in due:
        n = lot.remaining
        lot.remaining = 0
        s.flush()
        balance = _change_balance(s, member_id, -n)
        _append(
            s, member_id, "expire", -n, balance, lot.expires_at,
            key=f"expire:{lot.id}", reason=f"lot {lot.id}",
        )
        total += n
    return total


def expire_due_for(s: Session, member_id: int, now: datetime | None = None) -> int:
    """The expiry job's unit of work: lock one member and expire what is due."""
    lock_member(s, member_id, allow_closed=True)
    return expire_member(s, member_id, now_or(now))


def members_with_due_lots(s: Session, now: datetime | None = None) -> list[int]:
    """Ids of members having lots that are due to expire."""
    q = (
        select(PointsLot.member_id)
        .where(PointsLot.remaining > 0, PointsLot.expires_at <= now_or(now))
        .distinct()
        .order_by(PointsLot.member_id)
    )
    return list(s.execute(q).scalars())


def live_balance(s: Session, member_id: int, now: datetime | None = None) -> int:
    """Sum of the member's lots that have not expired at ``now``."""
    return int(s.execute(_LIVE_BALANCE, {"member_id": member_id, "now": now_or(now)}).scalar_one())


def summary(s: Session, member_id: int, *, recent: int = 5, now: datetime | None = None) -> PointsSummary:
    """Balance (live lots), the next expiry, points expiring soon and the last entries."""
    at = now_or(now)
    st = settings()
    params = {"member_id": member_id, "now": at, "soon": at + days(st.expiring_soon_days)}
    balance, soon, next_exp, next_pts = s.execute(_LIVE_TOTALS, params).one()
    entries = s.execute(_RECENT, {"member_id": member_id, "n": recent}).all()
    # int(): PostgreSQL sums BIGINT columns as NUMERIC.
    return PointsSummary(
        balance=int(balance),
        expiring_soon=int(soon),
        # The lot is gone at midnight, so the last day it can be used is the day before.
        next_expiry=local_date(next_exp) - days(1) if next_exp else None,
        next_expiry_points=int(next_pts),
        recent=tuple(LedgerLine(*e) for e in entries),
    )


def ledger_total(s: Session, member_id: int) -> int:
    """Sum of every ledger delta of a member (for checks and the books)."""
    q = select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.member_id == member_id)
    return int(s.execute(q).scalar_one())


def lots_total(s: Session, member_id: int) -> int:
    """Sum of ``remaining`` over every lot of a member, expired or not."""
    q = select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(PointsLot.member_id == member_id)
    return int(s.execute(q).scalar_one())
