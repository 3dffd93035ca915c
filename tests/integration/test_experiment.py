"""`testbed experiment run` as a user runs it: a tiny spec trains in the twin, evaluates
on the live bench where the spec allows and in the twin elsewhere (each cell says
which), adds the per-slot oracle on small benches, writes results.json and the report,
and continues where it stopped: also after Ctrl-C or SIGTERM, computing only the cells
it had not written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")

from coordinator.cli import main
from testbed.exit_codes import ExitCode
from tests.processes import default_sigint
from tests.zoo_fixtures import tiny_bench

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

TINY_TRAIN = {
    "hidden": 32, "batch_size": 64, "buffer_size": 1000, "steps": 8, "warmup_steps": 4,
    "num_envs": 4, "eval_every": 4, "checkpoint_every": 8, "eval_episodes": 2, "threads": 1,
}  # fmt: skip


@pytest.fixture
def spec(tmp_path: Path, tiny_zoo: Path) -> Path:
    bench = tiny_bench(tmp_path, tiny_zoo, train=TINY_TRAIN)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(bench))
    doc = {
        "name": "tiny_devices",
        "description": "two bench sizes",
        "config": "tiny.yaml",  # beside the spec
        "sweep": {"key": "agents.count", "label": "number of devices", "values": [2, 3]},
        "algorithms": ["mato", "greedy"],
        "seeds": [0],
        "evaluate": {"backend": "auto", "slots": 3, "max_live_agents": 2,
                     "oracle_max_agents": 2},
    }  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_an_experiment_runs_every_cell_reports_and_continues(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    cells = {(c["algorithm"], c["value"]): c for c in doc["cells"]}
    # 2 devices: live (≤ max_live_agents) plus the oracle; 3 devices: the twin, no oracle
    assert set(cells) == {("mato", 2), ("greedy", 2), ("oracle", 2), ("mato", 3), ("greedy", 3)}
    assert cells["mato", 2]["backend"] == "live" and cells["greedy", 2]["backend"] == "live"
    assert cells["mato", 3]["backend"] == "twin" and cells["oracle", 2]["backend"] == "twin"
    assert cells["mato", 2]["metrics"]["tasks"] == 2 * 3  # every task of 3 slots, once
    assert {"estimated", "modeled"} <= set(cells["greedy", 2]["metrics"]["energy_methods"])
    assert Path(cells["mato", 2]["eval_run"], "tasks.csv").exists()  # the live run folder
    assert Path(cells["mato", 3]["train_run"], "actors").is_dir()
    # the oracle's slot optimum is at least as good as any policy's in the twin
    best = cells["oracle", 2]["metrics"]["reward"]
    assert all(cells[a, 2]["twin_reward"] <= best + 1e-6 for a in ("mato", "greedy"))
    report = (out / "report.md").read_text()
    assert "| greedy |" in report and "Optimality gap" in report
    assert "agents.count=2: live; agents.count=3: twin" in report
    for metric in ("latency_ms", "energy_j", "completion_rate", "training"):
        assert (out / f"tiny_devices_{metric}.png").stat().st_size > 1000
    capsys.readouterr()
    # run again: nothing left to do, nothing added
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    assert "0 cells to run" in capsys.readouterr().out
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 5


def test_a_bad_spec_names_the_key(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(spec.read_text())
    doc["sweep"]["valuez"] = doc["sweep"].pop("values")
    doc["algorithms"] = ["mato", "greedyy"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    assert main(["experiment", "check", str(bad)]) == ExitCode.CONFIG_INVALID
    err = capsys.readouterr().err
    assert "sweep.valuez: unknown key (did you mean 'values'?)" in err
    assert "sweep.values: missing" in err
    doc = yaml.safe_load(spec.read_text())
    doc["set"] = {"edges.cache_capacity_mb": -1}
    bad.write_text(yaml.safe_dump(doc))
    assert main(["experiment", "check", str(bad)]) == ExitCode.CONFIG_INVALID
    assert "edges.cache_capacity_mb" in capsys.readouterr().err
    assert main(["experiment", "run", str(spec), "--values", "7"]) == ExitCode.USAGE


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_experiment_continues_with_the_cells_it_had_not_written(
    spec: Path, tmp_path: Path, stop: signal.Signals, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(spec.read_text())  # two seeds of one bench, in the twin only
    doc.update(sweep={"key": "agents.count", "values": [3]}, seeds=[0, 1],
               evaluate={"backend": "twin", "slots": 3, "oracle_max_agents": 0})  # fmt: skip
    spec.write_text(yaml.safe_dump(doc))
    out, results = tmp_path / "out", tmp_path / "out" / "results.json"

    def written() -> list[dict[str, object]]:
        return json.loads(results.read_text())["cells"] if results.exists() else []

    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "experiment", "run", str(spec), "--out",
         str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not written() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(stop)
    log = proc.communicate(timeout=60)[0]
    before = written()
    assert proc.returncode == ExitCode.INTERRUPTED, log
    assert 1 <= len(before) < 4, log  # stopped after some cells, before all
    assert json.loads(results.read_text())["status"] == "interrupted"
    assert f"run the same command again (with --out {out}) to continue" in log
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    assert f"{4 - len(before)} cells to run" in capsys.readouterr().out
    after = written()
    assert len(after) == 4 and all(cell in after for cell in before)  # kept as they were
    assert json.loads(results.read_text())["status"] == "completed"
