"""The points ledger and its lots. models: tables; service: earning, spending, expiry, adjustments, summaries."""
