"""Rasa's per-message work made cheaper: what repeats is done once, the NLU off the event loop.

- **Event classes by name.** Every event read back (the tracker store's
  retrieve, each action server answer) goes through ``Event.resolve_by_type``,
  which walks the whole tree of ``Event`` subclasses (``all_subclasses``, with
  an ``inspect.isabstract`` per class) to find the one with that type name: a
  few hundred class checks per event, a few thousand per turn, about a tenth of
  the Rasa process's busy time under load. :func:`install` keeps the answer per
  name. A name not found yet is looked up the slow way again, so an event class
  imported later (a custom event) is still found.
- **The graph to run.** ``DaskGraphRunner.run`` cuts the schema down to the
  nodes its targets need (``minimal_graph_schema``, a walk over every node's
  dependencies) on every parse and every prediction; the schema never changes
  after loading, so the cut is kept per list of targets.

- **The NLU in its own thread.** Rasa parses a message on the event loop, so
  the sentence encoder (20-60 ms for a text it has not seen), DIET and the
  linear classifier hold up every other conversation's turn. :func:`install`
  runs the parse graph in one worker thread (:data:`NLU_THREADS`): the encoder's
  C code and TensorFlow's kernels release the GIL, so they run on the second
  core while the event loop predicts, calls actions and answers for other
  shoppers. One thread keeps the NLU components single-threaded as before.

- **Slots copied per tracker.** Every tracker Rasa builds (each retrieve from
  the tracker store, each copy) copies every slot of the domain with
  ``copy.copy``, which goes through the generic pickle protocol
  (``__reduce_ex__``, ``copyreg``, ``_reconstruct``): about 5 % of the busy
  time under load. ``Slot.__copy__`` makes the same shallow copy (a new object
  of the same class with the same attributes) directly; a slot class with its
  own ``__setstate__`` or ``__slots__`` still goes the generic way.

All four return what Rasa's own code returns (``tests/bot/test_hot_paths.py``).
``python -m bot.rasa_run`` (how the launcher starts Rasa) installs them.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NLU_THREADS = 1
_installed = False
_nlu: ThreadPoolExecutor | None = None


def install() -> None:
    """Apply all four (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    _cache_event_types()
    _cache_minimal_schemas()
    _parse_in_a_thread()
    _copy_slots_directly()


def _cache_event_types() -> None:
    from rasa.shared.core.events import Event

    resolve = Event.resolve_by_type  # a staticmethod, looked up on the class: a plain function
    found: dict[str, Any] = {}

    @functools.wraps(resolve)
    def resolve_by_type(type_name: str, default: Any = None) -> Any:
        cls = found.get(type_name)
        if cls is None:
            cls = resolve(type_name, default)
            # Only a real match is kept (not the default, not an unknown name).
            if cls is not None and cls is not default and getattr(cls, "type_name", None) == type_name:
                found[type_name] = cls
        return cls

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign,assignment]


def _cache_minimal_schemas() -> None:
    from rasa.engine.graph import GraphSchema

    minimal = GraphSchema.minimal_graph_schema
    cuts: dict[tuple[int, tuple[str, ...]], tuple[GraphSchema, GraphSchema]] = {}

    @functools.wraps(minimal)
    def minimal_graph_schema(self: GraphSchema, targets: Any = None) -> GraphSchema:
        key = (id(self), tuple(targets) if targets is not None else ())
        kept = cuts.get(key)
        # The schema itself is kept in the entry: its id cannot be reused while the entry lives.
        if kept is None or kept[0] is not self:
            if len(cuts) > 64:  # models reloaded many times: start again
                cuts.clear()
            kept = cuts[key] = (self, minimal(self, targets))
        return kept[1]

    GraphSchema.minimal_graph_schema = minimal_graph_schema  # type: ignore[method-assign]


def nlu_executor() -> ThreadPoolExecutor:
    """The worker the parse graph runs in (created on first use)."""
    global _nlu
    if _nlu is None:
        _nlu = ThreadPoolExecutor(max_workers=NLU_THREADS, thread_name_prefix="nlu")
    return _nlu


def _parse_in_a_thread() -> None:
    import structlog
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.trackers import DialogueStateTracker

    parse_message = MessageProcessor.parse_message

    @functools.wraps(parse_message)
    async def threaded_parse_message(self: Any, message: Any, tracker: Any = None,
                                     only_output_properties: bool = True) -> Any:
        if self.http_interpreter:  # an NLU server does the work: nothing to move
            return await parse_message(self, message, tracker, only_output_properties)
        if tracker is None:
            tracker = DialogueStateTracker.from_events(message.sender_id, [])
        # What Rasa's parse_message does, with the graph run in the NLU thread (the turn's
        # context variables, e.g. its id in the logs, go along).
        run = functools.partial(contextvars.copy_context().run, self._parse_message_with_graph,
                                message, tracker, only_output_properties)
        parse_data = await asyncio.get_running_loop().run_in_executor(nlu_executor(), run)
        self._update_full_retrieval_intent(parse_data)
        if logging.getLogger("rasa.core.processor").isEnabledFor(logging.DEBUG):  # Rasa's line, its copies
            structlog.get_logger().debug(
                "processor.message.parse", parse_data_text=copy.deepcopy(parse_data["text"]),
                parse_data_intent=parse_data["intent"], parse_data_entities=copy.deepcopy(parse_data["entities"]))
        self._check_for_unseen_features(parse_data)
        return parse_data

    MessageProcessor.parse_message = threaded_parse_message  # type: ignore[method-assign]


def _plain(cls: type) -> bool:
    """Whether ``copy.copy`` of a ``cls`` object is just a new object with the same ``__dict__``."""
    own = ("__setstate__", "__reduce_ex__", "__reduce__", "__getstate__")
    # An empty ``__slots__`` (``abc.ABC`` has one) adds no state to copy.
    return all(not any(name in c.__dict__ for name in own) and not c.__dict__.get("__slots__")
               for c in cls.__mro__ if c is not object)


def _copy_slots_directly() -> None:
    from rasa.shared.core.slots import Slot

    plain: dict[type, bool] = {}

    def __copy__(self: Any) -> Any:  # noqa: N807 (the copy protocol's name)
        cls = type(self)
        if plain.setdefault(cls, _plain(cls)):
            new = object.__new__(cls)
            new.__dict__.update(self.__dict__)
            return new
        return copy._reconstruct(self, None, *self.__reduce_ex__(4))  # type: ignore[attr-defined]

    Slot.__copy__ = __copy__  # type: ignore[attr-defined]
