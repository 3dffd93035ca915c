"""Benchmark (issue 4): wall time to train MADDPG-MATO to a converged reward, the paper's
set-up in the twin.

Ours: the trainer of `testbed train --algo mato` (coordinator/algorithms/maddpg.py) on
the default bench — testbed.yaml: 10 devices, 3 edges, the twin with the paper's cost
model, every `train.*` default (16 environments, batch 1024, hidden 256, …) — timed
from its first step, evaluated noise-free every EVAL_EVERY steps on `eval_episodes`
fixed evaluation episodes (the same tasks each time).

Convergence: among the evaluations after learning started (step > warmup_steps), the
first from which it and the next CONFIRM − 1 evaluations all lie within 2 % of their
mean (|x − mean| ≤ 0.02·|mean|): the reward has reached its plateau. The figure is the
wall time up to that first evaluation (the confirming steps are run but not counted).
Training stops once confirmed, or at `train.steps` (then the figure is the whole run
and the case says "not converged").

Reference: the same number of steps without learning — the twin's steps and the
actors' forward passes only, what no trainer avoids — measured after training in the
same run (on min(steps, 200) steps, scaled). Context only.

Goal (issue 4): < 10 minutes on 2 cores. Quick: 40 steps, 10 of warm-up, batch 256,
an evaluation every 10 (a smoke check of the path; convergence not expected).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO,
    Case,
    Goal,
    GoalKind,
    Result,
    demo_zoo_or_tiny,
    report,
    standalone,
)

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `testbed train` (see there)

NAME = "train_wall"
GOAL = Goal(GoalKind.BELOW, 600.0, "< 10 min")
EVAL_EVERY = 25
CONFIRM = 4
TOLERANCE = 0.02


def converged_at(evals: list[tuple[int, float, float]]) -> tuple[int, float, float] | None:
    """The first (step, elapsed_s, reward) from which CONFIRM evaluations stay within
    TOLERANCE of their mean; None if none yet."""
    for i in range(len(evals) - CONFIRM + 1):
        window = [r for _, _, r in evals[i : i + CONFIRM]]
        mean = float(np.mean(window))
        if all(abs(r - mean) <= TOLERANCE * abs(mean) for r in window):
            return evals[i]
    return None


def _hooks(warmup_steps: int) -> Any:
    from coordinator.algorithms.rollout import Hooks

    class Watch(Hooks):
        def __init__(self, warmup_steps: int) -> None:
            self.warmup_steps = warmup_steps
            self.evals: list[tuple[int, float, float]] = []
            self.last_step = 0

        def row(self, metrics: dict[str, float]) -> None:
            self.last_step = int(metrics["step"])
            if not np.isnan(metrics["eval_reward"]) and self.last_step > self.warmup_steps:
                self.evals.append((self.last_step, metrics["elapsed_s"], metrics["eval_reward"]))

        def should_stop(self) -> bool:
            return converged_at(self.evals) is not None

    return Watch(warmup_steps)


def _baselines(cfg: Any, seed: int, catalog: Any) -> dict[str, float]:
    from coordinator.algorithms import get
    from coordinator.algorithms.rollout import evaluate
    from coordinator.envs import make_vec_env

    out = {}
    for name in ("random", "greedy", "local"):
        env = make_vec_env(cfg, cfg.train.eval_episodes, seed=seed, catalog=catalog)
        policy = get(name).heuristic(env, seed=cfg.seed)
        out[name] = evaluate(env, policy, cfg.train.eval_episodes, seed).episode_reward
    return out


def run(quick: bool = False) -> Result:
    import torch

    from coordinator.algorithms.maddpg import MaddpgArgs, train
    from coordinator.envs import make_vec_env
    from testbed.config import load_config
    from testbed.zoo.catalog import Catalog

    notes: list[str] = []
    catalog = Catalog.load(demo_zoo_or_tiny(notes))
    cfg = load_config(REPO / "testbed.yaml", env={})
    args = MaddpgArgs.from_config(cfg, centralised_critic=True, model_aware=True)
    args = dataclasses.replace(args, eval_every=EVAL_EVERY, checkpoint_every=10**9)
    if quick:
        args = dataclasses.replace(args, steps=40, warmup_steps=10, batch_size=256, eval_every=10)
    eval_seed = cfg.seed + 10**6
    env = make_vec_env(cfg, cfg.train.num_envs, seed=cfg.seed, catalog=catalog)
    evals = make_vec_env(cfg, cfg.train.eval_episodes, seed=eval_seed, catalog=catalog)
    watch = _hooks(args.warmup_steps)
    t0 = time.perf_counter()
    agent, _ = train(args, env, eval_env=evals, hooks=watch)
    total_s = time.perf_counter() - t0
    hit = converged_at(watch.evals)
    step, wall_s, reward = hit if hit else (watch.last_step, total_s, watch.evals[-1][2])

    # the reference: the same steps without learning (env + actors' forward passes)
    torch.set_num_threads(args.threads)
    probe = min(step, 200)
    obs = env.reset(seed=cfg.seed)
    t0 = time.perf_counter()
    for _ in range(probe):
        obs = env.step(agent.act(obs)).obs
    reference_s = (time.perf_counter() - t0) * step / max(1, probe)

    base = _baselines(cfg, eval_seed, catalog)
    state = f"converged at step {step}" if hit else f"not converged in {step} steps"
    label = f"MATO, 10 agents, 3 edges, {env.num_envs} envs, batch {args.batch_size}: {state}"
    notes += [
        f"eval reward per task at the figure's step {reward:.4f}; on the same tasks: "
        + ", ".join(f"{k} {v:.4f}" for k, v in base.items()),
        "evaluations (step: reward): " + ", ".join(f"{s}: {r:.4f}" for s, _, r in watch.evals),
        f"load (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
    ]
    details = {"converged_step": float(step), "eval_reward": reward, "total_s": total_s}
    return report(Result(NAME, "s", GOAL, [Case(label, wall_s, reference_s, 1, details)], notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
