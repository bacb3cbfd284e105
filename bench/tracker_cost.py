"""What the tracker store and the policies' featurisation cost per turn, at turn N against turn 1 (in process).

Plays a conversation turn by turn as Rasa's processor does (retrieve, add the
turn's events, featurise the tracker as a policy does, save) into Rasa's own
``SQLTrackerStore`` and into ``BoundedSQLTrackerStore`` on SQLite, and prints
the median milliseconds of the first and the last ``--window`` turns of each,
and their ratio. The whole assistant's turns are in ``bench/turn_cost.py``.

    .venv/bin/python -m bench.tracker_cost [--turns 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted

from bot.tracker_store import BoundedSQLTrackerStore
from tests.bot.test_tracker_store import turn

ROOT = Path(__file__).resolve().parent.parent


def play(store: SQLTrackerStore, domain: Domain, turns: int) -> list[float]:
    times: list[float] = []

    async def go() -> None:
        for i in range(turns):
            t = time.perf_counter()
            tracker = await store.retrieve("shopper")
            if tracker is None:
                tracker = store.init_tracker("shopper")
                for e in [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]:
                    tracker.update(e)
            for e in turn(i % 8 if i % 8 not in (4, 9, 12) else 0):
                tracker.update(e, domain)
                tracker.past_states(domain)  # a policy featurising before each action
            await store.save(tracker)
            times.append((time.perf_counter() - t) * 1000)
    asyncio.run(go())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()
    domain = Domain.load(str(ROOT / "domain"))
    work = Path(tempfile.mkdtemp(prefix="tracker-cost-"))
    print(f"{args.turns} turns on SQLite; median ms of retrieve + featurise + save per turn")
    for label, cls in (("Rasa's SQLTrackerStore", SQLTrackerStore), ("BoundedSQLTrackerStore", BoundedSQLTrackerStore)):
        store = cls(domain=domain, dialect="sqlite", db=str(work / f"{cls.__name__}.db"))
        times = play(store, domain, args.turns)
        first = statistics.median(times[: args.window])
        last = statistics.median(times[-args.window:])
        print(f"  {label:24} turns 1–{args.window}: {first:7.1f}   turns {args.turns - args.window + 1}–{args.turns}: "
              f"{last:7.1f}   ×{last / first:.2f}")


if __name__ == "__main__":
    main()
