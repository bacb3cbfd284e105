"""Play WeChat's side of a callback: build, sign and encrypt it; open the reply.

Used by ``python -m bot.wechat.dev.play``, the channel tests and the benchmark, so
all three exercise exactly what WeChat's servers would send.
"""

from __future__ import annotations

import hmac
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import xmltodict
from wechatpy.crypto import PrpCrypto

from bot.settings import aes_key_bytes
from bot.wechat.security import encrypt_envelope, signature
from bot.wechat.xml import cdata


def new_msg_id() -> int:
    """A MsgId like WeChat's (a 64-bit number)."""
    return random.randint(10**18, 9 * 10**18)


@dataclass(frozen=True)
class Reply:
    """What the channel answered: ``success`` (text None) or a passive message."""

    raw: str
    fields: dict[str, Any] | None

    @property
    def text(self) -> str | None:
        """The passive reply's text, or None for ``success``."""
        return None if self.fields is None else self.fields.get("Content")


@dataclass(frozen=True)
class WeChatSide:
    """One official account as WeChat's servers see it."""

    token: str
    app_id: str
    aes_key: str | None = None
    account: str = "gh_0123456789ab"  # the account's original id (ToUserName)

    # ---------------------------------------------------------- callback bodies

    def _xml(self, openid: str, msg_type: str, fields: dict[str, str], create_time: int | None) -> str:
        created = int(time.time()) if create_time is None else create_time
        parts = [
            f"<ToUserName>{cdata(self.account)}</ToUserName>",
            f"<FromUserName>{cdata(openid)}</FromUserName>",
            f"<CreateTime>{created}</CreateTime>",
            f"<MsgType>{cdata(msg_type)}</MsgType>",
        ]
        parts += [f"<{name}>{cdata(value)}</{name}>" for name, value in fields.items()]
        return "<xml>" + "".join(parts) + "</xml>"

    def text(
        self, openid: str, content: str, *, msg_id: int | None = None, create_time: int | None = None
    ) -> str:
        """A text message callback."""
        fields = {"Content": content, "MsgId": str(msg_id or new_msg_id())}
        return self._xml(openid, "text", fields, create_time)

    def event(
        self, openid: str, event: str, key: str | None = None, *, create_time: int | None = None
    ) -> str:
        """An event callback (``subscribe``, ``SCAN``, ``CLICK``, ``unsubscribe``…)."""
        fields = {"Event": event}
        if key is not None:
            fields["EventKey"] = key
        if event in ("subscribe", "SCAN") and key:
            fields["Ticket"] = "fake-ticket"
        return self._xml(openid, "event", fields, create_time)

    def subscribe(self, openid: str, store: str | None = None, **kw: Any) -> str:
        """A follow, through a store's QR code when ``store`` is given."""
        return self.event(openid, "subscribe", f"qrscene_{store}" if store else None, **kw)

    def scan(self, openid: str, store: str, **kw: Any) -> str:
        """A follower scanning a store's QR code."""
        return self.event(openid, "SCAN", store, **kw)

    def subscribe_popup(
        self, openid: str, choices: list[tuple[str, str]], *, create_time: int | None = None
    ) -> str:
        """The shopper's answers in a subscription-message pop-up: (template id, "accept" | "reject")."""
        return self._subscription_event(openid, "subscribe_msg_popup_event", "SubscribeMsgPopupEvent",
                                        choices, "<PopupScene>2</PopupScene>", create_time)

    def subscribe_change(
        self, openid: str, refused: list[str], *, create_time: int | None = None,
        element: str = "SubscribeMsgPopupEvent",
    ) -> str:
        """The shopper turned these templates off in WeChat's notification settings (only refusals are sent).

        WeChat's documented sample wraps the list in ``SubscribeMsgPopupEvent``; ``element`` plays the other name."""
        return self._subscription_event(openid, "subscribe_msg_change_event", element,
                                        [(t, "reject") for t in refused], "", create_time)

    def subscribe_sent(
        self, openid: str, results: list[tuple[str, str]], *, create_time: int | None = None,
    ) -> str:
        """WeChat's report of subscription messages it delivered or not: (template id, ErrorStatus), e.g.
        ("T", "success") or ("T", "failed:user block")."""
        items = "".join(
            f"<List><TemplateId>{cdata(template)}</TemplateId><MsgID>{new_msg_id()}</MsgID>"
            f"<ErrorCode>{0 if status == 'success' else 20001}</ErrorCode>"
            f"<ErrorStatus>{cdata(status)}</ErrorStatus></List>"
            for template, status in results
        )
        xml = self._xml(openid, "event", {"Event": "subscribe_msg_sent_event"}, create_time)
        return xml.replace("</xml>", f"<SubscribeMsgSentEvent>{items}</SubscribeMsgSentEvent></xml>")

    def _subscription_event(self, openid: str, event: str, element: str, choices: list[tuple[str, str]],
                            extra: str, create_time: int | None) -> str:
        items = "".join(
            f"<List><TemplateId>{cdata(template)}</TemplateId>"
            f"<SubscribeStatusString>{cdata(status)}</SubscribeStatusString>{extra}</List>"
            for template, status in choices
        )
        xml = self._xml(openid, "event", {"Event": event}, create_time)
        return xml.replace("</xml>", f"<{element}>{items}</{element}></xml>")

    def media(self, openid: str, msg_type: str, *, msg_id: int | None = None) -> str:
        """A message the assistant cannot read: image, voice, location, video."""
        fields = {
            "image": {"PicUrl": "http://example.invalid/p.jpg", "MediaId": "media-1"},
            "voice": {"MediaId": "media-2", "Format": "amr"},
            "location": {"Location_X": "31.23", "Location_Y": "121.47", "Scale": "15", "Label": "上海"},
            "video": {"MediaId": "media-3", "ThumbMediaId": "media-4"},
        }.get(msg_type, {})
        return self._xml(openid, msg_type, {**fields, "MsgId": str(msg_id or new_msg_id())}, None)

    # ---------------------------------------------------------- signing

    def sign(
        self,
        xml: str,
        *,
        aes: bool = False,
        timestamp: int | None = None,
        nonce: str | None = None,
        token: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Query parameters and body of the POST WeChat would send."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**10))
        tok = token or self.token
        params = {"signature": signature(tok, ts, nonce), "timestamp": ts, "nonce": nonce}
        if not aes:
            return params, xml.encode("utf-8")
        if not self.aes_key:
            raise ValueError("AES mode needs an EncodingAESKey")
        envelope = encrypt_envelope(tok, aes_key_bytes(self.aes_key), self.app_id, xml, nonce)
        encrypt = xmltodict.parse(envelope)["xml"]["Encrypt"]
        params.update(encrypt_type="aes", msg_signature=signature(tok, ts, nonce, encrypt))
        body = f"<xml><ToUserName>{cdata(self.account)}</ToUserName><Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        return params, body.encode("utf-8")

    def verification(self, echostr: str = "echo-123", *, timestamp: int | None = None) -> dict[str, str]:
        """Query parameters of WeChat's GET URL verification."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10))
        return {
            "signature": signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }

    # ---------------------------------------------------------- replies

    def open_reply(self, body: str) -> Reply:
        """Parse the channel's answer, checking and decrypting an AES envelope."""
        raw = body.strip()
        if raw in ("", "success"):
            return Reply(raw, None)
        fields = xmltodict.parse(raw)["xml"]
        if "Encrypt" in fields:
            if not self.aes_key:
                raise ValueError("encrypted reply but no EncodingAESKey")
            expected = signature(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
            if not hmac.compare_digest(expected, fields["MsgSignature"]):
                raise ValueError("reply signature does not match")
            plain = PrpCrypto(aes_key_bytes(self.aes_key)).decrypt(fields["Encrypt"], self.app_id)
            fields = xmltodict.parse(plain)["xml"]
        return Reply(raw, dict(fields))
