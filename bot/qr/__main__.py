"""``python -m bot.qr``: write printable store QR codes (see :mod:`bot.qr.cli`)."""

import sys

from bot.qr.cli import main

sys.exit(main())
