"""What the console itself says to a shopper (everything else comes from the assistant's domain)."""

from __future__ import annotations

AGENT_JOINED = {
    "zh": "你好，我是客服{name}，很高兴为你服务😊",
    "en": "Hi, I'm {name} from customer service. Happy to help 😊",
}


def agent_joined(language: str, name: str) -> str:
    """The greeting sent when an agent takes the conversation, in the shopper's language."""
    return AGENT_JOINED.get(language, AGENT_JOINED["zh"]).format(name=name)
