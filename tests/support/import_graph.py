"""The project's import graph, read from the code with ``ast`` (imports inside functions included).

``python -m tests.support.import_graph`` prints the arrows between packages
(``loyalty.points -> loyalty.members`` means a module of the first imports the
second) and any cycle between modules; tests/test_layers.py holds the rules.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("loyalty", "bot", "actions")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(tops: Iterable[str] = TOP) -> dict[str, Path]:
    """Every module of the given top-level packages (migration scripts left out)."""
    found = {}
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "versions" in path.parts:
                continue
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """The modules ``name`` imports, as absolute dotted names."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def module_graph(tops: Iterable[str] = TOP) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (a ``from pkg import name`` of a function counts as ``pkg``)."""
    mods = modules(tops)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = {t for t in imports_of(name, path) if t in mods and t != name}
        # "from loyalty import db" names loyalty.db, not the package loyalty itself.
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets) or t not in TOP}
    return graph


def package_of(module: str, depth: int = 2) -> str:
    return ".".join(module.split(".")[:depth])


def package_graph(graph: dict[str, set[str]], depth: int = 2) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for src, targets in graph.items():
        for t in targets:
            a, b = package_of(src, depth), package_of(t, depth)
            if a != b:
                out[a].add(b)
    return dict(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    graph = module_graph()
    print("Package arrows (A -> B: a module of A imports B):")
    for src, targets in sorted(package_graph(graph).items()):
        print(f"  {src:24} -> {', '.join(sorted(targets))}")
    found = cycles(graph)
    print("Module cycles:", "none" if not found else "")
    for comp in found:
        print("  " + " <-> ".join(comp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
