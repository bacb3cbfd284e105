"""Membership: joining with consent (welcome gift, referral), the member card, closing an account.

It sits above members, points, coupons and referrals, whose operations it combines."""
