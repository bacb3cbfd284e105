"""Validate the action server's answers against a schema checked once, not on every call.

Rasa 3.6 checks each answer of the action server (``RemoteAction._validate_action_result``)
with ``jsonschema.validate(result, schema)``, and ``jsonschema.validate`` first checks the
*schema* against JSON Schema's meta-schema, then builds a validator, every time. Rasa's
schema of events is large: in a profile of the Rasa process (docs/scaling.md) checking the
schema was 96 % of the validation and the largest single cost of a turn that calls an action,
more than the models.

:func:`validate_action_result` does what ``jsonschema.validate`` does (the same validator
class, the same errors, the best one raised, with Rasa's message added) with a validator built
and its schema checked once per process.

Checking an answer was still a few per cent of the Rasa process's busy time
under load, most of it in the schema's ``oneOf`` over the 23 kinds of event:
every event is tried against every kind. Each kind fixes the event's name
(``"event": {"const": ...}``), so an event can only match the kind of its own
name: :func:`valid_by_kind` checks the answer without the ``oneOf`` and each
event against its own kind alone, which accepts exactly what the whole schema
accepts. Whatever it does not accept goes through the whole schema, so a bad
answer raises the same error as before.

:func:`install` puts it in place of Rasa's method;
``python -m bot.rasa_run`` (how the launcher starts Rasa) calls it before Rasa starts.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

# Rasa's own method, kept so install() is idempotent.
_ORIGINAL: Any = None


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.lru_cache(maxsize=1)
def _by_kind() -> tuple[Any, dict[str, Any]] | None:
    """A validator for the answer without the events' ``oneOf``, and one per kind of event by its name."""
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    kinds = schema["properties"]["events"]["items"].get("oneOf") or []
    by_name: dict[str, Any] = {}
    for kind in kinds:
        name = kind.get("properties", {}).get("event", {}).get("const")
        if not isinstance(name, str) or name in by_name:
            return None  # a kind not fixed to one name: only the whole schema can tell
        by_name[name] = type(_validator())(kind)
    shell = copy.deepcopy(schema)
    del shell["properties"]["events"]["items"]["oneOf"]
    return type(_validator())(shell), by_name


def valid_by_kind(result: Any) -> bool:
    """True only if the whole schema accepts ``result`` (False: ask the whole schema)."""
    split = _by_kind()
    if split is None:
        return False
    shell, by_name = split
    if not shell.is_valid(result):
        return False
    for event in result.get("events") or []:
        name = event.get("event") if isinstance(event, dict) else None
        kind = by_name.get(name) if isinstance(name, str) else None
        if kind is None or not kind.is_valid(event):
            return False
    return True


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the schema checked once."""
    from jsonschema import exceptions
    from rasa.shared.constants import DOCS_BASE_URL

    if valid_by_kind(result):
        return True
    error = exceptions.best_match(_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> None:
    """Replace ``RemoteAction._validate_action_result`` (idempotent); call before Rasa runs actions."""
    global _ORIGINAL
    if _ORIGINAL is not None:
        return
    _ORIGINAL = rasa_class().__dict__["_validate_action_result"]
    rasa_class()._validate_action_result = validate_action_result  # type: ignore[method-assign]


def rasa_class() -> Any:
    """Rasa's ``RemoteAction`` (the module's name may point at bot.action_calls' subclass)."""
    from rasa.core.actions.action import RemoteAction

    return next(c for c in RemoteAction.__mro__ if "_validate_action_result" in c.__dict__)
