"""Aliyun SMS (短信服务) ``SendSms``: the RPC API with Aliyun's HMAC-SHA1 request signature.

The signature (Aliyun's "RPC signature v1"): every parameter but ``Signature``
sorted by name, each name and value percent-encoded (RFC 3986, with ``~``
left alone and space as ``%20``), joined as ``k=v&…``; the string to sign is
``METHOD&%2F&`` + the percent-encoded query; the key is the AccessKey secret
plus ``&``; the signature is the base64 HMAC-SHA1. Requests are POSTed as a
form so the code never sits in a URL (URLs end up in proxy and debug logs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote

import requests

from loyalty.config import SmsSettings
from loyalty.sms.gateway import SmsError, SmsReceipt

log = logging.getLogger(__name__)

API_VERSION = "2017-05-25"
# Aliyun's codes for a refusal worth retrying later (flow control, their own trouble).
_RETRYABLE = {"isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "isv.OUT_OF_SERVICE", "Throttling.User",
              "ServiceUnavailable"}


def percent_encode(value: str) -> str:
    """Aliyun's POP encoding: RFC 3986 unreserved characters kept, everything else %XX of UTF-8."""
    return quote(value, safe="~", encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """The sorted, encoded ``k=v&…`` string, ``Signature`` left out."""
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )


def string_to_sign(params: Mapping[str, str], method: str = "POST") -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """The base64 HMAC-SHA1 signature of ``params`` with the AccessKey secret."""
    digest = hmac.new((secret + "&").encode(), string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AliyunSms:
    """Sends verification codes with ``SendSms`` (to Aliyun, or to the fake server in development)."""

    def __init__(self, cfg: SmsSettings, session: requests.Session | None = None) -> None:
        self.cfg = cfg
        self.name = "aliyun" if cfg.provider == "aliyun" else "fake"
        # The fake server checks signatures with its own fixed secret.
        self._key_id = cfg.access_key_id if cfg.provider == "aliyun" else "fake-key"
        self._secret = cfg.access_key_secret if cfg.provider == "aliyun" else "fake-secret"
        self._http = session or requests.Session()

    def request_params(self, phone: str, code: str, *, nonce: str | None = None,
                       at: datetime | None = None, template_code: str | None = None,
                       values: Mapping[str, str] | None = None) -> dict[str, str]:
        """The signed form of one SendSms request (a code, or ``values`` for another approved template)."""
        params = {
            "AccessKeyId": self._key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": self.cfg.region,
            "SignName": self.cfg.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": template_code or self.cfg.template_code,
            "TemplateParam": json.dumps(dict(values) if values is not None else {self.cfg.template_param: code},
                                        ensure_ascii=False, separators=(",", ":")),
            "Timestamp": _timestamp(at),
            "Version": API_VERSION,
        }
        params["Signature"] = signature(params, self._secret)
        return params

    def send_code(self, phone: str, code: str) -> SmsReceipt:
        """Send one code; raises :class:`SmsError` (its message names the provider's code, never ours)."""
        return self._post(self.request_params(phone, code))

    def send_message(self, phone: str, template_code: str, values: Mapping[str, str]) -> SmsReceipt:
        """Send one message of another approved template (outreach); raises :class:`SmsError`."""
        return self._post(self.request_params(phone, "", template_code=template_code, values=values))

    def _post(self, params: dict[str, str]) -> SmsReceipt:
        try:
            res = self._http.post(self.cfg.url, data=params, timeout=self.cfg.timeout)
        except requests.RequestException as exc:
            raise SmsError(f"SMS provider unreachable: {type(exc).__name__}", "unreachable", retryable=True) from None
        try:
            body = res.json()
        except ValueError:
            body = {}
        result = str(body.get("Code") or f"HTTP {res.status_code}")
        if res.status_code != 200 or result != "OK":
            log.warning("sms refused provider=%s code=%s status=%d", self.name, result, res.status_code)
            raise SmsError(f"SMS refused by the provider: {result}", result, retryable=result in _RETRYABLE)
        if self.name == "fake":
            # Development: say where to read the code; the code itself stays on the fake server's page.
            log.info("message sent to %s via the fake SMS gateway; see %s", _mask(params["PhoneNumbers"]),
                     self.cfg.fake_url)
        return SmsReceipt(self.name, str(body.get("BizId") or body.get("RequestId") or ""))


def _mask(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"
