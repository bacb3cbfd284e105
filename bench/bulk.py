"""A chain's worth of rows for the staff benchmarks, written in bulk (COPY on PostgreSQL, executemany elsewhere).

No core service runs: these benchmarks are about reading, and the services
write about 56 orders a second, so 2 million orders would take 10 hours. The
rows are what the dashboard, the journeys tab and the bot figures read, drawn
so that every figure has something in it:

- stores (the demo's five, then synthetic ones), members spread over stores
  (some joined through no store), channels (78 % WeChat), tiers, languages and
  signup dates (more in recent months), and their RFM segment rows;
- orders: on average ``orders`` a member (in proportion to their time as a
  member) between their signup and now, at the till (70 %, mostly their home
  store) or online, amounts of about ¥150; each
  earns points (ledger entry and lot; the tier's multiplier), lots expire after
  365 days (expire entries), and points are spent on coupons now and then;
- coupons: a welcome coupon for every member (redeemed when they order within
  30 days, 60 %), a seasonal campaign claimed by a third of the members, and
  the coupons bought with points; a redemption points at a real order;
- outreach sends: welcome day 0 for every member and day 3 for those who have
  not ordered, after-purchase thanks for the last 30 days' orders, a broadcast
  to a tenth of the members (holdout 10 % by ``rules.in_control``);
- conversations of the last 30 days (10 % handed to an agent, with the
  handoff's wait and rating; a quarter of the others rated by the shopper at
  the goodbye) and a review list of messages not understood.

``seed(members, orders, conversations)`` returns the row counts. Ids are
given here; PostgreSQL's sequences are moved past them at the end.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Connection

from loyalty import db
from loyalty.apps.demo.reference import STORES
from loyalty.catalogue.models import Store
from loyalty.conversations.models import BotRating, Conversation
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.handoff.models import REASONS, Handoff
from loyalty.members.models import Member, MemberSegment
from loyalty.nlu_review.models import ReviewMessage
from loyalty.orders.models import Order
from loyalty.outreach import rules
from loyalty.outreach.models import Broadcast, OutreachSend
from loyalty.points.models import LedgerEntry, PointsLot

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
TIERS = (("normal", 0.72, 1.0), ("silver", 0.18, 1.2), ("gold", 0.08, 1.5), ("platinum", 0.02, 2.0))
# Foreign keys point up this list: a flush writes every table in this order.
MODELS: tuple[Any, ...] = (Store, CouponCampaign, Broadcast, Member, Order, LedgerEntry, PointsLot, Coupon,
                           MemberSegment, OutreachSend, Conversation, BotRating, Handoff, ReviewMessage)
LOT_DAYS, SPEND, HOLDOUT = 365, 500, 10.0


def _field(v: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(v, (dict, list)):
        v = json.dumps(v, ensure_ascii=False)
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class Writer:
    """Buffers rows per table and writes them all, parents first, when one buffer is full."""

    def __init__(self, conn: Connection, size: int = 50_000) -> None:
        self.conn, self.size = conn, size
        self.copy = conn.dialect.name == "postgresql"
        self.rows: dict[Table, list[dict[str, Any]]] = {m.__table__: [] for m in MODELS}
        self.counts: dict[str, int] = {m.__tablename__: 0 for m in MODELS}

    def add(self, model: Any, **row: Any) -> None:
        self.rows[model.__table__].append(row)

    def maybe_flush(self) -> None:
        """Write out when a buffer is full: called between members, so a member's rows go together."""
        if any(len(buf) >= self.size for buf in self.rows.values()):
            self.flush()

    def flush(self) -> None:
        for table, buf in self.rows.items():
            if buf:
                self._write(table, buf)
                self.counts[table.name] += len(buf)
                buf.clear()

    def _write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not self.copy:
            self.conn.execute(insert(table), rows)
            return
        cols = list(rows[0])
        data = io.StringIO("".join("\t".join(_field(r[c]) for c in cols) + "\n" for r in rows))
        with self.conn.connection.cursor() as cur:  # type: ignore[attr-defined]
            cur.copy_expert(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN", data)

    def close(self) -> dict[str, int]:
        self.flush()
        if self.copy:
            for table in self.rows:
                if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement:
                    self.conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                           f"GREATEST((SELECT max(id) FROM {table.name}), 1))"))
        return self.counts


def _pick(rnd: random.Random, pairs: Iterable[tuple[Any, float]]) -> Any:
    items = list(pairs)
    return rnd.choices([k for k, _ in items], [w for _, w in items])[0]


def _stores(w: Writer, n: int) -> list[tuple[int, float]]:
    out = []
    for i in range(n):
        if i < len(STORES):
            st = STORES[i]
            w.add(Store, id=i + 1, code=st.code, name_zh=st.name_zh, name_en=st.name_en, city=st.city, active=True)
            out.append((i + 1, st.weight))
        else:
            w.add(Store, id=i + 1, code=f"GZ{i:03d}", name_zh=f"广州{i}号店", name_en=f"Guangzhou {i}",
                  city="广州", active=True)
            out.append((i + 1, 0.03))
    return out


_CAMPAIGNS = (  # id, code, kind, threshold, discount, percent, points cost, valid days
    (1, "WELCOME20", "threshold", 10000, 2000, 0, 0, 30),
    (2, "AUTUMN50", "threshold", 30000, 5000, 0, 0, 60),
    (3, "POINTS10", "threshold", 5000, 1000, 0, SPEND, 90),
    (4, "VIP10OFF", "percent", 0, 0, 10, 0, 30),
)


class _Points:
    """One member's points as the rows are drawn: open lots oldest first, the balance, the ledger."""

    def __init__(self, w: Writer, ids: dict[str, int], mid: int) -> None:
        self.w, self.ids, self.mid = w, ids, mid
        self.lots: list[dict[str, Any]] = []
        self.balance = 0

    def _next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def _entry(self, kind: str, delta: int, at: datetime, order_id: int | None = None) -> int:
        self.balance += delta
        eid = self._next("entry")
        self.w.add(LedgerEntry, id=eid, member_id=self.mid, kind=kind, delta=delta, balance_after=self.balance,
                   growth=delta if kind == "earn" else 0, shortfall=0, order_id=order_id, idem_key=None,
                   reason=None, actor=None, created_at=at)
        return eid

    def earn(self, kind: str, points: int, at: datetime, order_id: int | None = None) -> None:
        eid = self._entry(kind, points, at, order_id)
        self.lots.append(dict(id=self._next("lot"), member_id=self.mid, entry_id=eid, order_id=order_id,
                              amount=points, remaining=points, earned_at=at,
                              expires_at=at + timedelta(days=LOT_DAYS)))

    def expire_until(self, at: datetime) -> None:
        while self.lots and self.lots[0]["expires_at"] <= at:
            lot = self.lots.pop(0)
            if lot["remaining"]:
                self._entry("expire", -lot["remaining"], lot["expires_at"])
                lot["remaining"] = 0
            self.w.add(PointsLot, **lot)

    def spend(self, points: int, at: datetime) -> None:
        self._entry("spend", -points, at)
        while points:
            lot = self.lots[0]
            take = min(points, lot["remaining"])
            lot["remaining"] -= take
            points -= take
            if not lot["remaining"]:
                self.w.add(PointsLot, **self.lots.pop(0))

    def close(self) -> None:
        self.expire_until(NOW)
        for lot in self.lots:
            self.w.add(PointsLot, **lot)


def _segment(created: datetime, last: datetime | None, n: int, fen: int) -> dict[str, Any]:
    """RFM scores (1-5) and a segment and lifecycle in the segment job's vocabulary (simplified rules)."""
    if last is None:
        return dict(recency=0, frequency=0, monetary=0, segment="prospect",
                    lifecycle="new" if NOW - created < timedelta(days=30) else "churned")
    days = (NOW - last).days
    r = 5 if days < 30 else 4 if days < 60 else 3 if days < 120 else 2 if days < 240 else 1
    f = 1 if n < 5 else 2 if n < 12 else 3 if n < 20 else 4 if n < 30 else 5
    m = 1 if fen < 50_000 else 2 if fen < 150_000 else 3 if fen < 300_000 else 4 if fen < 600_000 else 5
    lifecycle = ("new" if NOW - created < timedelta(days=30) else "active" if days < 90
                 else "dormant" if days < 180 else "churned")
    segment = ("new" if lifecycle == "new" else "champions" if r >= 4 and f >= 4 else "loyal" if f >= 4
               else "potential" if r >= 4 else "need_attention" if r == 3 else "at_risk" if r == 2 and f >= 3
               else "hibernating" if r == 2 else "lost")
    return dict(recency=r, frequency=f, monetary=m, segment=segment, lifecycle=lifecycle)


def _send(w: Writer, ids: dict[str, int], mid: int, journey: str, step: str, occasion: str, at: datetime) -> None:
    control = rules.in_control(mid, journey, HOLDOUT)
    ids["send"] += 1
    w.add(OutreachSend, id=ids["send"], idem_key=f"{mid}:{journey}:{step}:{occasion}", member_id=mid,
          journey=journey, step=step, occasion=occasion, kind="marketing", arm="control" if control else "treatment",
          status="control" if control else "sent", reason=None, facts={}, channel=None if control else "wechat",
          route=None if control else "cs", errcode=None, attempts=0 if control else 1, planned_at=at, due_at=at,
          claimed_by=None, claimed_at=None, done_at=at)


def _coupon(w: Writer, ids: dict[str, int], mid: int, campaign: int, at: datetime, days: int,
            used: tuple[datetime, str, int | None] | None, points: int = 0) -> None:
    ids["coupon"] += 1
    cid = ids["coupon"]
    w.add(Coupon, id=cid, code=f"B{cid:011d}", campaign_id=campaign, member_id=mid, request_key=f"bench-{cid}",
          status="redeemed" if used else "active", claimed_at=at, valid_from=at, valid_until=at + timedelta(days=days),
          points_spent=points, redeemed_at=used[0] if used else None, redeemed_ref=used[1] if used else None,
          redeemed_store_id=used[2] if used else None)


def _member(w: Writer, rnd: random.Random, ids: dict[str, int], mid: int, stores: list[tuple[int, float]],
            orders: int, days: int) -> None:
    created = NOW - timedelta(days=days * rnd.random() ** 1.3, minutes=rnd.randrange(24 * 60))
    tier = _pick(rnd, ((t[0], t[1]) for t in TIERS))
    mult = next(t[2] for t in TIERS if t[0] == tier)
    channel = "wechat" if rnd.random() < 0.78 else "webchat"
    home = _pick(rnd, stores)
    store = home if rnd.random() < (0.85 if channel == "wechat" else 0.3) else None
    # Orders in proportion to the time as a member (the mean membership is days / 2.3), so every day of
    # the year has about as many orders per member as any other.
    rate = orders * (NOW - created).total_seconds() / (days * 86400 / 2.3)
    times = sorted(created + (NOW - created) * rnd.random() for _ in range(rnd.randint(0, round(2 * rate))))
    pts = _Points(w, ids, mid)
    pts.earn("welcome", 100, created)
    uses_welcome = rnd.random() < 0.6
    welcome_used: tuple[datetime, str, int | None] | None = None
    seasonal = max(created, NOW - timedelta(days=rnd.randrange(75))) if rnd.random() < 0.33 else None
    seasonal_used: tuple[datetime, str, int | None] | None = None
    held: list[datetime] = []  # points coupons not used yet
    fen_total, last = 0, None
    for at in times:
        pts.expire_until(at)
        ids["order"] += 1
        oid, ext = ids["order"], f"B{ids['order']}"
        online = rnd.random() < 0.3
        where = None if online else home if rnd.random() < 0.8 else _pick(rnd, stores)
        fen = int(rnd.lognormvariate(9.6, 0.7))
        w.add(Order, id=oid, source="shop" if online else "pos", external_id=ext, kind="order", original_id=None,
              member_id=mid, store_id=where, channel="online" if online else "pos", placed_at=at, amount_fen=fen,
              points=int(fen // 100 * mult), payload_hash="bench", result={}, created_at=at)
        pts.earn("earn", int(fen // 100 * mult), at, oid)
        fen_total, last = fen_total + fen, at
        if welcome_used is None and uses_welcome and at < created + timedelta(days=30) and fen >= 10000:
            welcome_used = (at, ext, where)
        elif seasonal is not None and seasonal_used is None and seasonal <= at < seasonal + timedelta(days=60) \
                and fen >= 30000 and rnd.random() < 0.5:
            seasonal_used = (at, ext, where)
        elif held and fen >= 5000 and at < held[0] + timedelta(days=90) and rnd.random() < 0.5:
            _coupon(w, ids, mid, 3, held.pop(0), 90, (at, ext, where), SPEND)
        if pts.balance >= 4 * SPEND and rnd.random() < 0.3:
            pts.spend(SPEND, at + timedelta(minutes=5))
            held.append(at + timedelta(minutes=5))
        if at >= NOW - timedelta(days=30):
            _send(w, ids, mid, "after_purchase", "thanks", f"order{oid}", at + timedelta(hours=1))
    pts.close()
    _coupon(w, ids, mid, 1, created, 30, welcome_used)
    if seasonal is not None:
        _coupon(w, ids, mid, 2, seasonal, 60, seasonal_used)
    for at in held:
        _coupon(w, ids, mid, 3, at, 90, None, SPEND)
    w.add(Member, id=mid, phone=f"139{mid:08d}", referral_code=f"B{mid:09d}", store_id=store, join_channel=channel,
          tier=tier, points_balance=pts.balance, consent_version="bench", consent_at=created,
          marketing_opt_in=rnd.random() < 0.9, language="zh" if rnd.random() < 0.85 else "en", status="active",
          created_at=created)
    w.add(MemberSegment, member_id=mid, **_segment(created, last, len(times), fen_total), tags=[], as_of=NOW)
    _send(w, ids, mid, "welcome", "day0", "join", created)
    if not times or times[0] > created + timedelta(days=3):
        _send(w, ids, mid, "welcome", "day3", "join", created + timedelta(days=3))
    if mid % 10 == 0:
        _send(w, ids, mid, "broadcast:BENCH", "main", "BENCH", NOW - timedelta(days=20))


def _conversations(w: Writer, rnd: random.Random, n: int, members: int) -> None:
    scores = random.Random(n)  # its own draws: the other rows stay as they were before bot ratings
    for i in range(n):
        at = NOW - timedelta(minutes=rnd.randrange(0, 30 * 24 * 60))
        turns, handed = rnd.randrange(1, 8), rnd.random() < 0.1
        channel, mid = rnd.choice(("wechat", "webchat")), rnd.randrange(1, members + 1) if rnd.random() < 0.7 else None
        w.add(Conversation, id=i + 1, sender_key=f"{i:064d}", channel=channel, member_id=mid, started_at=at,
              last_at=at + timedelta(minutes=turns), user_turns=turns, agent_turns=2 if handed else 0,
              fallback_turns=int(rnd.random() < 0.2), handed_off=handed, with_agent=False)
        if handed:
            asked = at + timedelta(minutes=1)
            taken = asked + timedelta(seconds=rnd.randrange(10, 900)) if rnd.random() < 0.9 else None
            w.add(Handoff, sender_id=f"bench-{i}", channel=channel, member_id=mid, reason=rnd.choice(REASONS),
                  priority=0, language="zh", status="closed", agent_id=None, out_of_hours=False, created_at=asked,
                  taken_at=taken, closed_at=asked + timedelta(minutes=20), closed_by="agent",
                  rating=rnd.randint(2, 5) if taken and rnd.random() < 0.6 else None, rated_at=None)
        elif scores.random() < 0.25:
            w.add(BotRating, sender_key=f"{i:064d}", session_started_at=at, channel=channel, member_id=mid,
                  rating=scores.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 6))[0], rated_at=at + timedelta(minutes=turns))
        w.maybe_flush()
    for i in range(300):
        seen_at = NOW - timedelta(minutes=rnd.randrange(0, 60 * 24 * 60))
        w.add(ReviewMessage, text_key=f"bench{i:058d}", text=f"看不懂的消息 {i}", language="zh",
              channel=rnd.choice(("wechat", "webchat")), conversation=f"{i:016x}", reason="fallback", intent=None,
              confidence=0.2, second_intent=None, second_confidence=None, seen=rnd.randrange(1, 50),
              first_seen_at=seen_at - timedelta(days=3), last_seen_at=seen_at, status="new", reviewed_intent=None,
              reviewed_by=None, reviewed_at=None, exported_at=None)
        w.maybe_flush()


def seed(members: int, orders: int, conversations: int, *, days: int = 450, stores: int = 40,
         seed_: int = 7) -> dict[str, int]:
    """Write ``members`` members with ``orders`` orders each on average (and all the rest) into the empty
    database of :func:`loyalty.db.engine`; the row counts per table."""
    rnd = random.Random(seed_)
    with db.engine().begin() as c:
        w = Writer(c)
        where = _stores(w, stores)
        for cid, code, kind, threshold, disc, pct, cost, valid in _CAMPAIGNS:
            w.add(CouponCampaign, id=cid, code=code, name_zh=code, name_en=code, kind=kind, threshold_fen=threshold,
                  discount_fen=disc, percent_off=pct, gift_sku=None, total_stock=None, issued=0, per_member_limit=1,
                  claim_start=None, claim_end=None, valid_from=None, valid_until=None, valid_days=valid,
                  points_cost=cost, min_tier=None, target_segment=None, audience="public", active=True,
                  created_at=NOW - timedelta(days=days + 1))
        w.add(Broadcast, id=1, code="BENCH", audience={}, text_zh="秋季上新", text_en="Autumn arrivals",
              send_at=NOW - timedelta(days=20), planned_at=NOW - timedelta(days=20),
              created_at=NOW - timedelta(days=21))
        w.flush()
        ids = dict.fromkeys(("order", "entry", "lot", "coupon", "send"), 0)
        for mid in range(1, members + 1):
            _member(w, rnd, ids, mid, where, orders, days)
            w.maybe_flush()
        _conversations(w, rnd, conversations, members)
        counts = w.close()
        c.execute(text("UPDATE coupon_campaigns SET issued = (SELECT count(*) FROM coupons "
                       "WHERE coupons.campaign_id = coupon_campaigns.id)"))
    with db.engine().connect() as c:
        if c.dialect.name == "postgresql":
            c.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return counts
