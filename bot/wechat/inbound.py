"""Turn a parsed WeChat callback into what the channel should do with it.

Text goes to the assistant as typed; store QR scans and follows become a
``store_visit`` intent carrying the store code; menu clicks become the intent
configured for their key; media the assistant cannot read get a fixed polite
reply; other events are acknowledged and dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from wechatpy import events, messages
from wechatpy.messages import BaseMessage

from bot.limits import too_long_reply
from bot.settings import DEFAULT_MAX_TEXT_CHARS
from bot.wechat import texts

logger = logging.getLogger(__name__)

# Scene strings we accept as store codes; anything else is not ours to trust.
_STORE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Action = Literal["bot", "reply", "ignore"]
Window = Literal["message", "event"]


@dataclass(frozen=True)
class Inbound:
    """One callback, classified.

    ``action`` is "bot" (send ``text`` to the assistant), "reply" (answer
    ``text`` directly) or "ignore". ``window`` is the customer-service window
    the shopper's interaction opens, if any. ``typed`` marks free text typed by
    the shopper, as opposed to text the channel composed.
    """

    action: Action
    openid: str
    account: str
    label: str
    text: str = ""
    window: Window | None = None
    typed: bool = False
    store_code: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Subscription-message templates the shopper accepted (订阅通知 pop-up): one send credit each.
    accepted: tuple[str, ...] = ()
    # Templates the shopper refused in WeChat's notification settings: their open credits are revoked.
    refused: tuple[str, ...] = ()
    # Subscription messages WeChat reports sent: (template id, "success" or "failed:…").
    sent: tuple[tuple[str, str], ...] = ()
    # When WeChat says the shopper acted (CreateTime), for events whose order matters.
    occurred_at: datetime | None = None


def intent_message(intent: str, entities: Mapping[str, Any] | None = None) -> str:
    """Rasa's direct-intent syntax: ``/intent{"entity": value}``."""
    if not entities:
        return "/" + intent
    return "/" + intent + json.dumps(dict(entities), ensure_ascii=False, separators=(",", ":"))


def neutralise(text: str) -> str:
    """Stop typed text from posing as a direct intent (``/restart``, ``/store_visit{...}``).

    Rasa treats a leading slash as "this is the intent"; a shopper must not be
    able to attribute themselves to a store or restart a paused conversation.
    """
    text = text.strip()
    return "／" + text[1:] if text.startswith("/") else text


def store_code_of(scene: str | None) -> str | None:
    """The store code in a QR scene string, or None when absent or malformed."""
    if not scene:
        return None
    if _STORE_CODE.match(scene):
        return scene
    logger.warning("wechat qr scene ignored: not a store code (len=%d)", len(scene))
    return None


def classify(
    message: BaseMessage, menu_intents: Mapping[str, str], max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> Inbound:
    """Decide what to do with one parsed callback.

    A text longer than ``max_text_chars`` is refused with a short reply in the
    shopper's language rather than cut: the shopper cannot edit a sent WeChat
    message, but can send a shorter one, and the start of a long text would
    likely be misunderstood. The passive reply costs no customer-service quota.
    """
    base = {"openid": message.source, "account": message.target}

    if isinstance(message, messages.TextMessage):
        content = (message.content or "").strip()
        if not content:
            return Inbound("ignore", label="text", window="message", **base)
        if len(content) > max_text_chars:
            reply = too_long_reply(content, max_text_chars)
            return Inbound("reply", label="text_too_long", text=reply, window="message", **base)
        return Inbound(
            "bot",
            label="text",
            text=content,
            window="message",
            typed=True,
            metadata=_metadata(None, None),
            **base,
        )

    if isinstance(message, events.SubscribeScanEvent | events.ScanEvent | events.SubscribeEvent):
        first_follow = not isinstance(message, events.ScanEvent)
        label = "scan" if not first_follow else "subscribe"
        code = store_code_of(getattr(message, "scene_id", None))
        entities: dict[str, Any] = {"first_follow": first_follow}
        if code:
            entities = {"store_code": code, **entities}
        return Inbound(
            "bot",
            label=label,
            text=intent_message("store_visit", entities),
            window="event",
            store_code=code,
            metadata=_metadata(code, label),
            **base,
        )

    if isinstance(message, events.ClickEvent):
        intent = menu_intents.get(message.key or "")
        if intent is None:
            logger.warning("wechat menu key not mapped to an intent: %r", message.key)
            return Inbound("reply", label="click", text=texts.UNKNOWN_MENU_ITEM, window="event", **base)
        return Inbound(
            "bot",
            label="click",
            text=intent_message(intent),
            window="event",
            metadata=_metadata(None, "click"),
            **base,
        )

    raw_type = str(message._data.get("MsgType", "")).lower()
    event = str(message._data.get("Event", "")).lower()
    if raw_type == "event" and event == SUBSCRIBE_POPUP:
        # Not a conversation: no window opens and the assistant is not asked.
        return Inbound("ignore", label=SUBSCRIBE_POPUP, accepted=accepted_templates(message._data),
                       occurred_at=_created(message), **base)
    if raw_type == "event" and event == SUBSCRIBE_CHANGE:
        # The shopper turned templates off in WeChat's settings: their credits are void.
        return Inbound("ignore", label=SUBSCRIBE_CHANGE, refused=templates_marked(message._data, "reject"),
                       occurred_at=_created(message), **base)
    if raw_type == "event" and event == SUBSCRIBE_SENT:
        # WeChat's report of subscription messages sent: settles sends left in doubt by a crash.
        return Inbound("ignore", label=SUBSCRIBE_SENT, sent=sent_results(message._data),
                       occurred_at=_created(message), **base)
    if isinstance(message, events.BaseEvent) or raw_type == "event":
        # unsubscribe, view, location reports, job notifications: nothing to say.
        return Inbound("ignore", label=str(message._data.get("Event", "event")).lower(), **base)

    # Voice, image, location, video, link and unknown message types.
    return Inbound(
        "reply", label=message.type or "unknown", text=texts.UNSUPPORTED_MESSAGE, window="message", **base
    )


SUBSCRIBE_POPUP = "subscribe_msg_popup_event"
SUBSCRIBE_CHANGE = "subscribe_msg_change_event"
SUBSCRIBE_SENT = "subscribe_msg_sent_event"
# WeChat's documented sample wraps a change event's list in the pop-up's element; read both names.
_SUBSCRIBE_LISTS = ("SubscribeMsgPopupEvent", "SubscribeMsgChangeEvent")


def templates_marked(data: Mapping[str, Any], status: str) -> tuple[str, ...]:
    """The template ids marked ``status`` ("accept" or "reject") in a subscription event, once each, in order.

    One item parses as a dict rather than a list; shapes WeChat does not send yield nothing."""
    out: list[str] = []
    for element in _SUBSCRIBE_LISTS:
        wrapper = data.get(element)
        items = wrapper.get("List") if isinstance(wrapper, Mapping) else None
        for item in [items] if isinstance(items, Mapping) else items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            template, said = item.get("TemplateId"), item.get("SubscribeStatusString")
            if isinstance(template, str) and template.strip() and said == status:
                out.append(template.strip())
    return tuple(dict.fromkeys(out))


def sent_results(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(template id, ErrorStatus) of each message in a subscription "sent" report ("success", or
    "failed:user block", "failed:system failed"); shapes WeChat does not send yield nothing."""
    wrapper = data.get("SubscribeMsgSentEvent")
    items = wrapper.get("List") if isinstance(wrapper, Mapping) else None
    out = []
    for item in [items] if isinstance(items, Mapping) else items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        template, status = item.get("TemplateId"), item.get("ErrorStatus")
        if isinstance(template, str) and template.strip() and isinstance(status, str) and status.strip():
            out.append((template.strip(), status.strip()[:40]))
    return tuple(out)


def accepted_templates(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The template ids the shopper accepted in a subscription pop-up: one send credit each."""
    return templates_marked(data, "accept")


def _created(message: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(message._data.get("CreateTime")), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _metadata(store_code: str | None, event: str | None) -> dict[str, Any]:
    return {"channel": "wechat", "store_code": store_code, "wechat_event": event}
