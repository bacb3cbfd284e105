"""People and their year of shopping, planned in pure Python (no database)."""

from __future__ import annotations

import bisect
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from loyalty.apps.demo.reference import CATEGORIES, STORES, ProductSpec, catalogue
from loyalty.apps.demo.seasons import big_sale, category_season, season_weight, trip_boost
from loyalty.common import local_midnight
from loyalty.config import SHANGHAI
from loyalty.coupons import gifts
from loyalty.tiers import service as tiers

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红梅鑫浩宇晨欣怡涵思雨佳琪轩诺嘉悦雅婷俊博"
_EN_NAMES = ("Lily", "Kevin", "Grace", "Jason", "Cindy", "Eric", "Vivian", "Leo", "Amy", "Tony", "Sophie", "Jack")
_PHONE_PREFIXES = tuple(range(130, 140)) + (150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 176, 177) + tuple(
    range(180, 190)
) + (198, 199)
_OPENID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

# Personas bias the Dirichlet draw of category affinities (alpha added per category).
_PERSONAS: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("young_family", 0.18, {"baby": 5, "dairy": 3.5, "home": 1.5, "snacks": 1, "personal_care": 1}),
    ("beauty", 0.18, {"skincare": 5, "makeup": 4, "personal_care": 1.5, "gifts": 0.5}),
    ("snacker", 0.15, {"snacks": 5, "drinks": 3.5, "dairy": 1}),
    ("household", 0.18, {"home": 4, "personal_care": 3.5, "dairy": 2, "drinks": 1}),
    ("fashion", 0.09, {"apparel": 5, "makeup": 1.5, "skincare": 1.5}),
    ("gifter", 0.07, {"gifts": 3, "snacks": 2, "drinks": 1.5, "skincare": 1}),
    ("generalist", 0.15, {}),
)
# Hours of the day (local) at the till and online, with relative weights.
_POS_HOURS = ((9, 3), (10, 5), (11, 7), (12, 9), (13, 7), (14, 5), (15, 5), (16, 6), (17, 8), (18, 10),
              (19, 10), (20, 8), (21, 4))
_WEB_HOURS = ((7, 2), (8, 3), (9, 3), (10, 4), (11, 4), (12, 6), (13, 5), (14, 4), (15, 4), (16, 4), (17, 4),
              (18, 5), (19, 6), (20, 8), (21, 10), (22, 9), (23, 5))


@dataclass
class Person:
    """A member-to-be and the shape of their year."""

    idx: int
    phone: str
    name: str | None
    birthday: date | None
    channel: str  # wechat | webchat
    external_id: str
    store: str | None  # the store whose QR code they scanned to join
    home: str
    joined: datetime
    persona: str
    lifecycle: str  # active | dormant | churned | one_off | never
    stop: datetime  # no purchases after this
    ambassador: bool = False
    referrer: int | None = None
    opt_out: datetime | None = None
    close: datetime | None = None


@dataclass
class OrderPlan:
    """One planned purchase; the external id is given once every order is in time order."""

    who: int
    at: datetime
    online: bool
    store: str | None
    items: list[tuple[str, int]]
    external_id: str = ""

    @property
    def source(self) -> str:
        return "shop" if self.online else "pos"


@dataclass(frozen=True)
class Event:
    at: datetime
    rank: int  # at the same instant: jobs (0) before members' acts (1)
    kind: str  # signup | order | return | birthday | opt_out | close | expire | review
    who: int  # a Person index, -1 for jobs
    data: Any = None


@dataclass
class Plan:
    """Everything the loader will write, in time order."""

    seed: int
    start: datetime
    end: datetime
    products: list[ProductSpec]
    people: list[Person]
    events: list[Event] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(1 for e in self.events if e.kind == "order")


def _local(d: date, hour: int, minute: int) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=SHANGHAI).astimezone(timezone.utc)


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, float], ...] | list[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for item, w in pairs:
        x -= w
        if x < 0:
            return item
    return pairs[-1][0]


class _Shelf:
    """Cached, seasonal choice of a category and of a product within it, per day of the plan."""

    def __init__(self, products: list[ProductSpec], start_day: date) -> None:
        self.products = products
        self.start_day = start_day
        self.by_cat: dict[str, list[ProductSpec]] = defaultdict(list)
        for p in products:
            self.by_cat[p.category].append(p)
        self._cum: dict[tuple[str, int], list[float]] = {}
        self._season: dict[tuple[str, int], float] = {}
        self._cat_season: dict[tuple[str, int], float] = {}
        self._boost: dict[int, tuple[float, float]] = {}

    def day(self, i: int) -> date:
        return self.start_day + timedelta(days=i)

    def boost(self, i: int) -> tuple[float, float]:
        """Trip-rate multipliers on day ``i``: in store, online."""
        b = self._boost.get(i)
        if b is None:
            d = self.day(i)
            b = self._boost[i] = (trip_boost(d, False), trip_boost(d, True))
        return b

    def season(self, tag: str, i: int) -> float:
        key = (tag, i)
        if key not in self._season:
            self._season[key] = season_weight(tag, self.day(i))
        return self._season[key]

    def cat_season(self, cat: str, i: int) -> float:
        key = (cat, i)
        if key not in self._cat_season:
            self._cat_season[key] = category_season(cat, self.day(i))
        return self._cat_season[key]

    def pick(self, rng: random.Random, cat: str, i: int) -> ProductSpec:
        key = (cat, i)
        cum = self._cum.get(key)
        items = self.by_cat[cat]
        if cum is None:
            cum, acc = [], 0.0
            for p in items:
                # Delisted items sold less before they went; still in the history.
                acc += p.popularity * self.season(p.season, i) * (1.0 if p.active else 0.4)
                cum.append(acc)
            self._cum[key] = cum
        return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _phone(rng: random.Random, taken: set[str]) -> str:
    while True:
        number = f"{rng.choice(_PHONE_PREFIXES)}{rng.randrange(10**8):08d}"
        if number not in taken:
            taken.add(number)
            return number


def _name(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.15:
        return None
    surname = rng.choice(_SURNAMES)
    if r < 0.22:
        return f"{rng.choice(_EN_NAMES)} {surname}"
    return surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _person(idx: int, seed: int, start: datetime, days: int, end: datetime, phones: set[str]) -> Person:
    rng = random.Random(f"demo:{seed}:person:{idx}")
    start_day = start.astimezone(SHANGHAI).date()
    # A third joined at the launch of the programme, the rest over the period, more of them lately.
    day = rng.randrange(min(30, days)) if rng.random() < 0.3 else int(days * rng.random() ** 0.8)
    day = min(day, days - 1)
    joined = _local(start_day + timedelta(days=day), rng.randint(10, 20), rng.randrange(60))
    home = _weighted(rng, [(s.code, s.weight) for s in STORES])
    channel = "wechat" if rng.random() < 0.78 else "webchat"
    scanned = rng.random() < (0.85 if channel == "wechat" else 0.3)
    ext = ("o" + "".join(rng.choice(_OPENID_ALPHABET) for _ in range(27)) if channel == "wechat"
           else f"web-{rng.getrandbits(64):016x}")
    birthday = None
    if rng.random() < 0.85:
        year = joined.year - rng.randint(18, 62)
        birthday = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    persona = _weighted(rng, [(name, w) for name, w, _ in _PERSONAS])
    r = rng.random()
    # Lifecycle decides when buying stops; the segment job reads it back from the orders.
    days_left = (end - joined).days
    if r < 0.04:
        lifecycle, stop = "never", joined
    elif r < 0.14:
        lifecycle, stop = "one_off", joined + timedelta(days=rng.uniform(0, 20))
    elif r < 0.28 and days_left > 200:
        lifecycle, stop = "churned", joined + timedelta(days=rng.uniform(15, days_left - 181))
    elif r < 0.42 and days_left > 70:
        lifecycle, stop = "dormant", end - timedelta(days=rng.uniform(60, min(175, days_left - 1)))
    else:
        lifecycle, stop = "active", end
    p = Person(idx, _phone(rng, phones), _name(rng), birthday, channel, ext, home if scanned else None, home,
               joined, persona, lifecycle, min(stop, end), ambassador=rng.random() < 0.03)
    if rng.random() < 0.06:
        p.opt_out = joined + (end - joined) * rng.random()
    if rng.random() < 0.004 and days_left > 40:
        p.close = joined + timedelta(days=rng.uniform(30, days_left - 1))
        p.stop = min(p.stop, p.close)
    return p


def _affinity(rng: random.Random, persona: str) -> dict[str, float]:
    boost = next(b for name, _, b in _PERSONAS if name == persona)
    # Sparse (alpha < 1) around a persona's categories; generalists spread their baskets.
    base = 0.35 if boost else 1.2
    raw = {c: rng.gammavariate(base + boost.get(c, 0.0), 1.0) for c in CATEGORIES}
    total = sum(raw.values()) or 1.0
    return {c: v / total for c, v in raw.items()}


def _routines(
    rng: random.Random, products: list[ProductSpec], aff: dict[str, float]
) -> list[tuple[ProductSpec, int, float]]:
    """Consumables the member re-buys: (product, units per buy, personal cadence in days)."""
    out: list[tuple[ProductSpec, int, float]] = []
    staples = [(q, aff[q.category] * q.popularity) for q in products if q.cadence and q.active]
    for _ in range(min(4, int(rng.expovariate(1 / 1.6)))):
        q = _weighted(rng, staples)
        if all(q.sku != r[0].sku for r in out):
            # Some stock up on weekly items: twice the quantity, half as often.
            stock_up = 2 if q.cadence < 10 and rng.random() < 0.5 else 1
            out.append((q, stock_up, q.cadence * stock_up * rng.lognormvariate(0, 0.25)))
    return out


def _till(rng: random.Random, home: str) -> str:
    """Mostly the home store, sometimes another in the same city, rarely one elsewhere."""
    city = next(s.city for s in STORES if s.code == home)
    same_city = [s.code for s in STORES if s.city == city and s.code != home]
    others = [s.code for s in STORES if s.code != home]
    r = rng.random()
    if r < 0.9 or not others:
        return home
    return rng.choice(same_city) if same_city and r < 0.97 else rng.choice(others)


def _shopping(p: Person, seed: int, shelf: _Shelf) -> list[OrderPlan]:
    """The member's orders: routine re-buys at their own cadence merged into seasonal trips."""
    if p.lifecycle == "never":
        return []
    rng = random.Random(f"demo:{seed}:shopping:{p.idx}")
    start_day = shelf.start_day
    first = (p.joined.astimezone(SHANGHAI).date() - start_day).days
    # stop is an instant, often the plan's end (a local midnight): the day before is the last day.
    last = ((p.stop - timedelta(microseconds=1)).astimezone(SHANGHAI).date() - start_day).days
    aff = _affinity(rng, p.persona)
    cats = list(aff)
    rate = rng.lognormvariate(math.log(0.3), 0.6) / 7  # discretionary trips per day
    online_share = rng.betavariate(1.2, 3.5)
    products = shelf.products
    by_pop = [(q, aff[q.category] * q.popularity) for q in products]
    favourites = [_weighted(rng, by_pop) for _ in range(rng.randint(3, 8))]
    routines = _routines(rng, products, aff) if p.lifecycle != "one_off" else []

    # Trip days: a Poisson process thinned by the calendar, plus the join-day purchase.
    trips: dict[int, list[tuple[str, int]]] = {}
    online: dict[int, bool] = {}
    if rng.random() < 0.7:
        trips[first] = []
        online[first] = False
    if p.lifecycle == "one_off":
        if rng.random() < 0.5 or not trips:
            d = min(last, first + rng.randrange(0, 20))
            trips.setdefault(d, [])
            online.setdefault(d, rng.random() < online_share)
    else:
        for d in range(first, last + 1):
            in_store, web = shelf.boost(d)
            if rng.random() < rate * ((1 - online_share) * in_store + online_share * web):
                trips.setdefault(d, [])
                share = online_share * (1.8 if big_sale(shelf.day(d)) else 1.0)
                online.setdefault(d, rng.random() < min(0.9, share))
    # Routine re-buys join a trip within three days, or make a trip of their own.
    days_sorted = sorted(trips)
    for q, mult, cadence in routines:
        t = first + rng.uniform(0, cadence)
        while t <= last:
            if rng.random() < 0.9:  # now and then a re-buy is skipped (bought elsewhere, still stocked)
                d = int(t)
                k = bisect.bisect_left(days_sorted, d - 3)
                if k < len(days_sorted) and days_sorted[k] <= d + 3:
                    d = days_sorted[k]
                else:
                    bisect.insort(days_sorted, d)
                    trips[d] = []
                    online[d] = rng.random() < online_share * 0.5
                trips[d].append((q.sku, mult * rng.randint(1, q.max_qty)))
            t += cadence * max(0.5, rng.gauss(1.0, 0.12))
    # Discretionary picks: favourites, or a category by affinity and season, then a product.
    plans = []
    for d in sorted(trips):
        basket = trips[d]
        n = 1
        while n < 8 and rng.random() < 0.5:
            n += 1
        if basket and rng.random() < 0.5:
            n -= 1  # a routine trip often carries fewer extras
        for _ in range(n):
            if rng.random() < 0.35:
                q = _weighted(rng, [(f, shelf.season(f.season, d)) for f in favourites])
            else:
                cat = _weighted(rng, [(c, aff[c] * shelf.cat_season(c, d)) for c in cats])
                q = shelf.pick(rng, cat, d)
            basket.append((q.sku, rng.randint(1, q.max_qty) if rng.random() < 0.3 else 1))
        merged: dict[str, int] = {}
        for sku, qty in basket:
            merged[sku] = merged.get(sku, 0) + qty
        is_online = online.get(d, False)
        hour, minute = _weighted(rng, _WEB_HOURS if is_online else _POS_HOURS), rng.randrange(60)
        at = _local(shelf.day(d), hour, minute)
        if at <= p.joined:  # bought right after joining at the till
            at = p.joined + timedelta(minutes=rng.randint(2, 25))
        if at >= p.stop:  # the join-day purchase of a member who stopped at once, or closed
            continue
        store = None if is_online else _till(rng, p.home)
        plans.append(OrderPlan(p.idx, at, is_online, store, sorted(merged.items())))
    return plans


def _referrals(people: list[Person], seed: int) -> None:
    """Some members joined through a friend's code: earlier members, ambassadors and neighbours first."""
    rng = random.Random(f"demo:{seed}:referrals")
    by_join = sorted(people, key=lambda q: (q.joined, q.idx))
    for k, p in enumerate(by_join):
        if k < max(5, len(people) // 20) or rng.random() >= 0.12:
            continue
        for _ in range(50):  # rejection sampling by weight, cheap for thousands of members
            cand = by_join[rng.randrange(k)]
            w = (8 if cand.ambassador else 1) * (3 if cand.home == p.home else 1)
            if cand.close is None and rng.random() * 24 < w:
                p.referrer = cand.idx
                p.channel = "wechat" if rng.random() < 0.9 else p.channel
                break


def _leap_birthdays(people: list[Person], seed: int) -> None:
    """A few members were born on 29 February, so the birthday job's edge case is in the data."""
    rng = random.Random(f"demo:{seed}:leap")
    with_birthday = [p for p in people if p.birthday is not None]
    for p in rng.sample(with_birthday, min(len(with_birthday), max(2, len(people) // 400))):
        p.birthday = date(rng.choice(range(1968, 2005, 4)), 2, 29)


def make_plan(n_members: int = 2000, seed: int = 42, until: date | None = None, days: int = 450) -> Plan:
    """Draw stores, catalogue, members and every event up to the local midnight starting ``until``.

    ``until`` defaults to today (Asia/Shanghai); the history covers ``days``
    days before it, long enough by default (about 15 months) for the oldest
    points to have expired and a tier review to have happened.
    """
    if n_members < 1:
        raise ValueError("n_members must be at least 1")
    if days < 30:
        raise ValueError("days must be at least 30")
    until = until or datetime.now(SHANGHAI).date()
    end = local_midnight(until).astimezone(timezone.utc)
    start = end - timedelta(days=days)
    products = catalogue(seed)
    shelf = _Shelf(products, start.astimezone(SHANGHAI).date())
    phones: set[str] = set()
    people = [_person(i, seed, start, days, end, phones) for i in range(n_members)]
    _referrals(people, seed)
    _leap_birthdays(people, seed)
    plan = Plan(seed, start, end, products, people)
    ev = plan.events
    returns_rng = random.Random(f"demo:{seed}:returns")
    all_orders: list[OrderPlan] = []
    for p in people:
        ev.append(Event(p.joined, 1, "signup", p.idx, p))
        all_orders.extend(_shopping(p, seed, shelf))
        if p.birthday is not None:
            for year in range(start.year, end.year + 1):
                at = _local(gifts.birthday_in_year(p.birthday, year), 9, 0)
                if p.joined < at < end and (p.close is None or at < p.close):
                    ev.append(Event(at, 1, "birthday", p.idx, year))
        if p.opt_out is not None:
            ev.append(Event(p.opt_out, 1, "opt_out", p.idx))
        if p.close is not None:
            ev.append(Event(p.close, 1, "close", p.idx))
    # Receipt numbers count per store (or the web shop) and local day, in time order.
    all_orders.sort(key=lambda o: (o.at, o.who))
    counters: dict[tuple[str, date], int] = defaultdict(int)
    prices = {q.sku: q.price_fen for q in products}
    for o in all_orders:
        d = o.at.astimezone(SHANGHAI).date()
        key = (o.store or "WEB", d)
        counters[key] += 1
        o.external_id = f"{key[0]}-{d:%Y%m%d}-{counters[key]:04d}"
        ev.append(Event(o.at, 1, "order", o.who, o))
        if not o.online and returns_rng.random() < 0.012:
            sku, qty = returns_rng.choice(o.items)
            back = o.at + timedelta(days=returns_rng.uniform(1, 10))
            person = people[o.who]
            if back < end and (person.close is None or back < person.close):
                ev.append(Event(back, 1, "return", o.who, (o, sku, qty, prices[sku])))
    # The daily expiry job just after local midnight, and the tier reviews at their boundaries.
    day0 = start.astimezone(SHANGHAI).date()
    for i in range(1, days + 1):
        ev.append(Event(_local(day0 + timedelta(days=i), 0, 10) if i < days else end, 0, "expire", -1))
    for b in tiers.boundaries(start, end):
        ev.append(Event(b, 0, "review", -1))
    ev.sort(key=lambda e: (e.at, e.rank, e.who, e.kind))
    return plan
