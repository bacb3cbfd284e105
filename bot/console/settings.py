"""Settings of the agent console, read from environment variables in one place.

Kept beside the console so it stays one small package; the loaders follow
bot/settings.py (frozen dataclass, env mapping, non-None overrides win).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from bot.settings import SettingsError, dev_secret


@dataclass(frozen=True)
class ConsoleSettings:
    """How the console signs sessions, how long they last and how it reaches other processes."""

    # Signs session cookies. Unset: a random secret kept in var/console.secret (development only).
    secret: str | None = None
    # Send the cookie over HTTPS only (set true behind TLS, as in production).
    cookie_secure: bool = False
    session_hours: int = 12
    # Redis for live updates between several Rasa processes; None = one process.
    redis_url: str | None = None
    var_dir: str = "var"
    # Safety net for changes made where no event reaches this process: re-read the queue this often.
    poll_seconds: float = 5.0
    # Tell the shopper which agent joined ("客服小王为你服务").
    announce_agent: bool = True
    # Reverse proxies (addresses or networks) whose X-Forwarded-For is believed: the login
    # throttle counts failures per client address, and anyone can write that header.
    # Empty: the socket's peer is the client (the console is reached directly).
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.session_hours <= 0:
            raise SettingsError("CONSOLE_SESSION_HOURS must be positive")
        if self.poll_seconds <= 0:
            raise SettingsError("CONSOLE_POLL_SECONDS must be positive")
        object.__setattr__(self, "trusted_proxies", _networks(self.trusted_proxies))


def _networks(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """CONSOLE_TRUSTED_PROXIES as checked networks: "10.0.0.5, 10.1.0.0/16, ::1" (a list in credentials.yml)."""
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(f"CONSOLE_TRUSTED_PROXIES: {item!r} is not an address or network") from None
    return tuple(out)


def _flag(raw: str | None, name: str, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be true or false")


def _number(e: Mapping[str, str], name: str, default: float) -> float:
    raw = e.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def load_console_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> ConsoleSettings:
    """Read CONSOLE_* variables (Redis falls back to WEBCHAT_REDIS_URL); non-None overrides win."""
    e = os.environ if env is None else env
    values: dict[str, Any] = {
        "secret": e.get("CONSOLE_SECRET") or None,
        "cookie_secure": _flag(e.get("CONSOLE_COOKIE_SECURE"), "CONSOLE_COOKIE_SECURE", False),
        "session_hours": int(_number(e, "CONSOLE_SESSION_HOURS", 12)),
        "redis_url": e.get("CONSOLE_REDIS_URL") or e.get("WEBCHAT_REDIS_URL") or None,
        "var_dir": e.get("LOYALTY_VAR_DIR") or "var",
        "poll_seconds": _number(e, "CONSOLE_POLL_SECONDS", 5.0),
        "announce_agent": _flag(e.get("CONSOLE_ANNOUNCE_AGENT"), "CONSOLE_ANNOUNCE_AGENT", True),
        "trusted_proxies": e.get("CONSOLE_TRUSTED_PROXIES") or (),
    }
    known = {f.name for f in fields(ConsoleSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise SettingsError(f"unknown console setting(s): {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ConsoleSettings(**values)


def secret_bytes(cfg: ConsoleSettings) -> bytes:
    """CONSOLE_SECRET, or a random secret created once in var/ (development)."""
    if cfg.secret:
        if len(cfg.secret) < 16:
            raise SettingsError("CONSOLE_SECRET must have at least 16 characters")
        return cfg.secret.encode()
    return dev_secret(cfg.var_dir, "console.secret")
