"""The running Rasa server of this process, for the parts Rasa builds without it (the event broker).

Rasa creates the event broker while loading the agent and never tells it
about the Sanic app; the console's blueprint attaches the app on start so
the broker can reach the agent's tracker and lock stores and the channels.
"""

from __future__ import annotations

from typing import Any

_app: Any = None


def attach(app: Any) -> None:
    """Remember the app serving this process (called by the console blueprint on start)."""
    global _app
    _app = app


def detach(app: Any) -> None:
    global _app
    if _app is app:
        _app = None


def app() -> Any:
    """The attached app, or None (no console in this process)."""
    return _app
