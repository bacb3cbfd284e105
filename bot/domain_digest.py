"""The domain crosses to the action server once per model, not with every action call.

Rasa sends the whole domain (58 KB of JSON here, most of it the responses in
two languages) with every call to the action server: encoding it was the
largest part of a call's cost in the Rasa process, and the action server
decodes it again each time (docs/scaling.md). Rasa's own remedy,
``enable_selective_domain``, leaves actions without a domain, and ours read
their responses and forms from it.

The two sides agree on the domain by its digest (SHA-256 of its canonical JSON):

- Rasa (:func:`slim_request`, put on each call's endpoint by
  ``bot.action_calls``) sends the call without the domain and with the header
  ``X-Domain-Digest``.
- The action server (:func:`remember_domains`) puts back the domain it keeps
  for that digest. One it does not know yet (it just started, a new model was
  loaded, another replica answered so far) gets ``409 domain_unknown``, and
  Rasa sends the same call again with the domain, which the server checks
  against the digest and keeps. Nothing ran on the refused call, so nothing
  runs twice.

A server without this middleware runs the slim call with no domain: keep both
sides on the same release (the launcher starts them together).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from typing import Any

from rasa.utils.endpoints import ClientResponseError
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

HEADER = "X-Domain-Digest"
UNKNOWN = "domain_unknown"
# Domains an action server keeps (models loaded one after another by the replicas).
KEPT = 4

_digests: dict[int, tuple[Any, str]] = {}


def digest(domain: Any) -> str:
    """The SHA-256 of the domain's canonical JSON."""
    canonical = json.dumps(domain, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def digest_of(domain: Any) -> str:
    """:func:`digest`, computed once per domain object (Rasa's ``Domain.as_dict`` returns the same one)."""
    kept = _digests.get(id(domain))
    if kept is None or kept[0] is not domain:
        if len(_digests) > KEPT:
            _digests.clear()
        kept = _digests[id(domain)] = (domain, digest(domain))  # the object is kept: its id stays its own
    return kept[1]


async def slim_request(endpoint: Any, original: Any, method: str = "post", subpath: str | None = None,
                       content_type: str | None = "application/json", **kwargs: Any) -> Any:
    """``EndpointConfig.request`` (``original``, bound) with the call's domain replaced by its digest."""
    body = kwargs.get("json")
    domain = body.get("domain") if isinstance(body, dict) else None
    if not isinstance(domain, dict):
        return await original(method, subpath, content_type, **kwargs)
    headers = {**(kwargs.pop("headers", None) or {}), HEADER: digest_of(domain)}
    full = kwargs.pop("json")
    slim = {key: value for key, value in full.items() if key != "domain"}
    try:
        return await original(method, subpath, content_type, json=slim, headers=headers, **kwargs)
    except ClientResponseError as exc:
        if exc.status != 409 or UNKNOWN not in str(exc.text):
            raise
    logger.info("action server does not know this domain yet: sending it")
    return await original(method, subpath, content_type, json=full, headers=headers, **kwargs)


def remember_domains(app: Sanic, path: str = "/webhook") -> None:
    """Action server side: put the kept domain back into slim calls; keep the domain full calls carry."""
    kept: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def domain_by_digest(request: Request) -> HTTPResponse | None:
        wanted = request.headers.get(HEADER)
        if not wanted or request.path != path or request.method != "POST":
            return None
        try:
            body = request.json
        except Exception:  # rasa_sdk answers an unreadable body itself
            return None
        if not isinstance(body, dict):
            return None
        domain = body.get("domain")
        if isinstance(domain, dict):
            if wanted not in kept and digest(domain) == wanted:
                kept[wanted] = domain
                while len(kept) > KEPT:
                    kept.popitem(last=False)
            return None
        known = kept.get(wanted)
        if known is None:
            return response.json({"error": UNKNOWN}, status=409)
        kept.move_to_end(wanted)
        body["domain"] = known  # shared, read-only by convention: actions never change their domain
        return None

    app.register_middleware(domain_by_digest, "request")
