"""Coupon campaigns, claims, exchange for points and redemption at the till.

models: tables; service: operations; gifts: gift and birthday coupons."""
