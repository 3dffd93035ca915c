"""Training as a library function: one algorithm on the twin or the live bench into
a run folder (`testbed train` and `testbed experiment run` both call `train_run`).

A run folder `runs/<experiment>__<algo>__<seed>__<utc>/` holds config.yaml,
manifest.json, metrics.csv, reward_curve.png, checkpoints/ (step-N.pt, latest.pt),
actors/<agent>.onnx (each checked against torch) and summary.json — with the twin,
the final evaluation beside Random, Greedy and Local on the same evaluation tasks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.run_folder import new_run_dir, write_config, write_manifest
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt

EVAL_SEED_OFFSET = 10**6
"""Evaluation environments use seed + this: tasks the training never drew."""


def _import_torch() -> None:
    # Other processes share these cores (the live bench's nodes, other runs): spinning
    # OpenMP threads then wait on each other, measured 2-5x slower. Set before torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING,
            "training needs torch: pip install 'aigc-testbed[train]'",
        ) from None


def make_envs(cfg: TestbedConfig, algo: str, backend: str) -> tuple[Any, Any]:
    """(training env, evaluation env or None) for `backend`; the trainer sees only the
    `VecEnv` protocol. The live bench is one environment and has no evaluation twin."""
    from coordinator.algorithms import get
    from coordinator.algorithms.rollout import ModelBlindEnv
    from coordinator.envs import make_vec_env

    aware = get(algo).model_aware
    if backend == "twin":  # a twin it cannot build: TwinSetupError, exit ZOO_MISSING
        seed = cfg.seed + EVAL_SEED_OFFSET
        env = make_vec_env(cfg, cfg.train.num_envs, seed=cfg.seed, model_aware=aware)
        evals = make_vec_env(cfg, cfg.train.eval_episodes, seed=seed, model_aware=aware)
        return env, evals
    live = make_vec_env(cfg, 1, seed=cfg.seed, backend="live")
    return (live if aware else ModelBlindEnv(live)), None


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM; the run folder and its last checkpoint."""

    def __init__(self, run_dir: Path, checkpoint: Path | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.checkpoint = run_dir, checkpoint


def train_run(
    cfg: TestbedConfig, algo: str, backend: str = "twin", *, resume_dir: Path | None = None,
    label: str | None = None,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Train `algo` on `backend` for `cfg.train.steps` steps into a new run folder under
    `cfg.run.out_dir` (or continue `resume_dir`); returns (run folder, summary). Raises
    `Interrupted` on Ctrl-C/SIGTERM (the folder keeps its checkpoints)."""
    _import_torch()
    from coordinator.algorithms import get
    from coordinator.algorithms.run_writer import RunWriter, load_checkpoint
    from coordinator.progress import ProgressBar

    try:
        resume = load_checkpoint(resume_dir) if resume_dir else None
    except Exception as exc:  # a damaged file: torch's unpickler raises nearly anything
        raise TestbedExit(ExitCode.USAGE, (
            f"cannot read {resume_dir}/checkpoints/latest.pt ({type(exc).__name__}: {exc}): "
            "copy one of its step-N.pt over it to resume from there")) from None  # fmt: skip
    if resume_dir is not None and not (isinstance(resume, dict)
                                       and isinstance(resume.get("step"), int)):  # fmt: skip
        raise TestbedExit(ExitCode.USAGE, f"{resume_dir}/checkpoints/latest.pt has no step")
    start = int(resume["step"]) if resume else 0
    if resume_dir is not None and start >= cfg.train.steps:
        return resume_dir, {"steps": cfg.train.steps, "complete_before": True}
    env, eval_env = make_envs(cfg, algo, backend)  # set-up errors leave no run folder
    if resume_dir is None:
        run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, algo, cfg.seed)
        write_config(run_dir, cfg)
        write_manifest(run_dir, cfg, {"command": "train", "algo": algo, "backend": backend,
                                      "title": get(algo).title, "argv": sys.argv[1:]})  # fmt: skip
    else:
        run_dir = resume_dir
    print(f"run folder: {run_dir}" + (f" (resuming at step {start})" if resume else ""))
    previous = signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    bar = ProgressBar(cfg.train.steps - start, label or f"train {algo} ({backend})")
    writer = RunWriter(run_dir, bar=bar, resume_step=start if resume else None)
    t0 = time.monotonic()
    try:
        agent, evaluation = get(algo).train(cfg, env, eval_env=eval_env, hooks=writer,
                                            resume=resume)  # fmt: skip
        summary = _finish(cfg, algo, backend, run_dir, writer, agent, env, eval_env, evaluation)
    except KeyboardInterrupt:
        raise Interrupted(run_dir, writer.last_checkpoint) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        env.close()
        if eval_env is not None:
            eval_env.close()
    summary["wall_s_this_session"] = round(time.monotonic() - t0, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return run_dir, summary


def _finish(
    cfg: TestbedConfig, algo: str, backend: str, run_dir: Path, writer: Any, agent: Any,
    env: Any, eval_env: Any, evaluation: Any,
) -> dict[str, Any]:  # fmt: skip
    """Export and check the actors, plot, and evaluate the baselines (twin)."""
    from coordinator.algorithms import ALGORITHMS
    from coordinator.algorithms.export import export_actors
    from coordinator.algorithms.rollout import evaluate

    actors = ALGORITHMS[algo].deployable_actors(agent)
    errors = export_actors(actors, env.agent_ids, env.spec, run_dir / "actors")
    writer.plot(f"{cfg.experiment}: {ALGORITHMS[algo].title} ({backend})")
    summary: dict[str, Any] = {
        "algo": algo, "title": ALGORITHMS[algo].title, "backend": backend,
        "steps": cfg.train.steps, "slots_per_step": env.num_envs, "agents": env.agent_ids,
        "final_eval": evaluation.as_dict() if evaluation else None,
        "actors": {a: f"actors/{a}.onnx" for a in env.agent_ids},
        "export_max_abs_error": max(errors.values()),
    }  # fmt: skip
    rows = _read_rows(writer.metrics_path)
    if rows:
        summary["elapsed_s"] = float(rows[-1]["elapsed_s"])
    if eval_env is not None:  # the baselines on the very evaluation tasks (twin)
        from coordinator.envs import make_vec_env

        seed = cfg.seed + EVAL_SEED_OFFSET
        baselines = {}
        for name in ("random", "greedy", "local"):
            twin = make_vec_env(cfg, cfg.train.eval_episodes, seed=seed)
            policy = ALGORITHMS[name].heuristic(twin, seed=cfg.seed)
            baselines[name] = evaluate(twin, policy, cfg.train.eval_episodes, seed).as_dict()
        summary["baselines_eval"] = baselines
    return summary


def _read_rows(path: Path) -> list[dict[str, str]]:
    from coordinator.algorithms.run_writer import read_metrics

    return read_metrics(path) if path.exists() else []
