"""What the console itself says to a shopper (everything else comes from the assistant's domain)."""

from __future__ import annotations

AGENT_JOINED = {
    "zh": "你好，我是客服{name}，很高兴为你服务😊",
    "en": "Hi, I'm {name} from customer service. Happy to help 😊",
}


def agent_joined(language: str, name: str) -> str:
    """The greeting sent when an agent takes the conversation, in the shopper's language."""
    return AGENT_JOINED.get(language, AGENT_JOINED["zh"]).format(name=name)


LINK_CODE_SENT = {
    "zh": "验证码已发送到 {phone}📩 {minutes}分钟内有效，请直接回复6位数字，完成会员卡绑定。",
    "en": "I've texted a code to {phone} 📩 It's valid for {minutes} min: reply with the 6 digits "
          "to link your membership.",
}


def link_code_sent(language: str, phone: str, minutes: int) -> str:
    """Told to the shopper when an agent starts a link: where the code went."""
    return LINK_CODE_SENT.get(language, LINK_CODE_SENT["zh"]).format(phone=phone, minutes=minutes)
