"""Authenticate WeChat callbacks and seal passive replies.

Every request is signed with the token shared with WeChat: SHA-1 over the
sorted token, timestamp and nonce (plus the ciphertext in AES "safe" mode).
The mode is chosen per request by ``encrypt_type``, as WeChat's "compatible"
setting sends either. Timestamps far from our clock are refused so that a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException

from bot.settings import WeChatSettings, aes_key_bytes
from bot.wechat.xml import cdata


class CallbackRejected(Exception):
    """The request is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class CallbackAuth:
    """What a verified request tells us about how to answer it."""

    encrypted: bool
    nonce: str
    timestamp: str


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


class CallbackSecurity:
    """Verifies requests for one official account and encrypts its replies."""

    def __init__(self, settings: WeChatSettings) -> None:
        self._token = settings.token
        self._app_id = settings.app_id
        self._skew = settings.max_clock_skew
        self._key = aes_key_bytes(settings.aes_key) if settings.aes_key else None

    def _check_time(self, timestamp: str) -> None:
        try:
            sent = int(timestamp)
        except ValueError:
            raise CallbackRejected(403, "bad timestamp") from None
        if abs(time.time() - sent) > self._skew:
            raise CallbackRejected(403, "stale timestamp")

    def _check_sig(self, expected_parts: tuple[str, ...], given: str) -> None:
        if not given or not hmac.compare_digest(signature(*expected_parts), given):
            raise CallbackRejected(403, "bad signature")

    def verify_url(self, args: Mapping[str, str]) -> str:
        """Check WeChat's GET verification; return the ``echostr`` to echo back."""
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        self._check_sig((self._token, timestamp, nonce), args.get("signature", ""))
        self._check_time(timestamp)
        return args.get("echostr", "")

    def verify_request(self, args: Mapping[str, str]) -> None:
        """Check what a POST callback's URL alone proves, before its body is read.

        WeChat signs the token, timestamp and nonce into ``signature`` in
        both modes (AES mode adds ``msg_signature`` over the ciphertext). An
        unsigned or stale request is thus refused before its body costs a
        read, a parse or a decryption.
        """
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        self._check_sig((self._token, timestamp, nonce), args.get("signature", ""))
        self._check_time(timestamp)

    def open_callback(self, args: Mapping[str, str], body: bytes) -> tuple[str, CallbackAuth]:
        """Verify a POST callback and return its plain XML."""
        timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
        mode = args.get("encrypt_type", "raw") or "raw"
        self.verify_request(args)
        if mode == "raw":
            try:
                return body.decode("utf-8"), CallbackAuth(False, nonce, timestamp)
            except UnicodeDecodeError:
                raise CallbackRejected(400, "body is not UTF-8") from None
        if mode != "aes":
            raise CallbackRejected(400, f"unknown encrypt_type {mode!r}")
        if self._key is None:
            raise CallbackRejected(400, "AES callback but WECHAT_AES_KEY is not set")
        try:
            encrypt = xmltodict.parse(body)["xml"]["Encrypt"]
        except (ExpatError, KeyError, TypeError):
            raise CallbackRejected(400, "no Encrypt element") from None
        self._check_sig((self._token, timestamp, nonce, encrypt), args.get("msg_signature", ""))
        self._check_time(timestamp)
        try:
            plain = PrpCrypto(self._key).decrypt(encrypt, self._app_id)
        except (InvalidAppIdException, ValueError, IndexError, struct.error):
            # Wrong app id, padding, length or base64: all mean "not for us".
            raise CallbackRejected(400, "cannot decrypt") from None
        return plain, CallbackAuth(True, nonce, timestamp)

    def seal_reply(self, xml: str, auth: CallbackAuth) -> str:
        """The reply as WeChat expects it: encrypted and signed in AES mode."""
        if not auth.encrypted or self._key is None:
            return xml
        return encrypt_envelope(self._token, self._key, self._app_id, xml, auth.nonce)


def encrypt_envelope(token: str, key: bytes, app_id: str, xml: str, nonce: str) -> str:
    """Encrypt ``xml`` into WeChat's signed ``<Encrypt>`` envelope."""
    timestamp = str(int(time.time()))
    encrypt = PrpCrypto(key).encrypt(xml, app_id).decode("ascii")
    return (
        "<xml>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature(token, timestamp, nonce, encrypt)}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce>{cdata(nonce)}</Nonce>"
        "</xml>"
    )
