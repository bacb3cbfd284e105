"""Run a Sanic app on a free loopback port in a background thread.

Tests and the benchmark use it to serve the channel and the fake WeChat API
while talking to them over real HTTP from the main thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable
from concurrent.futures import Future
from typing import Any, TypeVar

from sanic import Sanic

T = TypeVar("T")


class LocalServer:
    """``with LocalServer(app) as srv: requests.get(srv.url + "/")``."""

    def __init__(self, app: Sanic, host: str = "127.0.0.1") -> None:
        # Several apps in one process: Sanic's start-up code rewriting breaks on
        # the second app unless it runs in test mode (which keeps the originals).
        Sanic.test_mode = True
        self.app = app
        self.host = host
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=f"sanic-{app.name}", daemon=True)
        self._ready: Future[None] = Future()
        self._server: Any = None

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))  # the OS picks a free port; no race
            self.port = sock.getsockname()[1]
            server = self.loop.run_until_complete(
                self.app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
            )
            assert server is not None  # return_asyncio_server=True always returns one
            self.loop.run_until_complete(server.startup())
            self.loop.run_until_complete(server.before_start())
            self.loop.run_until_complete(server.after_start())
            self.loop.run_until_complete(server.start_serving())
            self._server = server
        except Exception as exc:  # noqa: BLE001 - reported to the caller of start()
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        self.loop.run_forever()

    def start(self) -> LocalServer:
        """Start serving; returns once the port accepts connections."""
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def call(self, coro: Awaitable[T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Run the stop listeners, close the server and end the thread."""
        if self._server is not None:
            server = self._server

            async def shutdown() -> None:
                await server.before_stop()
                server.close()
                await server.wait_closed()
                await server.after_stop()

            try:
                self.call(shutdown())
            finally:
                self._server = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:  # noqa: PYI034 - no typing.Self on Python 3.10
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
