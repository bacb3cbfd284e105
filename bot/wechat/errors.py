"""WeChat API error codes the channel acts on, and the error it raises."""

from __future__ import annotations

SYSTEM_BUSY = -1
INVALID_CREDENTIAL = 40001
EXPIRED_ACCESS_TOKEN = 42001
UNSUBSCRIBED = 43004
DAILY_API_LIMIT = 45009
API_FREQ_LIMIT = 45011
RESPONSE_OUT_OF_TIME = 45015  # outside the customer-service window
CS_QUOTA_EXCEEDED = 45047  # too many customer-service messages in the window


class WeChatApiError(Exception):
    """A WeChat API call failed; ``errcode`` is None for transport failures."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"errcode={errcode} errmsg={errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
