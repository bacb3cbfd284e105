"""Checks of real API answers against the OpenAPI document (tests/loyalty/test_api_spec.py, test_api_fuzz.py)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, RefResolver

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """``operationId -> (METHOD, path template, operation)`` for every operation of the spec."""
    out = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                out[op["operationId"]] = (method.upper(), path, op)
    return out


def resolve(schema: Any, spec: dict[str, Any]) -> Any:
    """``schema`` with every local ``$ref`` replaced by what it points to (for hypothesis-jsonschema)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            target: Any = spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(copy.deepcopy(target), spec)
        return {k: resolve(v, spec) for k, v in schema.items() if k not in ("examples", "description")}
    if isinstance(schema, list):
        return [resolve(v, spec) for v in schema]
    return schema


def validate(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """Raise jsonschema's ValidationError unless ``value`` fits ``schema`` (refs into ``spec``)."""
    Draft202012Validator(schema, resolver=RefResolver.from_schema(spec), format_checker=FormatChecker()).validate(
        value
    )


def check_answer(spec: dict[str, Any], method: str, template: str, status: int, content_type: str,
                 body: bytes) -> None:
    """Assert the answer is one the spec documents for the operation: status, media type, body, error code."""
    op = spec["paths"][template][method.lower()]
    documented = op["responses"]
    assert str(status) in documented, f"{method} {template}: {status} is not documented ({sorted(documented)})"
    response = documented[str(status)]
    media = content_type.split(";")[0].strip().lower()
    content = response.get("content", {})
    if "*/*" in content:
        return
    assert media in content, f"{method} {template} {status}: {media!r} is not documented ({list(content)})"
    if media == "application/json":
        data = json.loads(body)
        validate(spec, content[media]["schema"], data)
        codes = response.get("x-error-codes")
        if codes is not None:
            assert data["error"] in codes, f"{method} {template} {status}: {data['error']!r} not in {codes}"


def path_of(template: str, **params: Any) -> str:
    """The template with its ``{name}`` parameters filled in."""
    return re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), template)
