"""The calendar of shopping: festivals, seasons and big sales, as weights."""

from __future__ import annotations

from datetime import date

from loyalty.apps.demo.reference import MID_AUTUMN, SPRING_FESTIVAL


def festival(table: dict[int, date], year: int, fallback: tuple[int, int]) -> date:
    # Outside the table, a rough date keeps the demo working (only the peak moves a little).
    return table.get(year, date(year, *fallback))


def _near(d: date, peak: date, before: int, after: int = 0) -> bool:
    return -after <= (peak - d).days <= before


def season_weight(tag: str, d: date) -> float:
    """How much more (or less) a product with seasonality ``tag`` sells on day ``d``."""
    if not tag:
        return 1.0
    m = d.month
    sf = festival(SPRING_FESTIVAL, d.year, (2, 1))
    sf_next = festival(SPRING_FESTIVAL, d.year + 1, (2, 1))
    ma = festival(MID_AUTUMN, d.year, (9, 20))
    in_sf = _near(d, sf, 25, 3) or _near(d, sf_next, 25, 3)
    is_618, is_d11 = m == 6 and d.day <= 18, m == 11 and d.day <= 11
    if tag == "summer":
        return {6: 1.8, 7: 2.0, 8: 1.8, 5: 1.3, 9: 1.2}.get(m, 0.7 if m in (12, 1, 2) else 1.0)
    if tag == "winter":
        return {12: 1.9, 1: 1.9, 11: 1.5, 2: 1.5, 3: 1.0, 10: 1.0}.get(m, 0.35)
    if tag == "spring_festival":
        return 6.0 if in_sf else 0.4
    if tag == "mid_autumn":
        return 9.0 if _near(d, ma, 25) else 0.03
    if tag == "valentine":
        return 4.0 if (m == 2 and 7 <= d.day <= 14) or (m == 5 and 13 <= d.day <= 20) else 0.8
    if tag == "shopping":
        return 2.5 if is_618 or is_d11 else 0.9
    if tag == "festival":
        if in_sf or _near(d, ma, 20) or is_d11:
            return 4.0
        if is_618 or (m == 12 and 15 <= d.day <= 24) or (m == 5 and 13 <= d.day <= 20):
            return 2.5
        return 0.4
    return 1.0


def category_season(category: str, d: date) -> float:
    """How much of a basket's choice leans to ``category`` on day ``d``."""
    if category == "gifts":
        return season_weight("festival", d) * 0.6 + season_weight("spring_festival", d) * 0.4
    if category == "drinks":
        return season_weight("summer", d)
    if category in ("skincare", "makeup"):
        return 1.0 + 0.5 * (season_weight("shopping", d) > 1)
    return 1.0


def trip_boost(d: date, online: bool) -> float:
    """Shopping trips become more frequent before Spring Festival, and online around 618 and Double 11."""
    sf = festival(SPRING_FESTIVAL, d.year, (2, 1))
    sf_next = festival(SPRING_FESTIVAL, d.year + 1, (2, 1))
    boost = 1.0
    if _near(d, sf, 21) or _near(d, sf_next, 21):
        boost += 0.4
    if _near(d, sf, 0, 6):  # the holiday week itself is quiet
        boost -= 0.4
    if big_sale(d):
        boost += 0.9 if online else 0.15
    return boost


def big_sale(d: date) -> bool:
    """The 618 and Double 11 shopping festivals (mostly online)."""
    return (d.month == 6 and d.day <= 18) or (d.month == 11 and d.day <= 11)
