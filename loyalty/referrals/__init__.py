"""Referrals (推荐有礼): codes, rewards for both sides, no self-referral. models: tables; service: operations."""
