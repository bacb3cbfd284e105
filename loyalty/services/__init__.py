"""Business operations of the loyalty core, one function per act of the shop.

Each function takes a SQLAlchemy ``Session`` already inside a transaction
(use :func:`loyalty.db.run`), returns a small frozen result or raises a
:class:`loyalty.errors.LoyaltyError` with a stable code.
"""
