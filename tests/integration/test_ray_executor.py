"""`testbed experiment run SPEC --executor ray` on a real Ray (2 CPUs, one cluster for the
module): the same cells as the sequential executor, to the value (the twin's trainings
and evaluations are deterministic per seed); a driver killed mid-way, run again,
computes only the cells it had not written; and the default path never imports Ray
(tests/unit/test_ray_executor.py: the rest, without Ray)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("torch")

from coordinator.cli import main
from coordinator.ray_executor import LOCAL_BENCH_RESOURCE
from testbed.exit_codes import ExitCode
from tests.processes import default_sigint
from tests.zoo_fixtures import tiny_bench

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = {
    "hidden": 32, "batch_size": 64, "buffer_size": 1000, "steps": 8, "warmup_steps": 4,
    "num_envs": 4, "eval_every": 4, "checkpoint_every": 8, "eval_episodes": 2, "threads": 1,
}  # fmt: skip
CELLS = {("mato", 3, 0), ("greedy", 3, 0), ("mato", 3, 1), ("greedy", 3, 1)}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray of 2 CPUs (and a bench) for the module; its GCS address."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, resources={LOCAL_BENCH_RESOURCE: 1}, include_dashboard=False,
             log_to_driver=False)  # fmt: skip
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _spec(folder: Path, tiny_zoo: Path) -> Path:
    """2 algorithms × 2 seeds, one bench of 3 devices, evaluated in the twin."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny_bench(folder, tiny_zoo,
                                                                train=TINY_TRAIN)))  # fmt: skip
    doc = {
        "name": "tiny_ray", "config": "tiny.yaml",
        "sweep": {"key": "agents.count", "values": [3]},
        "algorithms": ["mato", "greedy"], "seeds": [0, 1],
        "evaluate": {"backend": "twin", "slots": 3, "oracle_max_agents": 0},
    }  # fmt: skip
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _cells(out: Path) -> list[dict[str, Any]]:
    path = out / "results.json"
    return json.loads(path.read_text())["cells"] if path.exists() else []


def _key(cell: dict[str, Any]) -> tuple[str, Any, int]:
    return cell["algorithm"], cell["value"], cell["seed"]


def test_ray_gives_the_cells_of_the_sequential_run(
    ray_address: str, tiny_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, tiny_zoo)
    seq, par = tmp_path / "seq", tmp_path / "ray"
    assert main(["experiment", "run", str(spec), "--out", str(seq)]) == 0
    assert main(["experiment", "run", str(spec), "--out", str(par), "--executor", "ray"]) == 0
    out = capsys.readouterr()
    assert "executor ray" in out.out and "ray: 2 CPUs" in out.out
    for cell in CELLS:  # a progress line per finished cell
        assert f"{cell[0]} {cell[1]}/{cell[2]} (twin)" in out.err
    a, b = _cells(seq), _cells(par)
    assert [_key(c) for c in a] == [_key(c) for c in b]  # same cells, in the same order
    assert {_key(c) for c in a} == CELLS
    for x, y in zip(a, b, strict=True):
        assert x["metrics"] == y["metrics"], _key(x)  # to the value: deterministic per seed
        assert x["backend"] == y["backend"] == "twin"
    doc = json.loads((par / "results.json").read_text())
    assert doc["status"] == "completed" and set(doc["trainings"]) == {"mato/3/0", "mato/3/1"}
    for run in doc["trainings"].values():  # written by the workers, where the driver says
        assert Path(run, "actors").is_dir() and Path(run).is_relative_to(par / "runs")
    assert (par / "report.md").is_file()


@pytest.mark.parametrize(
    "stop", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"]
)
def test_a_stopped_driver_resumes_only_the_missing_cells(
    stop: signal.Signals, ray_address: str, tiny_zoo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    spec, out = _spec(tmp_path, tiny_zoo), tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "experiment", "run", str(spec), "--out",
         str(out), "--executor", "ray", "--address", ray_address],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not _cells(out) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(stop)
    log = driver.communicate(timeout=60)[0]
    before = _cells(out)
    assert 1 <= len(before) < len(CELLS), log  # stopped after some cells, before all
    if stop != signal.SIGKILL:  # stopped as Ctrl-C stops it: said so, the folder marked
        assert driver.returncode == ExitCode.INTERRUPTED, log
        assert json.loads((out / "results.json").read_text())["status"] == "interrupted"
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(out), "--executor", "ray"]) == 0
    rerun = capsys.readouterr()
    missing = CELLS - {_key(c) for c in before}
    assert f"{len(missing)} cells to run" in rerun.out
    for algo, value, seed in CELLS:  # only the missing cells were computed
        assert (f"{algo} {value}/{seed} (twin)" in rerun.err) == ((algo, value, seed) in missing)
    after = _cells(out)
    assert {_key(c) for c in after} == CELLS and len(after) == len(CELLS)
    for cell in before:  # the cells written before the stop are kept as they were
        assert cell in after


def test_the_default_path_never_imports_ray(tiny_zoo: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, tiny_zoo)
    probe = (
        "import sys\nfrom coordinator.cli import main\n"
        f"code = main(['experiment', 'run', {str(spec)!r}, '--algorithms', 'greedy', "
        f"'--out', {str(tmp_path / 'out')!r}])\n"
        "print('RAY LOADED' if 'ray' in sys.modules else 'NO RAY')\nsys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "NO RAY" in proc.stdout and len(_cells(tmp_path / "out")) == 2
