"""Pieces the browser-facing apps share (agent console, staff app): JSON bodies, client addresses, origin checks.

Nothing here imports Rasa, so the staff app, an entry point of the core, can use it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from sanic.request import Request

from loyalty.errors import InvalidInput

MAX_BODY = 16 * 1024


def json_body(request: Request) -> dict[str, Any]:
    if request.body and len(request.body) > MAX_BODY:
        raise InvalidInput("The request is too large.", code="too_large")
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise InvalidInput("The body is not JSON.", code="bad_json") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body is a JSON object.", code="bad_json")
    return data


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _host(hop: str) -> str:
    """An X-Forwarded-For entry without the port some proxies add ("[2001:db8::1]:443", "1.2.3.4:80")."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def _is_proxy(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The address a login is counted against.

    The socket's peer, unless it is one of our trusted proxies: then the
    X-Forwarded-For hops are read from the right (each proxy appends the
    address it saw) and the first hop that is not a trusted proxy is the
    client. Entries further left were written by the client itself; believing
    them would let an attacker pick the address their failures are counted
    against, and so dodge the per-address lock or lock out an agent's own
    address.
    """
    if not _is_proxy(peer, proxies):
        return peer
    hops = [_host(h) for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_proxy(hop, proxies):
            return hop
    return hops[0] if hops else peer  # proxies all the way: the farthest one known


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return True  # not a browser, or a same-origin GET that sends none
    return urlsplit(origin).netloc == request.headers.get("host", "")


