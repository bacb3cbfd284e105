"""Reply XML that cannot be broken by its text, and texts cut to WeChat's size.

wechatpy's reply classes put text into CDATA as is, so a reply containing
``]]>`` would close the section early and corrupt (or inject into) the XML.
"""

from __future__ import annotations

import re
import time

# Characters XML 1.0 forbids even inside CDATA; WeChat would reject the reply.
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Drop characters that XML cannot carry."""
    return _INVALID_XML_CHARS.sub("", text)


def cdata(text: str) -> str:
    """Wrap text in CDATA, splitting any ``]]>`` across two sections."""
    return "<![CDATA[" + clean_text(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_text_reply(to_user: str, from_user: str, content: str, create_time: int | None = None) -> str:
    """The passive-reply XML for one text message."""
    created = int(time.time()) if create_time is None else create_time
    return (
        "<xml>"
        f"<ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content>"
        "</xml>"
    )


def utf8_len(text: str) -> int:
    """Size of ``text`` as WeChat counts it (UTF-8 bytes)."""
    return len(text.encode("utf-8"))


def split_text(text: str, max_bytes: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes.

    Cuts prefer a line break, then a space, and never fall inside a character.
    """
    text = text.strip()
    pieces: list[str] = []
    while utf8_len(text) > max_bytes:
        # The longest prefix within the limit, found on the encoded bytes.
        prefix = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
        cut = max(prefix.rfind("\n"), prefix.rfind(" "))
        if cut < len(prefix) // 2:  # no good break near the end: cut hard
            cut = len(prefix)
        pieces.append(prefix[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def pack_texts(texts: list[str], max_bytes: int, separator: str = "\n\n") -> list[str]:
    """Join consecutive texts into as few messages as fit ``max_bytes`` each.

    Fewer messages means fewer customer-service sends, which WeChat rations.
    """
    packed: list[str] = []
    for text in texts:
        for piece in split_text(text, max_bytes):
            if packed and utf8_len(packed[-1] + separator + piece) <= max_bytes:
                packed[-1] = packed[-1] + separator + piece
            else:
                packed.append(piece)
    return packed
