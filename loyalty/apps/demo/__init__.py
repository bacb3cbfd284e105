"""Deterministic demo data: stores, a bilingual catalogue and members with a year of real-looking orders.

Everything is drawn from ``random.Random`` instances seeded from the demo
seed, so the same seed and end date give the same database (see
:func:`digest`). Only referral and coupon codes differ between runs: the
services draw them from ``secrets`` on purpose, and the digest leaves them out.

Shopping behaviour, in brief: each member has category affinities (a
Dirichlet draw biased by a persona), a home store, a few favourite products,
consumables re-bought at a personal cadence (milk weekly, diapers monthly),
festival and summer seasonality, an online share, and a lifecycle (active,
dormant, churned, one-off, never bought). Members, orders, returns, coupons,
birthdays, opt-outs, tier reviews and point expiry all go through the real
services with ``now=`` set to the simulated time, so the ledger, lots, tiers
and referrals are exactly what the live system would have produced.
"""

from __future__ import annotations

from loyalty.apps.demo.campaigns import FLASH_CODE, campaigns
from loyalty.apps.demo.loader import SeedReport, digest, is_empty, load, seed_demo
from loyalty.apps.demo.plan import Event, OrderPlan, Person, Plan, make_plan
from loyalty.apps.demo.reference import (
    CATEGORIES,
    CITIES,
    SPRING_FESTIVAL,
    STORES,
    ProductSpec,
    StoreSpec,
    catalogue,
    gift_skus,
)

__all__ = [
    "CATEGORIES",
    "CITIES",
    "Event",
    "FLASH_CODE",
    "OrderPlan",
    "Person",
    "Plan",
    "ProductSpec",
    "SPRING_FESTIVAL",
    "STORES",
    "SeedReport",
    "StoreSpec",
    "campaigns",
    "catalogue",
    "digest",
    "gift_skus",
    "is_empty",
    "load",
    "make_plan",
    "seed_demo",
]
