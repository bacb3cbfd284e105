"""The tills' API served for real on a free loopback port, for tests that speak HTTP to it."""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import Future
from typing import Any

from sanic import Sanic


class LiveServer:
    """A Sanic app served from its own event loop in a background thread."""

    def __init__(self, app: Sanic) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # the OS picks a free port; no race
        self.port = self.sock.getsockname()[1]
        self._ready: Future[None] = Future()
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            srv = self.loop.run_until_complete(self.app.create_server(sock=self.sock, return_asyncio_server=True))
            for step in (srv.startup, srv.before_start, srv.after_start, srv.start_serving):
                self.loop.run_until_complete(step())
            self._server = srv
        except BaseException as exc:  # hand start-up failures to the test
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        self.loop.run_forever()

    def start(self) -> str:
        self._thread.start()
        self._ready.result(timeout=30)
        return f"http://127.0.0.1:{self.port}/api/v1"

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._server.before_stop()
            self._server.close()
            await self._server.wait_closed()
            await self._server.after_stop()

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
