"""Bot-level settings, read from environment variables in one place.

One module for the whole bot package: WeChat, the web chat and the agent
console. Each group of settings is a frozen dataclass with a loader that takes an
environment mapping (``os.environ`` by default) and optional overrides, so
tests and ``credentials.yml`` can set values without touching the process
environment. Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from loyalty.config import SettingsError, env_flag, env_value


def dev_secret(var_dir: str, name: str) -> bytes:
    """A random secret created once in ``var_dir/name`` (development only; production sets one).

    The folder is created 0700 and the file 0600 from its first byte: writing
    first and tightening after would leave a moment where anyone could read it.
    """
    path = Path(var_dir) / name
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


# ---------------------------------------------------------------- helpers

__all__ = ["SettingsError"]  # re-exported: channels and tests catch it from here


def parse_mapping(raw: str) -> dict[str, str]:
    """Parse ``"KEY=value,KEY2=value2"`` into a dict (blank items are ignored)."""
    result: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected KEY=value, got {item!r}")
        result[key.strip()] = value.strip()
    return result


# ---------------------------------------------------------------- every channel

DEFAULT_MAX_TEXT_CHARS = 1000


def max_text_chars(env: Mapping[str, str] | None = None) -> int:
    """``BOT_MAX_TEXT_CHARS``: the longest text a shopper may send, on every channel.

    A shopper's message, not an essay: the channels refuse longer texts and the
    NLU pipeline cuts them, so one message can never cost seconds of NLU.
    """
    value = env_value(os.environ if env is None else env, "BOT_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS, int)
    if value < 10:
        raise SettingsError("BOT_MAX_TEXT_CHARS must be at least 10")
    return value


# ---------------------------------------------------------------- WeChat

WECHAT_API_BASE_URL = "https://api.weixin.qq.com/cgi-bin/"

# Menu CLICK keys and the intents they stand for; the menu is created with these keys.
DEFAULT_MENU_INTENTS: Mapping[str, str] = MappingProxyType({"MENU_POINTS": "ask_points"})


@dataclass(frozen=True)
class WeChatSettings:
    """Everything the WeChat official-account channel needs.

    Build with :func:`load_wechat_settings`, or directly in tests.
    """

    token: str
    app_id: str
    app_secret: str
    # EncodingAESKey (43 characters); None means plain mode only.
    aes_key: str | None = None
    api_base_url: str = WECHAT_API_BASE_URL
    # Seconds to wait for the assistant before answering ``success`` (WeChat
    # gives up after 5 s and retries, so stay well below that).
    passive_wait: float = 4.0
    # Callbacks whose timestamp is further than this from our clock are refused.
    max_clock_skew: int = 300
    http_timeout: float = 3.0
    # Shared storage for dedup, access token and per-shopper state; None = memory.
    redis_url: str | None = None
    dedup_ttl: int = 600
    max_text_bytes: int = 2048
    # Longest text a shopper may send (BOT_MAX_TEXT_CHARS, shared by every channel);
    # longer ones get a polite refusal and never reach the assistant.
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    menu_intents: Mapping[str, str] = field(default=DEFAULT_MENU_INTENTS)
    # Customer-service message quotas: a shopper's message opens a window of
    # 5 messages in 48 h; a follow, scan or menu click one of 3 in 1 minute.
    cs_quota_message: int = 5
    cs_window_message: int = 48 * 3600
    cs_quota_event: int = 3
    cs_window_event: int = 60
    # How long numbered choices stay answerable by their number.
    choice_ttl: int = 1800
    # Refresh the access token this many seconds before WeChat expires it.
    token_refresh_margin: int = 300

    def __post_init__(self) -> None:
        if not self.token:
            raise SettingsError("WECHAT_TOKEN is required (the token set in the WeChat admin)")
        if self.aes_key is not None:
            aes_key_bytes(self.aes_key)  # raises SettingsError when malformed
        if self.passive_wait <= 0:
            raise SettingsError("WECHAT_PASSIVE_WAIT must be positive")
        if self.max_text_bytes < 64:
            raise SettingsError("WECHAT_MAX_TEXT_BYTES must be at least 64")
        if self.max_text_chars < 10:
            raise SettingsError("BOT_MAX_TEXT_CHARS must be at least 10")
        if not self.api_base_url.endswith("/"):
            object.__setattr__(self, "api_base_url", self.api_base_url + "/")
        object.__setattr__(self, "menu_intents", MappingProxyType(dict(self.menu_intents)))

    @property
    def can_send(self) -> bool:
        """Whether the customer-service API can be called (app id and secret known)."""
        return bool(self.app_id and self.app_secret)


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    """Decode a 43-character EncodingAESKey into its 32 key bytes."""
    if len(encoding_aes_key) != 43:
        raise SettingsError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise SettingsError("WECHAT_AES_KEY is not valid base64") from None
    if len(key) != 32:
        raise SettingsError("WECHAT_AES_KEY must decode to 32 bytes")
    return key


def load_wechat_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> WeChatSettings:
    """Read WeChat settings from environment variables; ``overrides`` win.

    Overrides with the value ``None`` are ignored so that optional keys of
    ``credentials.yml`` can be passed through unchanged.
    """
    e = os.environ if env is None else env
    values: dict[str, Any] = {
        "token": e.get("WECHAT_TOKEN", ""),
        "app_id": e.get("WECHAT_APP_ID", ""),
        "app_secret": e.get("WECHAT_APP_SECRET", ""),
        "aes_key": e.get("WECHAT_AES_KEY") or None,
        "api_base_url": e.get("WECHAT_API_BASE_URL") or WECHAT_API_BASE_URL,
        "passive_wait": env_value(e, "WECHAT_PASSIVE_WAIT", 4.0, float),
        "max_clock_skew": env_value(e, "WECHAT_MAX_CLOCK_SKEW", 300, int),
        "http_timeout": env_value(e, "WECHAT_HTTP_TIMEOUT", 3.0, float),
        "redis_url": e.get("WECHAT_REDIS_URL") or None,
        "dedup_ttl": env_value(e, "WECHAT_DEDUP_TTL", 600, int),
        "max_text_bytes": env_value(e, "WECHAT_MAX_TEXT_BYTES", 2048, int),
        "max_text_chars": max_text_chars(e),
        "menu_intents": env_value(e, "WECHAT_MENU_INTENTS", dict(DEFAULT_MENU_INTENTS), parse_mapping),
        "cs_quota_message": env_value(e, "WECHAT_CS_QUOTA_MESSAGE", 5, int),
        "cs_window_message": env_value(e, "WECHAT_CS_WINDOW_MESSAGE", 48 * 3600, int),
        "cs_quota_event": env_value(e, "WECHAT_CS_QUOTA_EVENT", 3, int),
        "cs_window_event": env_value(e, "WECHAT_CS_WINDOW_EVENT", 60, int),
        "choice_ttl": env_value(e, "WECHAT_CHOICE_TTL", 1800, int),
        "token_refresh_margin": env_value(e, "WECHAT_TOKEN_REFRESH_MARGIN", 300, int),
    }
    return WeChatSettings(**_with_overrides(WeChatSettings, "WeChat", values, overrides, coerce=True))


def _with_overrides(cls: type, label: str, values: dict[str, Any], overrides: Mapping[str, Any],
                    *, coerce: bool = False) -> dict[str, Any]:
    """``values`` with the non-None ``overrides`` applied (credentials.yml, tests); unknown names refused."""
    unknown = set(overrides) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingsError(f"unknown {label} setting(s): {', '.join(sorted(unknown))}")
    out = dict(values)
    for name, value in overrides.items():
        if value is not None:
            out[name] = _coerce(name, value, values[name]) if coerce else value
    return out


def _coerce(name: str, value: Any, current: Any) -> Any:
    """Bring a credentials.yml value (often a string) to the type of the setting."""
    if isinstance(current, bool) or not isinstance(value, str):
        return value
    try:
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, dict):
            return parse_mapping(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is not valid: {exc}") from None
    return value


# ---------------------------------------------------------------- web chat

DEFAULT_WEBCHAT_PUBLIC_URL = "http://127.0.0.1:5005"


@dataclass(frozen=True)
class WebChatSettings:
    """Where shoppers reach the web chat from outside (store QR codes link there)."""

    # Base URL of the Rasa server as shoppers see it, without a trailing slash.
    public_url: str = DEFAULT_WEBCHAT_PUBLIC_URL
    # Signs visitor ids; unset, a random secret is kept in var/webchat.secret (development).
    secret: str | None = None
    # Redis for pushes between several Rasa processes; None = one process.
    redis_url: str | None = None
    # Where development state (the generated secret) lives.
    var_dir: str = "var"
    # Longest text a shopper may send (BOT_MAX_TEXT_CHARS, shared by every channel).
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS

    def __post_init__(self) -> None:
        url = self.public_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise SettingsError(
                f"WEBCHAT_PUBLIC_URL={self.public_url!r} must be an http(s) base URL "
                "without query or fragment, e.g. https://shop.example.com"
            )
        object.__setattr__(self, "public_url", url)


def load_webchat_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> WebChatSettings:
    """Read web chat settings from environment variables; non-None ``overrides`` win."""
    e = os.environ if env is None else env
    values: dict[str, Any] = {
        "public_url": e.get("WEBCHAT_PUBLIC_URL") or DEFAULT_WEBCHAT_PUBLIC_URL,
        "secret": e.get("WEBCHAT_SECRET") or None,
        "redis_url": e.get("WEBCHAT_REDIS_URL") or None,
        "var_dir": e.get("LOYALTY_VAR_DIR") or "var",
        "max_text_chars": max_text_chars(e),
    }
    return WebChatSettings(**_with_overrides(WebChatSettings, "web chat", values, overrides))


# ---------------------------------------------------------------- agent console


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


def load_console_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> ConsoleSettings:
    """Read CONSOLE_* variables (Redis falls back to WEBCHAT_REDIS_URL); non-None overrides win."""
    e = os.environ if env is None else env
    values: dict[str, Any] = {
        "secret": e.get("CONSOLE_SECRET") or None,
        "cookie_secure": env_flag(e, "CONSOLE_COOKIE_SECURE", False),
        "session_hours": env_value(e, "CONSOLE_SESSION_HOURS", 12, int),
        "redis_url": e.get("CONSOLE_REDIS_URL") or e.get("WEBCHAT_REDIS_URL") or None,
        "var_dir": e.get("LOYALTY_VAR_DIR") or "var",
        "poll_seconds": env_value(e, "CONSOLE_POLL_SECONDS", 5.0, float),
        "announce_agent": env_flag(e, "CONSOLE_ANNOUNCE_AGENT", True),
        "trusted_proxies": e.get("CONSOLE_TRUSTED_PROXIES") or (),
    }
    return ConsoleSettings(**_with_overrides(ConsoleSettings, "console", values, overrides))


def secret_bytes(cfg: ConsoleSettings) -> bytes:
    """CONSOLE_SECRET, or a random secret created once in var/ (development)."""
    if cfg.secret:
        if len(cfg.secret) < 16:
            raise SettingsError("CONSOLE_SECRET must have at least 16 characters")
        return cfg.secret.encode()
    return dev_secret(cfg.var_dir, "console.secret")


# ---------------------------------------------------------------- action server

DEFAULT_ACTIONS_PORT = 5055
# Long enough for any action of ours (they take well under a second), short
# enough that the apology still fits WeChat's 4-second passive reply.
DEFAULT_ACTION_TIMEOUT = 3.0
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ActionServerSettings:
    """Where the action server listens, the secret every call must carry, how long Rasa waits."""

    # Shared with Rasa (endpoints.yml sends it as "Authorization: Bearer …").
    token: str = ""
    # Loopback unless the action server runs on a host of its own.
    host: str = "127.0.0.1"
    port: int = DEFAULT_ACTIONS_PORT
    # Seconds Rasa waits for one action before the shopper gets an apology.
    timeout: float = DEFAULT_ACTION_TIMEOUT

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise SettingsError("ACTION_SERVER_TIMEOUT must be positive")

    def require_token(self) -> str:
        """The token, or an error saying how to set one (the action server never runs open)."""
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise SettingsError(
                f"ACTION_SERVER_TOKEN must be set to a random secret of at least {MIN_TOKEN_LENGTH} "
                "characters (the same for Rasa and the action server; `make run` makes one)"
            )
        return self.token


def load_action_server_settings(env: Mapping[str, str] | None = None) -> ActionServerSettings:
    """Read the action server settings from environment variables."""
    e = os.environ if env is None else env
    return ActionServerSettings(
        token=(e.get("ACTION_SERVER_TOKEN") or "").strip(),
        host=(e.get("ACTIONS_HOST") or "").strip() or "127.0.0.1",
        port=env_value(e, "ACTIONS_PORT", DEFAULT_ACTIONS_PORT, int),
        timeout=env_value(e, "ACTION_SERVER_TIMEOUT", DEFAULT_ACTION_TIMEOUT, float),
    )


# ---------------------------------------------------------------- operations


def metrics_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``METRICS_ENABLED`` (default true): false turns every Prometheus instrument into a no-op."""
    return env_flag(os.environ if env is None else env, "METRICS_ENABLED", True)


def log_format(env: Mapping[str, str] | None = None) -> str:
    """``LOG_FORMAT``: ``text`` (default, for people) or ``json`` (one object per line, for collectors)."""
    value = (os.environ if env is None else env).get("LOG_FORMAT", "").strip().lower() or "text"
    if value not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT={value!r} must be text or json")
    return value


def metrics_token(env: Mapping[str, str] | None = None) -> str | None:
    """``METRICS_TOKEN``: when set, ``GET /metrics`` needs ``Authorization: Bearer <it>`` on both servers."""
    return (os.environ if env is None else env).get("METRICS_TOKEN") or None


def redis_urls(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Redis servers the channels are configured with (readiness checks each)."""
    e = os.environ if env is None else env
    names = {"webchat": "WEBCHAT_REDIS_URL", "wechat": "WECHAT_REDIS_URL", "console": "CONSOLE_REDIS_URL"}
    return {label: e[var] for label, var in names.items() if e.get(var)}
