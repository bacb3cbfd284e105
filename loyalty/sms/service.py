"""The SMS gateway in force: Aliyun SMS, or the same client aimed at the local fake server."""

from __future__ import annotations

from loyalty.config import SmsSettings, settings
from loyalty.sms.aliyun import AliyunSms
from loyalty.sms.gateway import SmsGateway

_override: SmsGateway | None = None


def use(gateway: SmsGateway | None) -> None:
    """Replace the gateway in force (tests); ``None`` goes back to the configured one."""
    global _override
    _override = gateway


def gateway(cfg: SmsSettings | None = None) -> SmsGateway:
    """The gateway in force: Aliyun SMS, or the same client aimed at the local fake server."""
    if _override is not None and cfg is None:
        return _override
    return AliyunSms(cfg or settings().sms)
