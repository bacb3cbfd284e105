"""The agent console as a Rasa input channel, so it runs inside the Rasa server.

Mount it in credentials.yml (it serves /webhooks/console/)::

    bot.console.channel.ConsoleInput: {}

and add the event broker to endpoints.yml so shoppers' messages reach it::

    event_broker:
      type: bot.console.broker.ConsoleBroker

Being inside the server gives the console the agent's tracker and lock
stores (``request.app.ctx.agent``) and the other channels
(``request.app.ctx.input_channels``) to reply through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint

from bot import ops
from bot.console import api
from bot.settings import ConsoleSettings, load_console_settings

# Rasa imports the channels before the first message: apologise instead of going silent,
# count and log every turn (bot/ops.py).
ops.install()


class ConsoleInput(InputChannel):
    """Serves the console page, its JSON API and its websocket; shoppers never write here."""

    @classmethod
    def name(cls) -> str:
        return "console"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> ConsoleInput:
        """Every key of credentials.yml overrides the CONSOLE_* variable of the same name."""
        return cls(load_console_settings(**(credentials or {})))

    def __init__(self, settings: ConsoleSettings | None = None) -> None:
        self.settings = settings or load_console_settings()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return api.build(self.settings)
