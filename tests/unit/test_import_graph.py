"""No import cycles, between modules or between the coordinator's parts
(tools/import_graph.py says what counts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_imports_itself_through_others() -> None:
    tool = _tool()
    assert tool.cycles(tool.graph(ROOT)) == []


def test_no_cycle_between_packages_and_top_level_modules() -> None:
    tool = _tool()
    assert tool.cycles(tool.group_graph(tool.graph(ROOT))) == []


def test_a_cycle_is_found() -> None:
    tool = _tool()
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert tool.cycles(g) == [["a", "b", "c"]]
    assert tool.group_graph({"p.x.m": {"p.y.n"}, "p.y.n": {"p.x.k"}, "p.x.k": set()}) == {
        "p.x": {"p.y"},
        "p.y": {"p.x"},
    }
