"""API keys of the tills and the web shop that call the HTTP API.

Each calling system (a ``source``: "pos", "webshop", ...) has one key. Only
the SHA-256 of a key is stored, so a copy of the database does not let anyone
post orders; the key itself is shown once, when it is made. Rotating a key
replaces its hash, and the old key stops working at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.apikeys.models import ApiClient
from loyalty.audit import audit
from loyalty.db import utcnow
from loyalty.errors import InvalidInput, NotFound, Refused

KEY_PREFIX = "lk_"
# Longer "keys" are refused without a database lookup; real ones are 46 characters.
MAX_KEY_LENGTH = 200
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class ApiClientView:
    """A caller of the API as staff see it: never the key, nor its hash."""

    source: str
    active: bool
    created_at: datetime


def hash_key(key: str) -> str:
    """The stored fingerprint of a key (SHA-256, hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    """A short, non-secret tag of a key for logs: the start of its hash, never the key."""
    return "key#" + hash_key(key)[:8]


def _new_key() -> str:
    # 32 random bytes: guessing is hopeless, so a fast hash is enough to store it.
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _check_source(source: str) -> str:
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        raise InvalidInput(
            "A source is 1-32 lower-case letters, digits, '.', '_' or '-' (e.g. pos, webshop).",
            code="invalid_source",
        )
    return source


def _client(s: Session, source: str) -> ApiClient:
    c = s.execute(select(ApiClient).where(ApiClient.source == source)).scalar_one_or_none()
    if c is None:
        raise NotFound("No API client with this source.", code="unknown_api_client", source=source)
    return c


def _view(c: ApiClient) -> ApiClientView:
    return ApiClientView(c.source, c.active, c.created_at)


def create_api_client(s: Session, source: str, *, actor: str = "cli") -> str:
    """Register a new caller and return its key; the key is shown this once and never stored.

    An existing source is refused (``api_client_exists``): use
    :func:`rotate_key` to give it a new key on purpose.
    """
    _check_source(source)
    if s.execute(select(ApiClient.id).where(ApiClient.source == source)).first():
        raise Refused("This source already has a key; rotate it instead.", code="api_client_exists",
                      source=source)
    key = _new_key()
    s.add(ApiClient(source=source, key_hash=hash_key(key), active=True, created_at=utcnow()))
    s.flush()
    audit(s, actor, "api_client_create", None, source=source)
    return key


def rotate_key(s: Session, source: str, *, actor: str = "cli") -> str:
    """Replace the key of a source (and reactivate it); the old key stops working at once."""
    c = _client(s, _check_source(source))
    key = _new_key()
    c.key_hash = hash_key(key)
    c.active = True
    s.flush()
    audit(s, actor, "api_key_rotate", None, source=source)
    return key


def deactivate(s: Session, source: str, *, actor: str = "cli") -> bool:
    """Stop a source's key from working; returns whether it was active until now."""
    c = _client(s, _check_source(source))
    was_active = c.active
    c.active = False
    s.flush()
    if was_active:
        audit(s, actor, "api_client_deactivate", None, source=source)
    return was_active


def clients(s: Session) -> list[ApiClientView]:
    """Every registered caller, by source."""
    return [_view(c) for c in s.execute(select(ApiClient).order_by(ApiClient.source)).scalars()]


def identify(s: Session, key: str) -> ApiClientView | None:
    """The caller a key belongs to, active or not; ``None`` for an unknown or malformed key."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not _KEY_RE.match(key):
        return None
    # Looked up by its hash through a unique index: what an attacker controls is
    # the key, not the hash, so the lookup's timing tells them nothing useful.
    c = s.execute(select(ApiClient).where(ApiClient.key_hash == hash_key(key))).scalar_one_or_none()
    return None if c is None else _view(c)


def authenticate(s: Session, key: str) -> str | None:
    """The source of an active key, or ``None`` (unknown, malformed or deactivated key)."""
    found = identify(s, key)
    return found.source if found is not None and found.active else None
