"""Benchmark (issue 4): MADDPG updates per second against the machine's fp32 matmul rate.

Ours: `Maddpg.update` (coordinator/algorithms/maddpg.py) — target actions and Q, the
critic loss, the actor loss through the straight-through relaxations, one backward
pass, two Adam steps, two soft target updates — for the paper's set-up at the default
sizes: 10 agents, the default bench's observation (testbed.yaml: 45 numbers, 6 action
numbers), hidden 256, batch 1024, `train.threads` torch threads; minibatches drawn from
a replay buffer of random transitions (the update's cost does not depend on the data).
The FLOPs of one update are counted by `torch.utils.flop_counter.FlopCounterMode`
(matrix multiplies: what bounds it); the figure is the achieved GFLOP/s = FLOPs ×
updates/s. Cases: MADDPG (centralised critics, MATO) and SADDPG (independent critics).

Reference: the fp32 matrix-multiply rate of a 2048 × 2048 × 2048 `torch.mm` with the
same threads, measured in turn with the updates (the medians of interleaved rounds),
so both see the same machine load.

Goal (issue 4): achieved ≥ 0.5 × the measured matmul rate.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from benchmarks.common import REPO, Case, Goal, GoalKind, Result, median, report, standalone

# as `testbed train` does: spinning OpenMP threads stall each other on a shared machine
# (takes effect when torch is first imported by this process)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NAME = "maddpg_updates"
GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.5, "≥ 0.5 × fp32 matmul rate")
MATMUL_N = 2048


def _agent(centralised: bool, batch_size: int | None) -> tuple[Any, Any, Any]:
    """(agent, replay buffer, rng) for the default bench at the default sizes."""
    from coordinator.algorithms.maddpg import Maddpg, MaddpgArgs
    from coordinator.algorithms.replay import ReplayBuffer
    from testbed.config import load_config
    from testbed.observation import ObservationSpec

    cfg = load_config(REPO / "testbed.yaml", env={})
    spec = ObservationSpec.from_config(cfg)
    args = MaddpgArgs.from_config(cfg, centralised_critic=centralised, model_aware=True)
    if batch_size is not None:
        args = dataclasses.replace(args, batch_size=batch_size)
    n = cfg.agents.count
    agent = Maddpg(args, spec, n)
    rng = np.random.default_rng(0)
    rows = args.batch_size * 4
    buffer = ReplayBuffer(rows, n, spec.obs_dim, spec.action_dim)
    obs = rng.uniform(0, 1, (rows, n, spec.obs_dim)).astype(np.float32)
    actions = rng.uniform(0, 1, (rows, n, spec.action_dim)).astype(np.float32)
    rewards = -rng.uniform(0, 2, (rows, n)).astype(np.float32)
    buffer.add(obs, actions, rewards, obs[::-1].copy(), np.zeros(rows, bool))
    return agent, buffer, rng


def _measure(centralised: bool, rounds: int, updates: int, batch_size: int | None) -> Case:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    agent, buffer, rng = _agent(centralised, batch_size)
    torch.set_num_threads(agent.args.threads)
    batch = buffer.sample(agent.args.batch_size, rng)
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(batch)
    flops = counter.get_total_flops()
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    for _ in range(2):  # warm-up of both paths
        agent.update(buffer.sample(agent.args.batch_size, rng))
        torch.mm(a, b)
    update_s, matmul_s = [], []
    mm_calls = max(1, updates * 2)
    for _ in range(rounds):
        batches = [buffer.sample(agent.args.batch_size, rng) for _ in range(updates)]
        t0 = time.perf_counter()
        for batch in batches:
            agent.update(batch)
        update_s.append((time.perf_counter() - t0) / updates)
        t0 = time.perf_counter()
        for _ in range(mm_calls):
            torch.mm(a, b)
        matmul_s.append((time.perf_counter() - t0) / mm_calls)
    per_update = median(update_s)
    peak = 2 * MATMUL_N**3 / median(matmul_s) / 1e9
    achieved = flops / per_update / 1e9
    label = "MADDPG (centralised critics)" if centralised else "SADDPG (own critics)"
    return Case(
        f"{label}, 10 agents, batch {agent.args.batch_size}, {agent.args.threads} threads",
        achieved,
        peak,
        rounds,
        {
            "updates_per_s": 1 / per_update,
            "ms_per_update": per_update * 1e3,
            "gflop_per_update": flops / 1e9,
            "fraction_of_matmul": achieved / peak,
        },
    )


def run(quick: bool = False) -> Result:
    """Quick: MADDPG only, batch 256, 2 rounds of 1 update (a smoke check, seconds)."""
    if quick:
        cases = [_measure(True, rounds=2, updates=1, batch_size=256)]
    else:
        cases = [_measure(c, rounds=7, updates=5, batch_size=None) for c in (True, False)]
    notes = [
        f"{c.label}: {c.details['updates_per_s']:.2f} updates/s, "
        f"{c.details['gflop_per_update']:.2f} GFLOP/update, "
        f"{100 * c.details['fraction_of_matmul']:.0f} % of the fp32 matmul rate"
        for c in cases
    ]
    notes.append(f"load (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return report(Result(NAME, "GFLOP/s", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
