"""Tiers (普通/银卡/金卡/铂金): growth over a window, reviews, benefits. models: tables; service: operations."""
