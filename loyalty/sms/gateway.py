"""The SMS gateway interface: what every provider adapter offers, its receipt and its error.

A gateway sends one verification code to one mainland number with the
approved sign name and template. It never logs the code: the only place a
code is readable outside the shopper's phone is the fake server's own page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from loyalty.errors import LoyaltyError


class SmsError(LoyaltyError):
    """The provider did not accept the message; ``provider_code`` says why (never the code or number)."""

    code = "sms_failed"
    http_status = 502

    def __init__(self, message: str, provider_code: str = "", *, retryable: bool = False) -> None:
        super().__init__(message, provider_code=provider_code)
        self.provider_code = provider_code
        self.retryable = retryable


@dataclass(frozen=True)
class SmsReceipt:
    """The provider's id of an accepted message."""

    provider: str
    message_id: str


class SmsGateway(Protocol):
    """Something that can send a verification code by SMS."""

    name: str

    def send_code(self, phone: str, code: str) -> SmsReceipt:
        """Send ``code`` to ``phone`` (11 digits); raises :class:`SmsError` when refused."""
        ...
