"""The loyalty core: members, points ledger, tiers, coupons, referrals, orders.

A plain Python package with no Rasa import. Each business domain is one
package holding its tables (``models``) and its operations (``service``):
catalogue, members, orders, points, tiers, coupons, referrals, segments,
recommender, handoff, apikeys. Shared plumbing sits below them (``config``,
``db``, ``errors``, ``common``, ``audit``, ``hours``); the entry points (the
tills' HTTP API, the staff CLI, the demo generator) sit above them in
``apps``. Every operation takes a SQLAlchemy session; callers run it in a
transaction with :func:`loyalty.db.run` (or :func:`loyalty.db.arun` from async code).
"""
