"""Configuration of the loyalty core, read from environment variables in one place.

It also holds the one parser of environment values (:func:`env_value`,
:func:`env_flag`) that the bot's settings (bot/settings.py) use too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

from loyalty.hours import ServiceHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def env_value(env: Mapping[str, str], name: str, default: T, cast: Callable[[str], T]) -> T:
    """``cast`` of the variable ``name``, or ``default`` when it is unset or blank."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from None


def _truth(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A true/false variable (1/0, true/false, yes/no, on/off); ``default`` when unset."""
    return env_value(env, name, default, _truth)


@dataclass(frozen=True)
class TierDef:
    """One member tier and its benefits."""

    code: str
    name_zh: str
    name_en: str
    threshold: int  # growth value (yuan spent in the rolling window) needed
    multiplier: float  # points multiplier on purchases
    birthday_coupon: str | None = None  # campaign code granted on the birthday
    priority_service: bool = False  # 专属客服


DEFAULT_TIERS: tuple[TierDef, ...] = (
    TierDef("normal", "普通会员", "Member", 0, 1.0, None, False),
    TierDef("silver", "银卡会员", "Silver", 2000, 1.2, "BIRTHDAY-SILVER", False),
    TierDef("gold", "金卡会员", "Gold", 6000, 1.5, "BIRTHDAY-GOLD", True),
    TierDef("platinum", "铂金会员", "Platinum", 15000, 2.0, "BIRTHDAY-PLATINUM", True),
)


@dataclass(frozen=True)
class SmsSettings:
    """The SMS gateway for one-time codes (loyalty/sms): Aliyun SMS, or the local fake of it."""

    # "aliyun" sends real messages; "fake" sends the same signed requests to the
    # local fake server (python -m loyalty.sms), which only records them.
    provider: str = "fake"
    access_key_id: str = ""
    access_key_secret: str = ""
    # The approved sign name (签名) and template (模板CODE); the template has one variable for the code.
    sign_name: str = "会员助手"
    template_code: str = "SMS_000000"
    template_param: str = "code"
    endpoint: str = "https://dysmsapi.aliyuncs.com/"
    region: str = "cn-hangzhou"
    fake_url: str = "http://127.0.0.1:8090/"
    timeout: float = 5.0

    @property
    def url(self) -> str:
        """Where the SendSms request goes."""
        return self.endpoint if self.provider == "aliyun" else self.fake_url


@dataclass(frozen=True)
class Settings:
    """Every knob of the core. Build with :func:`settings` (cached) or directly in tests."""

    database_url: str = "sqlite:///var/loyalty.db"
    points_per_yuan: float = 1.0
    # "days": a lot expires N days after it was earned; "year_end_next": at the
    # end of the next calendar year (Asia/Shanghai), a common Chinese practice.
    expiry_mode: str = "days"
    expiry_days: int = 365
    expiring_soon_days: int = 30
    tiers: tuple[TierDef, ...] = DEFAULT_TIERS
    tier_window_days: int = 365
    # Downgrades happen only at a review boundary: every N months from January.
    tier_period_months: int = 12
    referral_trigger: str = "join"  # or "first_order"
    referrer_points: int = 200
    referee_points: int = 100
    welcome_campaign: str | None = "WELCOME"
    privacy_notice_version: str = "2026-01"
    # Adjustments above this many points need a supervisor (handoff console).
    adjust_limit: int = 500
    # Human takeover (loyalty/handoff): when agents work, in local time of service_tz.
    # Hours: "HH:MM-HH:MM" ranges, comma separated ("24:00" ends a day); days: ISO
    # weekdays 1 (Monday) to 7 as "1-5" or "1,3,5"; closed dates: "YYYY-MM-DD,…".
    service_hours: str = "09:00-21:00"
    service_days: str = "1-7"
    service_closed_dates: str = ""
    service_tz: str = "Asia/Shanghai"
    # Expected minutes per conversation ahead in the queue before there is history to measure.
    handoff_wait_minutes: int = 3
    # Recommender model files (versioned; the newest is served).
    model_dir: str = "var/models"
    # Lifecycle stages by days since the last order: new (joined recently), active, dormant, churned.
    lifecycle_new_days: int = 30
    lifecycle_active_days: int = 90
    lifecycle_churn_days: int = 180
    # One identity across channels (loyalty/identity): SMS one-time codes and member codes.
    # Keys the hashes of codes and phone numbers and derives member-code secrets. Unset: a
    # random secret kept in var_dir/identity.secret (development only; every process must share it).
    identity_secret: str | None = None
    var_dir: str = "var"
    otp_ttl_seconds: int = 300
    otp_max_tries: int = 5
    otp_cooldown_seconds: int = 60
    otp_daily_per_phone: int = 5
    otp_daily_per_identity: int = 10
    # Member codes shown at the till: prefix + digits, valid this many seconds, one use.
    member_code_prefix: str = "88"
    member_code_digits: int = 8
    member_code_seconds: int = 60
    sms: SmsSettings = field(default_factory=SmsSettings)
    extra: dict[str, str] = field(default_factory=dict)

    def tier(self, code: str) -> TierDef:
        """The tier definition for ``code`` (the lowest tier if unknown)."""
        for t in self.tiers:
            if t.code == code:
                return t
        return self.tiers[0]


def _tiers_from_env(raw: str | None) -> tuple[TierDef, ...]:
    if not raw:
        return DEFAULT_TIERS
    items = json.loads(raw)
    tiers = tuple(TierDef(**item) for item in items)
    if not tiers or tiers[0].threshold != 0:
        raise ValueError("LOYALTY_TIERS must start with a tier of threshold 0")
    if any(a.threshold >= b.threshold for a, b in zip(tiers, tiers[1:], strict=False)):
        raise ValueError("LOYALTY_TIERS thresholds must increase")
    return tiers


def _sms_from_env(e: Mapping[str, str]) -> SmsSettings:
    key_id = e.get("SMS_ALIYUN_ACCESS_KEY_ID", "").strip()
    provider = (e.get("SMS_PROVIDER") or ("aliyun" if key_id else "fake")).strip().lower()
    if provider not in ("aliyun", "fake"):
        raise SettingsError("SMS_PROVIDER must be 'aliyun' or 'fake'")
    d = SmsSettings()
    s = SmsSettings(
        provider=provider,
        access_key_id=key_id,
        access_key_secret=e.get("SMS_ALIYUN_ACCESS_KEY_SECRET", "").strip(),
        sign_name=e.get("SMS_SIGN_NAME", "").strip() or d.sign_name,
        template_code=e.get("SMS_TEMPLATE_CODE", "").strip() or d.template_code,
        template_param=e.get("SMS_TEMPLATE_PARAM", "").strip() or d.template_param,
        endpoint=e.get("SMS_ALIYUN_ENDPOINT", "").strip() or d.endpoint,
        region=e.get("SMS_ALIYUN_REGION", "").strip() or d.region,
        fake_url=e.get("SMS_FAKE_URL", "").strip() or d.fake_url,
        timeout=env_value(e, "SMS_TIMEOUT", d.timeout, float),
    )
    if provider == "aliyun" and not (s.access_key_id and s.access_key_secret):
        raise SettingsError("SMS_PROVIDER=aliyun needs SMS_ALIYUN_ACCESS_KEY_ID and SMS_ALIYUN_ACCESS_KEY_SECRET")
    return s


def _digits(raw: str) -> str:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= len(raw) <= 4:  # "²" and "８" are isdigit too
        raise ValueError("must be 1 to 4 digits")
    return raw


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from environment variables (see .env.example)."""
    e = os.environ if env is None else env
    expiry_mode = e.get("LOYALTY_EXPIRY_MODE", "days")
    if expiry_mode not in ("days", "year_end_next"):
        raise ValueError("LOYALTY_EXPIRY_MODE must be 'days' or 'year_end_next'")
    trigger = e.get("LOYALTY_REFERRAL_TRIGGER", "join")
    if trigger not in ("join", "first_order"):
        raise ValueError("LOYALTY_REFERRAL_TRIGGER must be 'join' or 'first_order'")
    hours = (
        e.get("LOYALTY_SERVICE_HOURS", "09:00-21:00"),
        e.get("LOYALTY_SERVICE_DAYS", "1-7"),
        e.get("LOYALTY_SERVICE_CLOSED_DATES", ""),
        e.get("LOYALTY_SERVICE_TZ", "Asia/Shanghai"),
    )
    # Fail at start-up on a typo rather than at the first handoff.
    ServiceHours.parse(*hours)
    return Settings(
        database_url=e.get("LOYALTY_DATABASE_URL", "sqlite:///var/loyalty.db"),
        model_dir=e.get("LOYALTY_MODEL_DIR", "var/models"),
        lifecycle_new_days=env_value(e, "LOYALTY_LIFECYCLE_NEW_DAYS", 30, int),
        lifecycle_active_days=env_value(e, "LOYALTY_LIFECYCLE_ACTIVE_DAYS", 90, int),
        lifecycle_churn_days=env_value(e, "LOYALTY_LIFECYCLE_CHURN_DAYS", 180, int),
        points_per_yuan=env_value(e, "LOYALTY_POINTS_PER_YUAN", 1.0, float),
        expiry_mode=expiry_mode,
        expiry_days=env_value(e, "LOYALTY_EXPIRY_DAYS", 365, int),
        expiring_soon_days=env_value(e, "LOYALTY_EXPIRING_SOON_DAYS", 30, int),
        tiers=_tiers_from_env(e.get("LOYALTY_TIERS")),
        tier_window_days=env_value(e, "LOYALTY_TIER_WINDOW_DAYS", 365, int),
        tier_period_months=env_value(e, "LOYALTY_TIER_PERIOD_MONTHS", 12, int),
        referral_trigger=trigger,
        referrer_points=env_value(e, "LOYALTY_REFERRER_POINTS", 200, int),
        referee_points=env_value(e, "LOYALTY_REFEREE_POINTS", 100, int),
        welcome_campaign=e.get("LOYALTY_WELCOME_CAMPAIGN", "WELCOME") or None,
        privacy_notice_version=e.get("LOYALTY_PRIVACY_NOTICE_VERSION", "2026-01"),
        adjust_limit=env_value(e, "LOYALTY_ADJUST_LIMIT", 500, int),
        handoff_wait_minutes=env_value(e, "LOYALTY_HANDOFF_WAIT_MINUTES", 3, int),
        service_hours=hours[0],
        service_days=hours[1],
        service_closed_dates=hours[2],
        service_tz=hours[3],
        identity_secret=e.get("LOYALTY_IDENTITY_SECRET") or None,
        var_dir=e.get("LOYALTY_VAR_DIR") or "var",
        otp_ttl_seconds=env_value(e, "LOYALTY_OTP_TTL_SECONDS", 300, int),
        otp_max_tries=env_value(e, "LOYALTY_OTP_MAX_TRIES", 5, int),
        otp_cooldown_seconds=env_value(e, "LOYALTY_OTP_COOLDOWN_SECONDS", 60, int),
        otp_daily_per_phone=env_value(e, "LOYALTY_OTP_DAILY_PER_PHONE", 5, int),
        otp_daily_per_identity=env_value(e, "LOYALTY_OTP_DAILY_PER_IDENTITY", 10, int),
        member_code_prefix=env_value(e, "LOYALTY_MEMBER_CODE_PREFIX", "88", _digits),
        member_code_seconds=env_value(e, "LOYALTY_MEMBER_CODE_SECONDS", 60, int),
        sms=_sms_from_env(e),
    )


_override: Settings | None = None


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return from_env()


def settings() -> Settings:
    """The settings in force: an override set by :func:`use` or the environment's."""
    return _override if _override is not None else _cached()


def use(s: Settings | None) -> None:
    """Replace the settings in force (tests, the CLI); ``None`` goes back to the environment."""
    global _override
    _override = s
