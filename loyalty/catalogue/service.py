"""Stores and products."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from loyalty.catalogue.models import Product, Store
from loyalty.common import fen_to_yuan, txn_cache
from loyalty.errors import NotFound


@dataclass(frozen=True)
class StoreView:
    code: str
    name_zh: str
    name_en: str
    city: str


@dataclass(frozen=True)
class ProductView:
    sku: str
    name_zh: str
    name_en: str
    category: str
    price: str  # yuan
    in_stock: bool


def store(s: Session, code: str) -> StoreView:
    """A store by its code (case-insensitive)."""
    st = s.execute(select(Store).where(Store.code == (code or "").strip().upper())).scalar_one_or_none()
    if st is None or not st.active:
        raise NotFound("Unknown store.", code="unknown_store")
    return StoreView(st.code, st.name_zh, st.name_en, st.city)


def stores(s: Session) -> list[StoreView]:
    rows = s.execute(select(Store).where(Store.active.is_(True)).order_by(Store.code)).scalars()
    return [StoreView(st.code, st.name_zh, st.name_en, st.city) for st in rows]


def product_view(p: Product) -> ProductView:
    return ProductView(p.sku, p.name_zh, p.name_en, p.category, fen_to_yuan(p.price_fen), p.active and p.stock > 0)


def categories(s: Session) -> list[str]:
    return list(s.execute(select(Product.category).distinct().order_by(Product.category)).scalars())


_STORE_ID = select(Store.id).where(Store.code == bindparam("code"))


def store_id_by_code(s: Session, code: str) -> int | None:
    """The id of the store with ``code`` (case-insensitive); found ids are kept for the transaction."""
    key = code.strip().upper()
    cache = txn_cache(s, "loyalty.store_ids")
    sid = cache.get(key)
    if sid is None:
        sid = s.execute(_STORE_ID, {"code": key}).scalar()
        if sid is not None:
            cache[key] = sid
    return sid
