"""Calibration's home (coordinator/calibration/) and its layering: the job is a library
the command and `testbed experiment` call; no library module imports a command."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from coordinator.calibration.measure import checked_catalog
from coordinator.calibration_file import Calibration
from coordinator.cli import COMMANDS
from testbed.exit_codes import ExitCode, TestbedExit
from tests.unit.test_twin import bench, calibration

ROOT = Path(__file__).resolve().parents[2]


def _import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_library_modules_never_import_a_command() -> None:
    """Commands (coordinator/commands/, coordinator/cli.py and the modules cli.py lists
    as commands) may import the library; the library never imports them."""
    commands = {module for module, _help in COMMANDS.values()}

    def is_command(name: str) -> bool:
        return (
            name in commands
            or name in ("coordinator.cli", "coordinator.commands")
            or name.startswith("coordinator.commands.")
        )

    graph = _import_graph().graph(ROOT)
    wrong = {
        name: sorted(t for t in targets if is_command(t))
        for name, targets in graph.items()
        if not is_command(name) and any(is_command(t) for t in targets)
    }
    assert wrong == {}


def test_the_command_only_reads_flags() -> None:
    """`testbed calibrate` calls the library: no bench, fit or report code of its own."""
    source = (ROOT / "coordinator/commands/calibrate.py").read_text()
    for name in ("LiveBench", "fit_calibration", "FidelityReport", "bench_ops"):
        assert name not in source, name


def test_a_bench_without_agents_or_edges_cannot_be_calibrated() -> None:
    cfg = bench(["m-a"], agents={"count": 0})
    with pytest.raises(TestbedExit) as caught:
        checked_catalog(cfg)
    assert caught.value.code is ExitCode.CONFIG_INVALID


def test_the_summary_lists_overheads_models_and_power() -> None:
    cal = calibration()
    text = cal.summary()
    assert text.startswith("overheads: upload 3.0 ms, reply 2.0 ms, local 1.0 ms")
    for m in cal.models:
        assert f"\n{m.model_id:<14} " in text
    again = Calibration.from_json(cal.to_json())
    assert again.summary() == text
