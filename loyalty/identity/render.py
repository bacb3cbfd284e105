"""The member code as a QR image (PNG) that phones show and till scanners read."""

from __future__ import annotations

import base64
from io import BytesIO

import qrcode
from qrcode.constants import ERROR_CORRECT_M

# Pixels per module and the quiet zone the QR standard asks for: about 300 px for a
# 10-digit code, sharp on a phone screen and small enough for a chat message.
BOX = 10
BORDER = 4


def member_code_png(code: str) -> bytes:
    """A PNG of a QR code holding exactly ``code``."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX, border=BORDER)
    qr.add_data(code)
    qr.make(fit=True)
    out = BytesIO()
    qr.make_image(fill_color="black", back_color="white").save(out, format="PNG")
    return out.getvalue()


def data_url(png: bytes) -> str:
    """The PNG as a ``data:`` URL (the web chat shows it inline; the WeChat channel uploads it)."""
    return "data:image/png;base64," + base64.b64encode(png).decode()
