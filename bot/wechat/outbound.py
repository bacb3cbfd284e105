"""Rasa output channels that render the assistant's messages as WeChat text.

WeChat chat has text only: buttons become numbered choices ("1. …"), answered
by number or by typing the title (bot/wechat/shoppers.py),
images and attachments become links, and custom payloads with a ``text`` are
shown as that text. An image given as a PNG ``data:`` URL (the member code)
is uploaded and sent as an image message.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from typing import Any

from rasa.core.channels.channel import OutputChannel

from bot.buttons import Offer
from bot.wechat.delivery import Delivery
from bot.wechat.shoppers import ShopperState

logger = logging.getLogger(__name__)


def render_buttons(text: str, buttons: list[dict[str, Any]], first: int = 1) -> tuple[str, list[Offer]]:
    """``text`` followed by one numbered line per button, and the (title, payload) choices by number."""
    lines = [text.strip()] if text and text.strip() else []
    choices: list[Offer] = []
    for button in buttons:
        title = str(button.get("title") or button.get("payload") or "").strip()
        payload = button.get("payload")
        if payload is None and button.get("url"):
            lines.append(f"{title}: {button['url']}")  # a link needs no number
            continue
        choices.append((title, str(payload if payload is not None else title)))
        lines.append(f"{first + len(choices) - 1}. {title}")
    return "\n".join(lines), choices


class _WeChatText(OutputChannel):
    """Turns every kind of Rasa message into text and hands it to :meth:`_emit`."""

    def __init__(self) -> None:
        self.choices: list[Offer] = []  # (title, payload) of the buttons shown this turn

    @classmethod
    def name(cls) -> str:
        return "wechat"

    async def _emit(self, recipient_id: str, text: str) -> None:
        raise NotImplementedError

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._emit(recipient_id, text)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        # Number on from earlier buttons of the same turn so every number is unique.
        rendered, choices = render_buttons(text, buttons, first=len(self.choices) + 1)
        self.choices.extend(choices)
        await self._emit(recipient_id, rendered)

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        png = png_of(image)
        if png is not None:
            await self._emit_image(recipient_id, png)
        else:
            # Chat images need a media upload; a link works everywhere.
            await self._emit(recipient_id, image)

    async def _emit_image(self, recipient_id: str, png: bytes) -> None:
        raise NotImplementedError

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self._emit(recipient_id, str(attachment))

    async def send_elements(
        self, recipient_id: str, elements: Iterable[dict[str, Any]], **kwargs: Any
    ) -> None:
        for element in elements:
            heading = " - ".join(str(element[k]) for k in ("title", "subtitle") if element.get(k))
            await self.send_text_with_buttons(recipient_id, heading, element.get("buttons") or [])

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        text = json_message.get("text") if isinstance(json_message, dict) else None
        if isinstance(text, str) and text.strip():
            await self._emit(recipient_id, text)
        else:
            logger.debug("wechat output: custom payload without text ignored")


class TurnCollector(_WeChatText):
    """Collects one turn's texts so the channel can choose passive reply or push (images are always pushed)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.images: list[bytes] = []
        self._taken = 0

    async def _emit(self, recipient_id: str, text: str) -> None:
        if text and text.strip():
            self.texts.append(text)

    async def _emit_image(self, recipient_id: str, png: bytes) -> None:
        self.images.append(png)

    def take_new(self) -> list[str]:
        """Texts collected since the last call."""
        new = self.texts[self._taken :]
        self._taken = len(self.texts)
        return new


class PushOutput(_WeChatText):
    """Sends each message at once via the customer-service API.

    Used when Rasa speaks without a callback to answer: agent replies during a
    handoff, reminders, or ``trigger_intent`` calls.
    """

    def __init__(self, delivery: Delivery, state: ShopperState) -> None:
        super().__init__()
        self._delivery = delivery
        self._state = state

    async def _emit(self, recipient_id: str, text: str) -> None:
        await self._delivery.send(recipient_id, [text])

    async def _emit_image(self, recipient_id: str, png: bytes) -> None:
        await self._delivery.send_image(recipient_id, png)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        self.choices = []  # pushed messages stand alone: number from 1 each time
        await super().send_text_with_buttons(recipient_id, text, buttons)
        await self._state.save_choices(recipient_id, self.choices)


_PNG_DATA = "data:image/png;base64,"
MAX_IMAGE_BYTES = 2 * 1024 * 1024  # WeChat's limit for a temporary image


def png_of(image: str) -> bytes | None:
    """The PNG in a ``data:image/png;base64,…`` URL, or None for anything else."""
    if not isinstance(image, str) or not image.startswith(_PNG_DATA):
        return None
    try:
        png = base64.b64decode(image[len(_PNG_DATA):], validate=True)
    except (binascii.Error, ValueError):
        return None
    return png if png.startswith(b"\x89PNG") and len(png) <= MAX_IMAGE_BYTES else None
