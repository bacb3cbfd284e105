"""The loyalty core: members, points ledger, tiers, coupons, referrals, orders.

A plain Python package with no Rasa import. Every business operation is one
function in ``loyalty.services`` that takes a SQLAlchemy session; callers run
it in a transaction with :func:`loyalty.db.run` (or :func:`loyalty.db.arun`
from async code).
"""
