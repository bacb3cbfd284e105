"""Record arrivals through a store's QR code or link, once per bot message, and forget a visitor's.

The bot's ``/store_visit`` intent (a WeChat scan or follow of a store's
parametric code, or the web chat opened with ``?store=CODE``) becomes one
:class:`~loyalty.visits.models.QrVisit`. Only the keyed hash of the channel
address is stored (:func:`loyalty.identity.keys.keyed`); the QR funnel
(loyalty/reports/funnel.py) counts the rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loyalty.catalogue.models import Store
from loyalty.common import now_or
from loyalty.db import add_first
from loyalty.identity.keys import keyed
from loyalty.visits.models import QrVisit

CHANNELS = ("wechat", "webchat")
KINDS = ("scan", "follow", "page_open")
MAX_CODE = 32  # stores.code


def visitor_key(channel: str, address: str) -> str:
    """The pseudonym of a channel address (a WeChat openid, a web chat visitor id)."""
    return keyed("qr-visitor", f"{channel}\x00{address}")


def kind_of(channel: str, first_follow: bool) -> str | None:
    """``follow`` or ``scan`` on WeChat (a new follower or one already following), ``page_open`` on the web chat;
    None for any other channel."""
    if channel == "wechat":
        return "follow" if first_follow else "scan"
    if channel == "webchat":
        return "page_open"
    return None


def record_visit(s: Session, store_code: str, channel: str, address: str, *, first_follow: bool, key: str,
                 now: datetime | None = None) -> bool:
    """Record one arrival at an active store through its code or link, at most once per ``key`` (the bot message
    that carried it). False when nothing was written: an unknown, inactive or malformed store code, a channel
    other than WeChat or the web chat, or a key recorded before."""
    kind = kind_of(channel, first_follow)
    code = (store_code or "").strip().upper()
    if kind is None or not address or not code or len(code) > MAX_CODE:
        return False
    store_id = s.execute(select(Store.id).where(Store.code == code, Store.active.is_(True))).scalar()
    if store_id is None:
        return False
    visit_key = keyed("qr-visit", key)
    if s.execute(select(QrVisit.id).where(QrVisit.visit_key == visit_key)).scalar() is not None:
        return False
    row = QrVisit(store_id=store_id, channel=channel, kind=kind, visitor_key=visitor_key(channel, address),
                  visit_key=visit_key, occurred_at=now_or(now))
    return add_first(s, row)  # a retry racing this one in another process: its row wins


def forget_visitor(s: Session, channel: str, address: str) -> int:
    """Delete every visit of one channel address (its owner's account closes); returns how many."""
    result = s.execute(delete(QrVisit).where(QrVisit.visitor_key == visitor_key(channel, address))
                       .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
