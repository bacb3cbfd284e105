"""Validate the action server's answers against a schema checked once, not on every call.

Rasa 3.6 checks each answer of the action server (``RemoteAction._validate_action_result``)
with ``jsonschema.validate(result, schema)``, and ``jsonschema.validate`` first checks the
*schema* against JSON Schema's meta-schema, then builds a validator, every time. Rasa's
schema of events is large: in a profile of the Rasa process (docs/scaling.md) checking the
schema was 96 % of the validation and the largest single cost of a turn that calls an action,
more than the models.

:func:`validate_action_result` does what ``jsonschema.validate`` does (the same validator
class, the same errors, the best one raised, with Rasa's message added) with a validator built
and its schema checked once per process. :func:`install` puts it in place of Rasa's method;
``python -m bot.rasa_run`` (how the launcher starts Rasa) calls it before Rasa starts.
"""

from __future__ import annotations

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


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the schema checked once."""
    from jsonschema import exceptions
    from rasa.shared.constants import DOCS_BASE_URL

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
