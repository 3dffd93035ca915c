"""The project's import graph, and the cycles in it.

    python tools/import_graph.py        # prints every cycle; exit 1 if there is one

Every `import` counts, also one inside a function (a lazy import still ties the two
modules together) or under `if TYPE_CHECKING:` (a loop of types is still a loop).
Two levels are checked:
modules, and groups — a subpackage's modules form one group (`coordinator.envs`), a
top-level module of a package is a group of its own (`coordinator.live`). An import
of a package's own ancestor (`coordinator.envs.x` → `coordinator`) is not an edge:
Python runs the parent's `__init__` anyway.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("testbed", "agent_node", "edge_node", "cloud_node", "coordinator")
GENERATED = ("testbed/rpc",)


def modules(root: Path) -> dict[str, Path]:
    """Module name → file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if any(rel.as_posix().startswith(g) for g in GENERATED):
                continue
            parts = rel.with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules that module `name` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + "."):
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: _imported(name, path, known) for name, path in known.items()}


def group_of(name: str) -> str:
    """`coordinator.envs.twin` → `coordinator.envs`; `coordinator.live` → itself."""
    parts = name.split(".")
    if len(parts) <= 2:
        return name
    return ".".join(parts[:2])


def group_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for source, targets in g.items():
        a = group_of(source)
        out.setdefault(a, set())
        for target in targets:
            b = group_of(target)
            if a != b and not a.startswith(b + ".") and not b.startswith(a + "."):
                out[a].add(b)
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    g = graph(root)
    problems = [("modules", c) for c in cycles(g)]
    problems += [("groups", c) for c in cycles(group_graph(g))]
    for level, cycle in problems:
        print(f"import cycle between {level}: {' ↔ '.join(cycle)}")
    if not problems:
        print(f"no import cycles among {len(g)} modules")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
