"""Talking to the agent console from sync tests: accounts, login, its live websocket."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import requests
import websockets

from loyalty import db
from loyalty.handoff import auth

PW = "correct horse battery"
H = {"X-Console": "1"}  # the header every console write needs


class HasConsole(Protocol):
    @property
    def console(self) -> str: ...


class WsClient:
    """A websocket read in a background loop; ``wait`` returns the first frame matching."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        headers = dict(headers or {})
        origin = headers.pop("Origin", url.replace("ws://", "http://").split("/webhooks")[0])
        async def connect() -> Any:  # built inside the loop: the constructor looks for the running loop
            return await websockets.connect(url, extra_headers=headers, origin=origin)

        self.ws = self._run(connect())
        asyncio.run_coroutine_threadsafe(self._read(), self.loop)

    def _run(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.put(json.loads(raw))
        except Exception:
            pass
        self.frames.put(None)

    def send(self, data: dict[str, Any]) -> None:
        self._run(self.ws.send(json.dumps(data)))

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if frame is None:
                raise AssertionError(f"socket closed; frames seen: {self.seen}")
            self.seen.append(frame)
            if pred(frame):
                return frame
        raise AssertionError(f"no matching frame within {timeout}s; seen: {self.seen}")

    def closed(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = self.frames.get(timeout=0.2)
            except queue.Empty:
                continue
            if frame is None:
                return True
            self.seen.append(frame)
        return False

    def close(self) -> None:
        try:
            self._run(self.ws.close(), timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


def agent(name: str, role: str = "agent", display: str | None = None) -> int:
    """A console account with the shared test password; returns its id."""
    return db.run(auth.create_agent, name, PW, role=role, display_name=display).id


def console_login(target: HasConsole, name: str) -> requests.Session:
    """A logged-in HTTP session for ``name`` on a served console (a test app or the whole stack)."""
    http = requests.Session()
    r = http.post(target.console + "/api/login", json={"username": name, "password": PW}, headers=H, timeout=60)
    assert r.status_code == 200, r.text
    return http


def console_socket(target: HasConsole, http: requests.Session) -> WsClient:
    """The console's live socket for a logged-in session, after the queue snapshot every console gets first."""
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    ws = WsClient(target.console.replace("http://", "ws://") + "/ws", {"Cookie": cookie})
    ws.wait(lambda f: f.get("type") == "queue")
    return ws
