"""A §B experiment cell evaluated on the live bench (coordinator/coedge_experiments.py
with `evaluate.backend: live`, docs/coedge.md "Experiments"): the scheduler trained in
the twin runs on the boards of a fresh live §B bench (coordinator/coedge_run.py, what
`testbed up` runs for `run.system: coedge`) for `evaluate.slots` slots and is drained.

What runs on the boards: a heuristic by its board name (`random`, `least-queue`,
`home`, `split-all`: agent_node/coedge_policy.py), or a learned scheduler's actor
exported to ONNX and checked against torch (coordinator/algorithms/discrete_export.py)
— greedy, and for a DSAC scheduler also `sampled:` (each action drawn from its
softmax, as the twin's sampled evaluation). The per-task and per-slot optima have no
board form: their cells stay in the twin and say so.

The bench's master seed is 10 000 + the cell's seed, as the twin's evaluation: every
scheduler of a seed gets the very same tasks (testbed/coedge/tasks.py `slot_tasks` is a
function of seed, agent and slot), never the training ones. The delay is the live
summary's (coordinator/coedge_shares.py): the mean over tasks that were served of their
latest share's finish; completion is the share of tasks completed within the deadline.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from coordinator.coedge_run import COEDGE_HEURISTICS, SAMPLED_PREFIX
from coordinator.experiment_spec import EvalBackend
from coordinator.schedulers import SCHEDULERS, LearnerKind, TrainedScheduler
from testbed.config import BenchSystem, TestbedConfig


def cell_backend(backend: EvalBackend, max_live_stations: int, cfg: TestbedConfig,
                 algorithm: str) -> tuple[str, str]:  # fmt: skip
    """(live|twin, why) for one cell: `auto` is live where the config is a live §B bench
    (`run.system: coedge`) of at most `max_live_stations` stations; a scheduler with no
    board form (the optima) stays in the twin whatever the spec says."""
    if not runs_on_boards(algorithm):
        return "twin", f"{algorithm} has no board form"
    if backend is not EvalBackend.AUTO:
        return backend.value, "set in the spec"
    if cfg.run.system is not BenchSystem.COEDGE:
        return "twin", f"run.system is {cfg.run.system}, not coedge"
    if cfg.coedge.num_stations > max_live_stations:
        why = f"{cfg.coedge.num_stations} stations > evaluate.max_live_stations"
        return "twin", why
    return "live", f"{cfg.coedge.num_stations} stations ≤ evaluate.max_live_stations"


def runs_on_boards(algorithm: str) -> bool:
    return algorithm in COEDGE_HEURISTICS or SCHEDULERS[algorithm].learned


def board_policies(trained: TrainedScheduler, seed: int, folder: Path) -> dict[str, str]:
    """The `run.policy` texts to evaluate `trained` with: {"greedy": ...} and, for a
    DSAC scheduler, {"sampled": ...}; a learned one is exported into `folder` first."""
    if trained.name in COEDGE_HEURISTICS:
        return {"greedy": trained.name}
    from coordinator.algorithms.discrete_export import export_trained

    folder.mkdir(parents=True, exist_ok=True)
    path = export_trained(trained, seed, folder).onnx_path
    if path is None:  # written only with a folder, given here
        raise RuntimeError(f"{trained.name}: the export wrote no ONNX file")
    onnx = str(path.resolve())
    policies = {"greedy": f"{trained.name}={onnx}"}  # LABEL=: the run folder's name
    if SCHEDULERS[trained.name].learner is LearnerKind.DSAC:
        policies["sampled"] = f"{trained.name}-sampled={SAMPLED_PREFIX}{onnx}"
    return policies


def live_config(cfg: TestbedConfig, seed: int, slots: int, policy: str, out_dir: Path) -> Any:
    from coordinator.evaluation import with_seed

    sets = {"run.out_dir": str(out_dir), "run.slots": slots, "run.policy": policy}
    return with_seed(cfg, seed, **sets)


def run_live(cfg: TestbedConfig) -> tuple[Path, list[Any], dict[str, Any]]:
    """One `testbed up` of the §B bench of `cfg` (its run.policy, run.slots, seed) into a
    new run folder in `run.out_dir`: (the folder, its records, its summary)."""
    from coordinator.bench_setup import zoo_dir_of
    from coordinator.coedge_run import RECORDER_FILES, CoedgeRun, coedge_policy
    from coordinator.recorder import RunRecorder, RunStatus
    from coordinator.run_folder import new_run_dir, write_config

    label, source = coedge_policy(cfg, cfg.run.policy)
    zoo_dir, catalog = zoo_dir_of(cfg)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    runner = CoedgeRun(cfg, run_dir, write_config(run_dir, cfg), zoo_dir, False, source, label)
    recorder = RunRecorder(run_dir, extra=lambda: runner.extra(final=False), **RECORDER_FILES)
    try:
        runner.start(catalog)
        runner.run(recorder)
        recorder.add_records(runner.end())
        extra = runner.extra(final=True)
    except BaseException as exc:
        recorder.finish(RunStatus.FAILED, error=str(exc) or type(exc).__name__)
        runner.close(keep=False)
        raise
    runner.close(keep=False)
    summary = recorder.finish(RunStatus.COMPLETED, **extra)
    return run_dir, list(recorder.records), summary


def live_metrics(records: list[Any], summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A live run's figures, named as a twin cell's."""
    coedge = summary.get("coedge", {})
    rewards = [r.reward for r in records if r.reward is not None]
    spread = coedge.get("share_finish_spread_ms", {})
    return {
        "delay_s": coedge.get("mean_delay_s", math.nan),
        "completion": coedge.get("completion_rate", math.nan),
        "reward": statistics.fmean(rewards) if rewards else math.nan,
        "decisions": float(len(records)),
        "failures": dict(Counter(r.reason.value for r in records if not r.completed)),
        "share_spread_p50_ms": spread.get("p50", math.nan),
        "tasks_split": coedge.get("tasks_split", 0),
        "run_dir": str(run_dir),
    }


def evaluate_live(trained: TrainedScheduler, seed: int, slots: int, out_dir: Path
                  ) -> dict[str, Any]:  # fmt: skip
    """`trained` on the live bench of its config (module doc): the greedy figures as
    `delay_s`, `completion`, ...; a DSAC scheduler's draws from π as `sampled_delay_s`,
    `sampled_completion`; each run's folder under `out_dir`."""
    out: dict[str, Any] = {}
    policies = board_policies(trained, seed, out_dir / "actors" / f"{trained.name}__{seed}")
    for kind, policy in policies.items():
        cfg = live_config(trained.cfg, seed, slots, policy, out_dir)
        run_dir, records, summary = run_live(cfg)
        metrics = live_metrics(records, summary, run_dir)
        if kind == "greedy":
            out |= metrics
        else:
            out |= {"sampled_delay_s": metrics["delay_s"],
                    "sampled_completion": metrics["completion"],
                    "sampled_run_dir": metrics["run_dir"]}  # fmt: skip
    return out
