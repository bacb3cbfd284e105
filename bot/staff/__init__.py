"""The staff web app: the dashboard's numbers, coupon campaigns, stores' QR sheets, conversation review."""
