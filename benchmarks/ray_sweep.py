"""Benchmark (issue 11): `testbed experiment run --executor ray` against the sequential
executor, on this machine's CPUs.

Two figures, each from `run_sequential` and `run_on_ray` (coordinator/executors.py,
coordinator/ray_executor.py) on the same spec, the small bench of the training tests
(3 devices, 2 edges, the tiny zoo), every cell in the twin:

- Ray's overhead per cell: a spec of near no-op cells (Greedy, 1 slot, one cell per
  seed) on a local Ray of ONE CPU, so the cells run one at a time as they do
  sequentially: (Ray's wall − the sequential wall) / cells is what Ray adds to a cell —
  scheduling, the arguments and result through the object store, the driver's writes.
  Both after a warm-up run (imports, Ray's worker start), which is reported apart, as
  is `ray.init()`. Goal (issue 11): < 1 s per cell.
- The speed-up: a spec of trainings (MATO, 1 torch thread each, plus Greedy) on a local
  Ray of every CPU vs the sequential run, cold (each worker imports torch once, as in
  a real sweep). Goal: at least half the ideal, Ray's wall ≤ sequential / (0.5 × CPUs).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import Case, Goal, GoalKind, Result, report, tiny_zoo

NAME = "ray_sweep"
OVERHEAD_GOAL = Goal(GoalKind.ADDED_AT_MOST, 1.0, "< 1 s added per cell")
TRAIN = {
    "hidden": 32, "batch_size": 64, "buffer_size": 1000, "warmup_steps": 4, "num_envs": 4,
    "eval_every": 1000, "checkpoint_every": 100000, "eval_episodes": 2, "threads": 1,
}  # fmt: skip


def _bench(folder: Path, steps: int) -> Path:
    """The tests' small bench (tests/zoo_fixtures.py `tiny_bench`) with `steps` steps."""
    bench = {
        "zoo": {"scale": "tiny", "dir": str(folder / "zoo")},
        "agents": {"count": 3},
        "edges": {"count": 2, "cache_capacity_mb": 8.0,
                  "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}]},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "twin": {"episode_slots": 5},
        "train": {**TRAIN, "steps": steps},
    }  # fmt: skip
    (folder / "zoo").mkdir(parents=True, exist_ok=True)
    if not (folder / "zoo" / "tiny").exists():
        os.symlink(tiny_zoo(), folder / "zoo" / "tiny")
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    return path


def _plan(folder: Path, algorithms: list[str], seeds: int, slots: int, steps: int) -> Any:
    from coordinator.experiment_plan import make_plan
    from coordinator.experiment_spec import load_spec

    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "bench_sweep", "config": str(_bench(folder, steps)),
           "sweep": {"key": "agents.count", "values": [3]}, "algorithms": algorithms,
           "seeds": list(range(seeds)),
           "evaluate": {"backend": "twin", "slots": slots, "oracle_max_agents": 0}}  # fmt: skip
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc))
    return make_plan(load_spec(spec), spec)


def _timed(run: Any, plan: Any, out: Path) -> float:
    """Wall seconds of `run(plan, out)`, its chatter swallowed; checks every cell came."""
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        results = run(plan, out)
    wall = time.perf_counter() - t0
    cells = len(plan.seeds) * len(plan.algorithms)
    if len(results.doc["cells"]) != cells:
        raise RuntimeError(f"{out}: {len(results.doc['cells'])} cells, expected {cells}")
    return wall


def _ray_init(ray: Any, cpus: int) -> float:
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - t0


def _overhead(ray: Any, root: Path, cells: int) -> Result:
    from coordinator.executors import run_sequential
    from coordinator.ray_executor import run_on_ray

    warm = _plan(root / "warm", ["greedy"], 2, 1, 8)
    noop = _plan(root / "noop", ["greedy"], cells, 1, 8)
    _timed(run_sequential, warm, root / "warm" / "seq")
    seq = _timed(run_sequential, noop, root / "noop" / "seq")
    init_s = _ray_init(ray, 1)
    try:
        warm_s = _timed(run_on_ray, warm, root / "warm" / "ray")
        on_ray = _timed(run_on_ray, noop, root / "noop" / "ray")
    finally:
        ray.shutdown()
    case = Case(f"{cells} no-op cells (Greedy, 1 slot), Ray of 1 CPU vs sequential",
                on_ray / cells, seq / cells, cells,
                {"ray_init_s": init_s, "warm_up_run_s": warm_s})  # fmt: skip
    return report(Result(NAME, "s", OVERHEAD_GOAL, [case], [
        f"per cell: Ray {1e3 * on_ray / cells:.0f} ms, sequential {1e3 * seq / cells:.0f} ms; "
        f"once per run: ray.init() {init_s:.1f} s, the first cells (worker start, "
        f"imports) {warm_s:.1f} s for 2"]))  # fmt: skip


def _speed_up(ray: Any, root: Path, seeds: int, steps: int) -> Result:
    from coordinator.executors import run_sequential
    from coordinator.ray_executor import run_on_ray

    cpus = os.cpu_count() or 1
    goal = Goal(GoalKind.RATIO_AT_MOST, 1 / (0.5 * cpus), f"speed-up ≥ 0.5 × {cpus} CPUs")
    plan = _plan(root / "train", ["mato", "greedy"], seeds, 5, steps)
    seq = _timed(run_sequential, plan, root / "train" / "seq")
    init_s = _ray_init(ray, cpus)
    try:
        on_ray = _timed(run_on_ray, plan, root / "train" / "ray")
    finally:
        ray.shutdown()
    label = f"{seeds} MATO trainings of {steps} steps + {seeds} Greedy cells, {cpus} CPUs"
    case = Case(label, on_ray, seq, 1, {"ray_init_s": init_s, "speed_up": seq / on_ray})
    return report(Result(NAME, "s", goal, [case], [
        f"speed-up {seq / on_ray:.2f} on {cpus} CPUs (ray.init() {init_s:.1f} s apart); "
        f"load (1 min) at the end: {os.getloadavg()[0]:.2f}"]))  # fmt: skip


def run(quick: bool = False) -> list[Result]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("needs Ray: pip install 'aigc-testbed[cluster]'") from None
    cells, seeds, steps = (6, 2, 8) if quick else (40, 4, 600)
    with tempfile.TemporaryDirectory(prefix="ray-sweep-") as tmp:
        overhead = _overhead(ray, Path(tmp), cells)
        speed_up = _speed_up(ray, Path(tmp), seeds, steps)
    return [overhead, speed_up]


def main() -> int:
    for r in run("--quick" in sys.argv[1:]):
        print(f"{r.name}: {'PASS' if r.passed else 'MISS'} (goal {r.goal.text})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
