"""The identity secret and the keyed hashes made with it.

Codes and phone numbers are stored only as HMAC-SHA256 under this secret, so a
copy of the database alone reveals neither. Every process (action server,
Rasa, the tills' API) must share it: ``LOYALTY_IDENTITY_SECRET`` in
production; in development a random one is created once, readable by its
owner only, in ``$LOYALTY_VAR_DIR/identity.secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from loyalty.config import SettingsError, settings

MIN_SECRET = 16


def _dev_secret(var_dir: str) -> bytes:
    path = Path(var_dir) / "identity.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together agree on the first one's secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    value = path.read_text().strip()
    if len(value) < MIN_SECRET:  # read while its creator was still writing it
        raise SettingsError(f"{path} is incomplete; delete it or set LOYALTY_IDENTITY_SECRET")
    return value.encode()


def secret() -> bytes:
    """The identity secret in force."""
    configured = settings().identity_secret
    if configured:
        if len(configured) < MIN_SECRET:
            raise SettingsError(f"LOYALTY_IDENTITY_SECRET must have at least {MIN_SECRET} characters")
        return configured.encode()
    return _dev_secret(settings().var_dir)


def keyed(purpose: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``value`` for one ``purpose`` (a phone number, a code, a chat address)."""
    return hmac.new(secret(), f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(a.encode(), b.encode())
