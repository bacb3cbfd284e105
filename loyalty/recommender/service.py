"""Recommendations for members, from the orders and the catalogue in the database.

Training (:func:`train_and_save`) reads every member order, fits the model and
writes a versioned file. Serving (:func:`recommend`) keeps the newest file in
memory (and follows newer ones as they appear), applies the member's orders recorded since training on the fly,
filters by today's stock and answers from memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from loyalty.catalogue import service as catalogue
from loyalty.catalogue.models import Product, Store
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.members.models import Member, MemberSegment
from loyalty.orders.models import Order, OrderLine
from loyalty.recommender import store as model_store
from loyalty.recommender.data import Interactions
from loyalty.recommender.model import BOUGHT_WITH, POPULAR, REPEAT, Config, Recommender, Scored, serve_single_threaded
from loyalty.recommender.needs import categories_for

log = logging.getLogger(__name__)
DEFAULT_DIR = "var/models"
AVAILABILITY_TTL_S = 5.0
RELOAD_CHECK_S = 2.0  # how often serving looks for a newer model file
CACHE_MEMBERS = 20_000  # members whose candidate features a serving process keeps (per hour)
SPARE = 5  # extra picks asked of the model, in case some sold out since the stock was read

# A request's three queries, built once: SQLAlchemy then reuses their compiled form without
# building and hashing the statement again (that was a third of a request's time).
_MEMBER = (
    select(Member.status, Member.store_id, Store.city, MemberSegment.segment)
    .outerjoin(Store, Store.id == Member.store_id)
    .outerjoin(MemberSegment, MemberSegment.member_id == Member.id)
    .where(Member.id == bindparam("member_id"))
)
_NEW_LINES = (
    select(Order.id, Order.placed_at, OrderLine.product_id)
    .join(OrderLine, OrderLine.order_id == Order.id)
    .where(Order.member_id == bindparam("member_id"), Order.kind == "order", Order.id > bindparam("since"),
           OrderLine.product_id.is_not(None))
    .order_by(Order.id)
)
_SHOWN = select(Product.id, Product.sku, Product.name_zh, Product.name_en, Product.category, Product.price_fen,
                Product.active, Product.stock).where(Product.id.in_(bindparam("ids", expanding=True)))


def model_dir() -> str:
    """Where model files live (LOYALTY_MODEL_DIR, default var/models)."""
    from loyalty import config

    return config.settings().model_dir


@dataclass(frozen=True)
class Recommendation:
    """One product for a member, with a short reason in both languages."""

    sku: str
    name_zh: str
    name_en: str
    category: str
    price: str  # yuan, two decimals
    reason: str  # repeat | bought_with | popular
    reason_zh: str
    reason_en: str
    anchor_sku: str | None = None  # the product the reason names


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    path: str
    version: str
    members: int
    products: int
    orders: int
    lines: int
    seconds: float


# ----------------------------------------------------------------------------- training
def _returned(s: Session) -> set[tuple[int, int]]:
    """(order id, product id) pairs whose bought quantity was returned in full."""
    Ret = Order.__table__.alias("ret")
    returned = (
        select(Ret.c.original_id, OrderLine.product_id, func.sum(OrderLine.qty).label("q"))
        .join(OrderLine, OrderLine.order_id == Ret.c.id)
        .where(Ret.c.kind == "return", Ret.c.original_id.is_not(None), OrderLine.product_id.is_not(None))
        .group_by(Ret.c.original_id, OrderLine.product_id)
        .subquery()
    )
    bought = (
        select(OrderLine.order_id, OrderLine.product_id, func.sum(OrderLine.qty).label("q"))
        .where(OrderLine.product_id.is_not(None))
        .group_by(OrderLine.order_id, OrderLine.product_id)
        .subquery()
    )
    rows = s.execute(
        select(returned.c.original_id, returned.c.product_id)
        .join(bought, (bought.c.order_id == returned.c.original_id)
              & (bought.c.product_id == returned.c.product_id))
        .where(returned.c.q >= bought.c.q)
    ).all()
    return {(int(o), int(p)) for o, p in rows}


def _catalogue(s: Session) -> tuple[list[int], list[str], np.ndarray]:
    products = s.execute(
        select(Product.id, Product.category, Product.active, Product.stock).order_by(Product.id)
    ).all()
    ids = [int(p.id) for p in products]
    cats = [str(p.category) for p in products]
    available = np.array([bool(p.active) and p.stock > 0 for p in products], dtype=bool)
    return ids, cats, available


def train_and_save(s: Session, directory: str | None = None, *, progress: bool = True,
                   config: Config | None = None) -> TrainResult:
    """Fit the recommender on every member order and save it as a new versioned file.

    Fully returned lines are left out. The serving side of this process
    switches to the new model at once; other processes pick it up within
    RELOAD_CHECK_S seconds (see :class:`_Serving`).
    """
    t0 = time.perf_counter()
    directory = directory or model_dir()
    product_ids, product_cats, available = _catalogue(s)
    item_of = {pid: n for n, pid in enumerate(product_ids)}
    categories = sorted(set(product_cats))
    cat_index = {c: n for n, c in enumerate(categories)}
    stores = s.execute(select(Store.id, Store.city).order_by(Store.id)).all()
    store_of = {int(r.id): n for n, r in enumerate(stores)}
    cities = sorted({str(r.city) for r in stores})
    city_of_store = {int(r.id): cities.index(str(r.city)) for r in stores}
    segment_rows = s.execute(select(MemberSegment.member_id, MemberSegment.segment)).all()
    segments = sorted({str(r.segment) for r in segment_rows})
    segment_of_member = {int(r.member_id): segments.index(str(r.segment)) for r in segment_rows}
    # Read the high-water mark first: orders after it are applied on the fly when serving.
    last_order_id = s.execute(select(func.max(Order.id))).scalar() or 0
    returned = _returned(s)
    rows = s.execute(
        select(Order.id, Order.member_id, Order.store_id, Order.placed_at, OrderLine.product_id,
               OrderLine.qty)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.kind == "order", Order.member_id.is_not(None), OrderLine.product_id.is_not(None),
               Order.id <= last_order_id)
        .order_by(Order.id)
    ).all()
    rows = [r for r in rows if (int(r.id), int(r.product_id)) not in returned]
    if not rows:
        raise Refused("There are no member orders to learn from yet.", code="nothing_to_train")
    member_ids = sorted({int(r.member_id) for r in rows})
    user_of = {m: n for n, m in enumerate(member_ids)}
    n = len(rows)
    data = Interactions(
        user=np.fromiter((user_of[int(r.member_id)] for r in rows), np.int64, n),
        item=np.fromiter((item_of[int(r.product_id)] for r in rows), np.int64, n),
        time=np.fromiter((r.placed_at.timestamp() for r in rows), np.float64, n),
        basket=np.fromiter((int(r.id) for r in rows), np.int64, n),
        qty=np.fromiter((float(r.qty) for r in rows), np.float64, n),
        groups={
            "store": np.fromiter((store_of.get(r.store_id, -1) for r in rows), np.int64, n),
            "city": np.fromiter((city_of_store.get(r.store_id, -1) for r in rows), np.int64, n),
            "segment": np.fromiter((segment_of_member.get(int(r.member_id), -1) for r in rows), np.int64, n),
        },
    )
    model = Recommender(config).fit(
        data, n_users=len(member_ids), n_items=len(product_ids),
        category=np.array([cat_index[c] for c in product_cats], dtype=np.int64),
        available=available, progress=_progress_bar() if progress else None,
    )
    model.extra = {
        "product_ids": product_ids, "member_ids": member_ids, "categories": categories,
        "store_ids": [int(r.id) for r in stores], "cities": cities, "segments": segments,
        "last_order_id": int(last_order_id),
    }
    path = str(model_store.save(model, directory))
    _serving.use(directory, model)
    result = TrainResult(path, model.version, len(member_ids), len(product_ids),
                         len({int(r.id) for r in rows}), n, time.perf_counter() - t0)
    log.info("recommender trained: version=%s members=%d products=%d lines=%d seconds=%.1f",
             result.version, result.members, result.products, result.lines, result.seconds)
    return result


def _progress_bar() -> Callable[[str, int, int], None]:
    """A tqdm bar per training stage, on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="step", leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


# ----------------------------------------------------------------------------- serving
class _Loaded:
    """A model in memory with the maps from database ids to its indices."""

    def __init__(self, model: Recommender) -> None:
        x = model.extra
        self.model = model
        model.cache_size = CACHE_MEMBERS
        serve_single_threaded()
        model.prepare()
        self.product_ids = np.asarray(x["product_ids"], dtype=np.int64)
        self.item_of = {int(p): n for n, p in enumerate(x["product_ids"])}
        self.user_of = {int(m): n for n, m in enumerate(x["member_ids"])}
        self.categories: list[str] = list(x["categories"])
        self.store_of = {int(sid): n for n, sid in enumerate(x["store_ids"])}
        self.cities: list[str] = list(x["cities"])
        self.segments: list[str] = list(x["segments"])
        self.last_order_id = int(x["last_order_id"])
        self.applied: dict[int, int] = {}  # member id -> newest order id already applied
        self.lock = threading.Lock()
        self._mask: np.ndarray | None = None
        self._known: frozenset[str] = frozenset()
        self._mask_at = 0.0

    def known_categories(self, s: Session) -> frozenset[str]:
        """Category names in the catalogue (read with the availability, same refresh)."""
        self.availability(s)
        return self._known

    def availability(self, s: Session) -> np.ndarray:
        """Which model items are listed and in stock, re-read at most every few seconds.

        The products finally shown are checked again row by row, so a stale
        mask can cost a slot but never shows an out-of-stock product.
        """
        if self._mask is None or time.monotonic() - self._mask_at > AVAILABILITY_TTL_S:
            ids, cats, available = _catalogue(s)
            mask = np.zeros(self.model.n_items, dtype=bool)
            for pid, ok in zip(ids, available, strict=False):
                n = self.item_of.get(pid)
                if n is not None:
                    mask[n] = ok
            self._mask, self._known, self._mask_at = mask, frozenset(cats), time.monotonic()
        return self._mask

    def user(self, member_id: int) -> int:
        """The model's user index; members who joined after training get one past the trained ones."""
        known = self.user_of.get(member_id)
        return known if known is not None else self.model.n_users + member_id


class _Serving:
    """Keeps the newest model file of a directory in memory and follows new versions.

    At most once every RELOAD_CHECK_S a request looks at the directory's
    modification time (one stat call); when a newer complete model appeared,
    the request that noticed loads it and swaps it in, while others keep
    answering from the old one. So every running process picks up a retrained
    model within seconds, without a restart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._loaded: _Loaded | None = None
        self._name: str | None = None  # file name of the model in memory
        self._stamp: int | None = None  # the directory's mtime when last looked at
        self._checked = float("-inf")

    def get(self, directory: str) -> _Loaded | None:
        now = time.monotonic()
        with self._lock:
            same = self._dir == directory
            if same and now - self._checked < RELOAD_CHECK_S:
                return self._loaded
            self._checked = now
            current, name, stamp = (self._loaded, self._name, self._stamp) if same else (None, None, None)
        try:
            mtime: int | None = os.stat(directory).st_mtime_ns
        except OSError:
            mtime = None
        if same and mtime == stamp:
            return current
        path = model_store.newest(directory)
        if path is not None and path.name == name:
            with self._lock:
                self._stamp = mtime
            return current
        loaded = current
        if path is not None:
            try:
                loaded = _Loaded(model_store.load(path))
                log.info("recommender loaded: %s", path.name)
            except model_store.ModelFileError as exc:
                # Keep what is in memory (or serve best-sellers) rather than fail every request.
                log.error("recommender model unusable, keeping the previous one: %s", exc)
                path = None if current is None else Path(name or "")
        with self._lock:
            self._dir, self._loaded, self._stamp = directory, loaded, mtime
            self._name = path.name if path is not None else None
            return self._loaded

    def use(self, directory: str, model: Recommender) -> None:
        with self._lock:
            self._dir, self._loaded = directory, _Loaded(model)
            self._name = f"{model_store.PREFIX}{model.version}.npz"
            self._stamp, self._checked = None, float("-inf")

    def forget(self) -> None:
        with self._lock:
            self._dir, self._loaded, self._name, self._stamp = None, None, None, None
            self._checked = float("-inf")


_serving = _Serving()


def serving_version(directory: str | None = None) -> str | None:
    """The version of the model this process answers from (None: best-sellers only)."""
    loaded = _serving.get(directory or model_dir())
    return loaded.model.version if loaded is not None else None


def reload() -> None:
    """Drop the model in memory; the next request loads the newest file."""
    _serving.forget()


def _apply_new_orders(s: Session, loaded: _Loaded, member_id: int) -> None:
    """Feed the member's orders recorded since training into the model (each order once)."""
    since = max(loaded.last_order_id, loaded.applied.get(member_id, 0))
    rows = s.execute(_NEW_LINES, {"member_id": member_id, "since": since}).all()
    if not rows:
        return
    by_order: dict[int, tuple[float, list[int]]] = {}
    for r in rows:
        entry = by_order.setdefault(int(r.id), (r.placed_at.timestamp(), []))
        item = loaded.item_of.get(int(r.product_id))
        if item is not None:
            entry[1].append(item)
    with loaded.lock:
        for order_id, (at, items) in by_order.items():
            loaded.model.add_order(loaded.user(member_id), items, at, basket=order_id)
        loaded.applied[member_id] = max(by_order)


def _context(loaded: _Loaded, store_id: int | None, city: str | None,
             segment: str | None) -> dict[str, int]:
    """Which store, city and segment best-sellers fit this member (model indices)."""
    ctx: dict[str, int] = {}
    if store_id is not None and store_id in loaded.store_of:
        ctx["store"] = loaded.store_of[store_id]
    if city in loaded.cities:
        ctx["city"] = loaded.cities.index(city)  # type: ignore[arg-type]
    if segment in loaded.segments:
        ctx["segment"] = loaded.segments.index(segment)  # type: ignore[arg-type]
    return ctx


class _Named(Protocol):
    name_zh: str
    name_en: str


def _reason_text(kind: str, level: str, anchor: _Named | None) -> tuple[str, str]:
    if kind == REPEAT and anchor is not None:
        return f"因为你常买「{anchor.name_zh}」", f"Because you often buy {anchor.name_en}"
    if kind == BOUGHT_WITH and anchor is not None:
        return (f"和你买过的「{anchor.name_zh}」一起买的人也买了它",
                f"People who bought {anchor.name_en}, like you, also bought this")
    return {
        "store": ("本店热销", "Best-seller in your store"),
        "city": ("同城热销", "Popular in your city"),
        "segment": ("和你相似的会员都在买", "Popular with members like you"),
    }.get(level, ("热销推荐", "Popular right now"))


def _price(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _to_results(s: Session, loaded: _Loaded, picks: list[Scored]) -> list[Recommendation]:
    ids = {int(loaded.product_ids[p.item]) for p in picks}
    ids |= {int(loaded.product_ids[p.anchor]) for p in picks if p.anchor >= 0}
    products = {p.id: p for p in s.execute(_SHOWN, {"ids": sorted(ids)})}
    out = []
    for p in picks:
        product = products.get(int(loaded.product_ids[p.item]))
        if product is None or not product.active or product.stock <= 0:  # gone or sold out just now
            continue
        anchor = products.get(int(loaded.product_ids[p.anchor])) if p.anchor >= 0 else None
        zh, en = _reason_text(p.reason, p.level, anchor)
        out.append(Recommendation(
            sku=product.sku, name_zh=product.name_zh, name_en=product.name_en,
            category=product.category, price=_price(product.price_fen),
            reason=p.reason if anchor is not None or p.reason == POPULAR else POPULAR,
            reason_zh=zh, reason_en=en, anchor_sku=anchor.sku if anchor is not None else None,
        ))
    return out


def best_sellers(s: Session, k: int = 5, category: str | None = None) -> list[catalogue.ProductView]:
    """The products sold most (by quantity), in stock and on sale, optionally of one category."""
    q = (
        select(Product, func.coalesce(func.sum(OrderLine.qty), 0).label("sold"))
        .outerjoin(OrderLine, OrderLine.product_id == Product.id)
        .where(Product.active.is_(True), Product.stock > 0)
        .group_by(Product.id)
        .order_by(func.coalesce(func.sum(OrderLine.qty), 0).desc(), Product.id)
        .limit(k)
    )
    if category:
        q = q.where(Product.category == category)
    return [catalogue.product_view(p) for p, _ in s.execute(q).all()]


def _best_sellers(s: Session, k: int, cats: tuple[str, ...]) -> list[Recommendation]:
    """Without a trained model: what sells most, in stock (the catalogue's own ranking)."""
    views = []
    for cat in cats or (None,):
        views.extend(best_sellers(s, k, cat))
    zh, en = _reason_text(POPULAR, "", None)
    skus: dict[str, catalogue.ProductView] = {}
    for v in views:
        skus.setdefault(v.sku, v)
    return [Recommendation(v.sku, v.name_zh, v.name_en, v.category, v.price, POPULAR, zh, en)
            for v in list(skus.values())[:k]]


def for_guest(s: Session, k: int = 5, need: str | None = None) -> list[Recommendation]:
    """Up to ``k`` in-stock best sellers for a shopper who is not a member (yet),
    in the categories ``need`` names ("护肤品", "snacks"); all of them if it names none."""
    if not 1 <= k <= 50:
        raise InvalidInput("k must be between 1 and 50", code="invalid_k", k=k)
    cats = categories_for(need, set(catalogue.categories(s))) if need else ()
    return _best_sellers(s, k, cats)


def recommend(s: Session, member_id: int, k: int = 5, category: str | None = None,
              need: str | None = None, *, directory: str | None = None,
              now: datetime | None = None) -> list[Recommendation]:
    """Up to ``k`` in-stock products for a member, each with a zh/en reason.

    ``category`` is a category code or name ("skincare", "护肤品"); an unknown
    one is refused. ``need`` is free chat text ("送妈妈的礼物"); if nothing in
    it is recognised, the whole catalogue is used.
    """
    if not 1 <= k <= 50:
        raise InvalidInput("k must be between 1 and 50", code="invalid_k", k=k)
    member = s.execute(_MEMBER, {"member_id": member_id}).first()
    if member is None or member.status != "active":
        raise NotFound("No such member.", code="member_not_found")
    loaded = _serving.get(directory or model_dir())
    known = (loaded.known_categories(s) if loaded is not None
             else {str(c) for c in s.execute(select(Product.category).distinct()).scalars()})
    cats: tuple[str, ...] = ()
    if category:
        cats = categories_for(category, known)
        if not cats:
            raise InvalidInput("Unknown category.", code="unknown_category", category=category)
    elif need:
        cats = categories_for(need, known)
    if loaded is None:
        return _best_sellers(s, k, cats)
    _apply_new_orders(s, loaded, member_id)
    cat_ids = [loaded.categories.index(c) for c in cats if c in loaded.categories]
    if cats and not cat_ids:
        return _best_sellers(s, k, cats)  # categories newer than the model
    picks = loaded.model.recommend(
        loaded.user(member_id), k + SPARE, now=(now.timestamp() if now else None),
        categories=cat_ids or None, allowed=loaded.availability(s),
        context=_context(loaded, member.store_id, member.city, member.segment),
    )
    return _to_results(s, loaded, picks)[:k]
