"""``python -m loyalty.sms``: the fake SMS gateway (see loyalty/sms/dev.py)."""

from loyalty.sms.dev import main

main()
