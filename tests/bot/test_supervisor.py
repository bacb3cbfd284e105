"""The launcher's supervisor with tiny real child processes and a hand-moved clock."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from bot import launcher
from bot.launcher import Child, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    kids = [Child("steady", SLEEPER, None), Child("flaky", SLEEPER, None)]
    yield kids
    Supervisor(kids).stop()


def _exit(child: Child) -> None:
    assert child.proc is not None
    child.proc.kill()
    child.proc.wait(10)


def test_dead_child_restarts_with_doubling_capped_pause(clock: Clock, children: list[Child]) -> None:
    steady, flaky = children
    sup = Supervisor(children, clock=clock)
    sup.start_all()
    steady_pid = steady.proc.pid  # type: ignore[union-attr]
    pauses = []
    for _ in range(7):
        _exit(flaky)
        sup.check()
        assert flaky.restart_at is not None
        pauses.append(flaky.restart_at - clock.now)
        clock.now = flaky.restart_at
        sup.check()
        assert flaky.proc is not None and flaky.proc.poll() is None  # running again
        clock.now += 1  # crashed again soon after
    assert pauses == [1, 2, 4, 8, 16, 30, 30]
    assert steady.proc is not None and steady.proc.pid == steady_pid and steady.proc.poll() is None


def test_a_child_that_stayed_up_starts_again_from_the_first_pause(clock: Clock, children: list[Child]) -> None:
    _, flaky = children
    sup = Supervisor(children, clock=clock)
    sup.start_all()
    flaky.failures = 5
    clock.now += launcher.STABLE_AFTER
    _exit(flaky)
    sup.check()
    assert flaky.restart_at == clock.now + 1


def test_no_restart_once_stopping(clock: Clock) -> None:
    crasher = Child("crasher", CRASHER, None)
    sup = Supervisor([crasher], clock=clock)
    sup.start_all()
    assert crasher.proc is not None
    crasher.proc.wait(10)
    sup.stop()
    first = crasher.proc
    clock.now += 100
    sup.check()
    assert crasher.proc is first


def test_run_returns_when_the_foreground_child_exits() -> None:
    shell = Child("shell", CRASHER, None)
    sup = Supervisor([shell])
    sup.start_all()
    started = time.monotonic()
    assert sup.run(foreground=shell, poll=0.05) == 3
    assert time.monotonic() - started < 10
