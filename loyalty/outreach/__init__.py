"""Marketing automation (营销自动化): journeys and broadcasts, the rules every send obeys, the sends ledger,
subscription-message credits, the holdout and its report."""
