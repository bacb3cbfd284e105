"""Domain errors: each has a stable code the bot and the API turn into a friendly sentence."""

from __future__ import annotations

from typing import Any


class LoyaltyError(Exception):
    """A business rule said no. ``code`` is stable; ``params`` fill the message."""

    code = "error"
    http_status = 400

    def __init__(self, message: str = "", code: str | None = None, **params: Any) -> None:
        super().__init__(message or (code or self.code))
        if code:
            self.code = code
        self.message = message or self.code
        self.params = params

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of an API error."""
        return {"error": self.code, "message": self.message, **self.params}


class InvalidInput(LoyaltyError):
    """Malformed input: a bad phone number, a negative amount, an unknown field."""

    code = "invalid_input"
    http_status = 400


class NotFound(LoyaltyError):
    code = "not_found"
    http_status = 404


class Refused(LoyaltyError):
    """The input is fine but the rule forbids it: out of stock, limit reached, not enough points."""

    code = "refused"
    http_status = 409


class Conflict(LoyaltyError):
    """The same idempotency key came with a different payload."""

    code = "idempotency_conflict"
    http_status = 409


class Unauthorized(LoyaltyError):
    code = "unauthorized"
    http_status = 401


class Unavailable(LoyaltyError):
    """The database cannot be reached or stays locked; nothing was written."""

    code = "unavailable"
    http_status = 503
