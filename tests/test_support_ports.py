"""The tests' port picker never names one port twice, so two servers of one test cannot collide."""

from __future__ import annotations

import socket

from tests.support.servers import free_port


def test_free_port_never_repeats_within_a_process() -> None:
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
