"""Several Rasa event brokers at once: endpoints.yml names one broker, this one hands each event to a list.

Configure in endpoints.yml::

    event_broker:
      type: bot.brokers.Brokers
      brokers:
        - bot.console.broker.ConsoleBroker
        - bot.nlu_review.ReviewBroker

Each listed class is created with its own ``from_endpoint_config``; one that
fails to publish is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from asyncio import AbstractEventLoop
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.shared.utils.common import class_from_module_path
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)


class Brokers(EventBroker):
    """Publishes every event to each of its brokers, in order."""

    def __init__(self, brokers: list[EventBroker]) -> None:
        self.brokers = brokers

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> Brokers:
        names = list((broker_config.kwargs or {}).get("brokers") or [])
        brokers: list[EventBroker] = []
        for name in names:
            broker_class = class_from_module_path(str(name))
            brokers.append(await broker_class.from_endpoint_config(EndpointConfig(type=str(name)), event_loop))
        return cls(brokers)

    def publish(self, event: dict[str, Any]) -> None:
        for broker in self.brokers:
            try:
                broker.publish(event)
            except Exception:
                log.exception("event broker %s failed to publish", type(broker).__name__)

    def is_ready(self) -> bool:
        return all(b.is_ready() for b in self.brokers)

    async def close(self) -> None:
        for broker in self.brokers:
            try:
                await broker.close()
            except Exception:
                log.exception("event broker %s failed to close", type(broker).__name__)
