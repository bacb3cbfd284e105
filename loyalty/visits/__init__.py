"""Arrivals through a store's QR code or link (scans, follows, web chat page opens), pseudonymous, for the QR funnel."""
