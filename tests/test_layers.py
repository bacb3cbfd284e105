"""The house rules of the imports: layers point down, no cycles (see tests/support/import_graph.py)."""

from __future__ import annotations

import pytest

from tests.support.import_graph import cycles, module_graph, package_graph, package_of

GRAPH = module_graph()
# loyalty/: plumbing at the bottom, then the domains in the order they may use each other,
# then what stands on all of them. A package may import only packages of lower rank.
LOYALTY_RANKS = [
    {"loyalty.errors", "loyalty.hours", "loyalty.migrate", "loyalty.telemetry"},
    {"loyalty.config"},
    {"loyalty.db"},
    {"loyalty.common", "loyalty.audit"},
    {"loyalty.catalogue", "loyalty.apikeys", "loyalty.sms", "loyalty.nlu_review"},
    {"loyalty.members"},
    {"loyalty.identity"},
    # Facts about visitors and conversations, keyed by hashed channel addresses: below membership,
    # which erases them with an account.
    {"loyalty.visits", "loyalty.conversations"},
    {"loyalty.points"},
    {"loyalty.tiers"},
    {"loyalty.coupons", "loyalty.referrals"},
    {"loyalty.orders", "loyalty.membership"},
    {"loyalty.segments", "loyalty.recommender"},
    {"loyalty.handoff"},
    {"loyalty.outreach"},
    {"loyalty.staff", "loyalty.reports"},
    {"loyalty.schema", "loyalty.apps"},
    {"loyalty.migrations", "loyalty.__main__"},
]
RANK = {pkg: n for n, group in enumerate(LOYALTY_RANKS) for pkg in group}


def _imports(prefix: str) -> set[tuple[str, str]]:
    return {(m, t) for m, targets in GRAPH.items() if m.split(".")[0] == prefix for t in targets}


def test_no_module_imports_itself_back() -> None:
    assert cycles(GRAPH) == []


def test_no_cycle_between_packages() -> None:
    assert cycles(package_graph(GRAPH)) == []


def test_every_loyalty_package_has_a_layer() -> None:
    assert {package_of(m) for m in GRAPH if m.startswith("loyalty.")} <= set(RANK)


def test_loyalty_arrows_point_down() -> None:
    up = sorted((m, t) for m, t in _imports("loyalty") if t.startswith("loyalty.")
                and package_of(m) != package_of(t) and RANK[package_of(t)] >= RANK[package_of(m)])
    assert up == []


@pytest.mark.parametrize("layer, forbidden", [
    ("loyalty", ("rasa", "rasa_sdk", "bot", "actions")),
    ("actions", ("bot", "rasa")),
    ("bot", ("actions",)),
])
def test_layers_keep_to_themselves(layer: str, forbidden: tuple[str, ...]) -> None:
    from tests.support.import_graph import imports_of, modules

    found = sorted(
        (name, target)
        for name, path in modules((layer,)).items()
        for target in imports_of(name, path)
        if target.split(".")[0] in forbidden
    )
    assert found == []
