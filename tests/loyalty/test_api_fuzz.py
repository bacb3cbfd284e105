"""Property-based fuzzing of the tills' API from its own OpenAPI document, over real HTTP.

For every operation, on SQLite and PostgreSQL, hypothesis sends requests built
from the spec's request schemas (hypothesis-jsonschema), documented examples
with one field made wrong (another type, missing, huge numbers and strings),
malformed bodies (bad JSON, wrong media type, fields twice) and bad or missing
keys. Every answer must be below 500, documented for the operation with a
documented error code and body, and a refused request must leave every table's
row count (and the points balances) as it was. Bounded: MAX_EXAMPLES per
operation and database; the number of cases tried is printed.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from sanic import Sanic
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.apikeys import service as apikeys
from loyalty.apps.api import MAX_BODY_BYTES, MAX_RECENT, create_app
from loyalty.apps.openapi import build_spec
from loyalty.members.models import Member
from loyalty.orders import service as orders
from loyalty.schema import metadata
from tests.loyalty.test_api import _coupon, _member, _store
from tests.support.live_api import LiveServer
from tests.support.openapi_check import check_answer, operations, path_of, resolve

pytestmark = pytest.mark.timeout(300)
# LOYALTY_FUZZ_EXAMPLES=500 for a longer hunt by hand.
MAX_EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "50"))
SPEC = build_spec(max_body=MAX_BODY_BYTES, max_recent=MAX_RECENT)
OPS = operations(SPEC)
TRIED: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}


@dataclass(frozen=True)
class Case:
    """One HTTP request: what the fuzzer sends."""

    kind: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    key: str = "good"  # good, none, or a literal Authorization header value


@dataclass
class World:
    """What exists in the database the requests can name."""

    key: str
    member_id: int
    coupon: str


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    Sanic.test_mode = True
    server = LiveServer(create_app(f"loyalty-api-fuzz-{id(object())}"))
    yield server.start().removesuffix("/api/v1")
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = ["", "API fuzzing, cases tried: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))]
    lines += [f"  {k}: {dict(sorted(v.items()))}" for k, v in sorted(STATUSES.items())]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


# --------------------------------------------------------------------------- what is sent

HUGE_INT = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 10**300])
HUGE_TEXT = st.sampled_from(["x" * 300_000, "x" * 70_000, "9" * 4300, "单" * 20_000, "\u0000", "\ud800", "𝕏" * 5000])
WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(), HUGE_INT, st.floats(allow_nan=False), HUGE_TEXT,
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                 max_size=2),
)
# Values at the edges of what the database and the date arithmetic can hold.
EDGE = st.one_of(HUGE_INT, HUGE_TEXT, st.sampled_from([
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T10:00:00+08:00", "1e30", "-0",
    "99999999.99", "100000000.01", 1e308, -0.0, 5e-324, "", " ", "NaN", "Infinity"]))
JSON_HEADERS = (("Content-Type", "application/json"),)


def _encode(value: Any) -> bytes:
    # Python's json writes lone surrogates as escapes, as a careless client would.
    return json.dumps(value).encode()


def _example(schema_name: str, world: World) -> dict[str, Any]:
    """The spec's example for a request, naming things that exist and a time just past."""
    body = copy.deepcopy(SPEC["components"]["schemas"][schema_name]["examples"][0])
    now = (db.utcnow() - timedelta(minutes=5)).isoformat()
    real = {"member_id": world.member_id, "store_code": "SH01", "code": world.coupon,
            "original_external_id": "EXISTING", "placed_at": now}
    return {k: real.get(k, v) for k, v in body.items()}


def _body_cases(template: str, schema_name: str, world: World) -> st.SearchStrategy[Case]:
    schema = resolve({"$ref": f"#/components/schemas/{schema_name}"}, SPEC)
    props = list(schema["properties"])

    def case(kind: str, body: bytes, headers: tuple[tuple[str, str], ...] = JSON_HEADERS, key: str = "good") -> Case:
        return Case(kind, template, headers, body, key)

    @st.composite
    def mutated(draw: st.DrawFn) -> Case:
        body = _example(schema_name, world)
        field = draw(st.sampled_from(props + ["unknown_extra"]))
        how = draw(st.sampled_from(["schema", "wrong", "edge", "drop"]))
        if how == "drop":
            body.pop(field, None)
        elif how == "schema" and field in schema["properties"]:
            body[field] = draw(from_schema(schema["properties"][field]))
        elif how == "edge":
            body[field] = draw(EDGE)
        else:
            body[field] = draw(WRONG)
        if draw(st.booleans()):  # a fresh id half of the time: a new write rather than a conflict
            body["external_id" if "external_id" in body else "order_ref"] = draw(st.uuids()).hex
        return case(f"example with {field} {how}", _encode(body))

    valid = from_schema(schema).map(lambda b: case("from schema", _encode(b)))
    example = _encode(_example(schema_name, world))
    raw = st.one_of(
        st.binary(max_size=200).map(lambda b: case("bytes", b)),
        st.sampled_from([b"", b"{", b"[]", b"null", b'"x"', b"1e999", b'{"a": NaN}', b"{" * 5000,
                         b'{"external_id": "A", "external_id": "B"}', example[:-1], example + b"}"]).map(
            lambda b: case("bad json", b)),
        st.sampled_from([(), (("Content-Type", "text/plain"),), (("Content-Type", "application/json; charset=gbk"),),
                         (("Content-Type", "application/x-www-form-urlencoded"),)]).map(
            lambda h: case("media type", example, h)),
        st.sampled_from(["none", "Bearer lk_not-a-key", "Basic abc", "Bearer ", "Bearer " + "k" * 3000]).map(
            lambda k: case("bad key", example, key=k)),
    )
    return st.one_of(valid, mutated(), raw)


def _points_cases(template: str, world: World) -> st.SearchStrategy[Case]:
    member = st.one_of(st.just(world.member_id), st.integers(), HUGE_INT,
                       st.text(max_size=12).map(lambda t: quote(t, safe="")))
    recent = st.one_of(st.none(), st.integers(-5, 60), HUGE_INT, st.text(max_size=8))
    extra = st.one_of(st.none(), st.sampled_from(["member=2", "recent=1&recent=2", "x=" + "y" * 3000]))

    @st.composite
    def get(draw: st.DrawFn) -> Case:
        path = path_of(template, member_id=draw(member))
        query = [f"recent={quote(str(r), safe='')}" for r in [draw(recent)] if r is not None]
        query += [q for q in [draw(extra)] if q]
        key = draw(st.sampled_from(["good"] * 4 + ["none", "Bearer lk_not-a-key"]))
        return Case("points", path + ("?" + "&".join(query) if query else ""), key=key)

    return get()


def _plain_cases(template: str) -> st.SearchStrategy[Case]:
    names = st.one_of(st.sampled_from(["swagger-ui.css", "swagger-ui-bundle.js", "package.json", "index.html"]),
                      st.text(min_size=1, max_size=20).map(lambda t: quote(t, safe="")))
    junk = st.one_of(st.just(""), st.text(max_size=20).map(lambda t: "?q=" + quote(t, safe="")))

    @st.composite
    def get(draw: st.DrawFn) -> Case:
        path = path_of(template, name=draw(names)) if "{name}" in template else template
        return Case("plain", path + draw(junk), key=draw(st.sampled_from(["none", "good", "Bearer junk"])))

    return get()


def _cases(op_id: str, world: World) -> st.SearchStrategy[Case]:
    method, template, op = OPS[op_id]
    if method == "POST":
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return _body_cases(template, ref.rsplit("/", 1)[1], world)
    if "{member_id}" in template:
        return _points_cases(template, world)
    return _plain_cases(template)


# --------------------------------------------------------------------------- what is checked


def _state() -> tuple[Any, ...]:
    """Rows in every table and the sum of the balances, in one query."""
    counts = [select(func.count()).select_from(t).scalar_subquery() for t in metadata.sorted_tables]
    balances = select(func.coalesce(func.sum(Member.points_balance), 0)).scalar_subquery()
    return tuple(db.run(lambda s: s.execute(select(*counts, balances)).one(), readonly=True))


def _send(http: requests.Session, root: str, method: str, case: Case, world: World) -> requests.Response:
    headers = dict(case.headers)
    if case.key == "good":
        headers["Authorization"] = f"Bearer {world.key}"
    elif case.key != "none":
        headers["Authorization"] = case.key
    return http.request(method, root + case.path, data=case.body, headers=headers, timeout=60)


@pytest.mark.parametrize("op_id", sorted(OPS))
def test_fuzz_every_operation_from_its_schemas(root: str, engine: Engine, op_id: str) -> None:
    method, template, _ = OPS[op_id]
    mid = _member()
    _store("SH01")
    world = World(db.run(apikeys.create_api_client, "pos"), mid, _coupon(mid))
    # The order the examples of a return name (big enough for many partial returns).
    db.run(orders.record_order, "pos", {"external_id": "EXISTING", "amount": "100000.00", "member_id": mid,
                                        "placed_at": (db.utcnow() - timedelta(hours=1)).isoformat()})
    backend = engine.dialect.name
    statuses = STATUSES.setdefault(f"{backend} {op_id}", Counter())
    http = requests.Session()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(case=_cases(op_id, world))
    def one(case: Case) -> None:
        TRIED[backend] += 1
        before = _state()
        r = _send(http, root, method, case, world)
        statuses[r.status_code] += 1
        detail = f"{case.kind}: {method} {case.path[:200]} -> {r.status_code} {r.text[:300]}"
        assert r.status_code < 500, detail
        check_answer(SPEC, method, template, r.status_code, r.headers.get("Content-Type", ""), r.content)
        if r.status_code >= 400:
            assert _state() == before, "a refused request wrote: " + detail

    try:
        one()
    finally:
        http.close()
    assert sum(statuses.values()) >= MAX_EXAMPLES // 2
