"""Orders and returns from the tills and the web shop.

models: tables; service: recording them and the points they earn or claw back."""
