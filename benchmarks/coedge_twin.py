"""Benchmark (issue 12): the §B twin's scheduling decisions per second.

Ours: `CoedgeTwin.step` (coordinator/envs/coedge_twin.py) on the default system
(testbed.yaml `coedge:`: 5 stations, subset actions, up to 50 tasks per station and
slot) with 4096 environments (1024 with --quick) in lock-step, random actions (drawn
before timing): the split rule, the FIFO queues with the same step's contention, slot
ends with carry-over, new tasks and the next observations included — what a trainer's
environment step costs. Only steps where an agent had a task count as decisions.

Reference: the same decisions as a plain Python loop, one environment and one station
at a time — a_j and w_j per server, the finish-together split clipped and solved again,
the FIFO queue of the step, the reward and the next observation as a list — on the
same tasks and actions, in the same run. Its rewards are checked against ours on a
first step (the same model, or the benchmark fails).

Goal (issue 12): ≥ 1,000,000 decisions/s on 2 cores, i.e. < 1000 ns per decision.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np

from benchmarks.common import REPO, Case, Goal, GoalKind, Result, median, report, standalone

NAME = "coedge_twin"
GOAL = Goal(GoalKind.BELOW, 1000.0, "< 1000 ns per decision (≥ 1 M decisions/s)")


def _twin(num_envs: int) -> Any:
    from coordinator.envs.coedge_twin import CoedgeTwin
    from testbed.config import load_config

    cfg = load_config(REPO / "testbed.yaml", env={})
    return CoedgeTwin.from_config(cfg, num_envs, seed=0)


def _split(a: list[float], w: list[float], chosen: list[int]) -> tuple[dict[int, float], float]:
    """The finish-together shares over `chosen`, dropping servers with x_j < 0."""
    kept = list(chosen)
    while True:
        finish = (1.0 + sum(w[j] / a[j] for j in kept)) / sum(1.0 / a[j] for j in kept)
        shares = {j: (finish - w[j]) / a[j] for j in kept}
        negative = [j for j in kept if shares[j] < 0]
        if not negative:
            return shares, finish
        kept = [j for j in kept if j not in negative]


def reference_step(env: Any, e: int, actions: list[int]) -> tuple[list[float], list[list[float]]]:
    """Env `e`'s step in plain Python: the rewards and the next observations."""
    p = env.params
    b = p.num_stations
    f = [float(x) for x in p.edge_ghz]
    queue = [float(x) for x in env.queue_gcycles[e]]
    links = [[float(x) for x in row] for row in env.link_s[e]]
    k = min(int(env.cursor[e]), p.max_tasks - 1)
    rewards = [0.0] * b
    added = [0.0] * b  # work of this step's earlier stations, per server
    new_queue = list(queue)
    for s in range(b):
        if env.cursor[e] >= env.slot_count[e, s]:
            continue
        size = float(env.slot_size_mbit[e, k, s])
        cycles = float(env.slot_cycles_g[e, k, s])
        rate = [float(r) for r in p.rate_mbps[s]]
        a = [size / rate[j] + cycles / f[j] for j in range(b)]
        w = [queue[j] / f[j] + links[s][j] for j in range(b)]
        chosen = [j for j in range(b) if p.masks[actions[s], j]]
        shares, _ = _split(a, w, chosen)
        delay = 0.0
        for j, x in shares.items():
            if x > 0:
                delay = max(delay, x * a[j] + w[j] + added[j] / f[j])
        for j, x in shares.items():
            if x > 0:
                added[j] += x * cycles
                new_queue[j] += x * cycles
                links[s][j] += x * size / rate[j]
        late = delay > p.deadline_s
        rewards[s] = p.late_reward if late else -delay
    obs = [
        [*(q / (f[j] * p.slot_s) for j, q in enumerate(new_queue)),
         *(x / p.slot_s for x in links[s]), *(float(i == s) for i in range(b))]
        for s in range(b)
    ]  # fmt: skip
    return rewards, obs


def _check() -> None:
    """The reference prices a step as the twin does (rewards on the same tasks)."""
    env = _twin(16)
    env.reset(seed=3)
    actions = np.random.default_rng(3).integers(0, env.num_actions, (16, env.num_agents))
    before = copy.deepcopy(env)
    got = env.step(actions).reward
    want = [reference_step(before, e, actions[e].tolist())[0] for e in range(16)]
    if not np.allclose(got, np.array(want), rtol=1e-5, atol=1e-6):
        raise AssertionError("the reference loop and the twin price a step differently")


def run(quick: bool = False) -> Result:
    _check()
    num_envs, steps, repeats = (1024, 20, 3) if quick else (4096, 40, 5)
    env = _twin(num_envs)
    n = env.num_agents
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.num_actions, (num_envs, n)) for _ in range(4)]
    env.reset(seed=0)
    for a in actions:  # warm-up
        env.step(a)
    ours, ours_cpu, reference = [], [], []
    ref_envs = 8 if quick else 32
    for _ in range(repeats):  # interleaved: ours, then the reference, per repeat
        decisions = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(steps):
            decisions += int(env.step(actions[s % len(actions)]).has_decision.sum())
        ours.append((time.perf_counter() - t0) / decisions * 1e9)
        ours_cpu.append((time.process_time() - c0) / decisions * 1e9)
        ref_decisions = 0
        t0 = time.perf_counter()
        for e in range(ref_envs):
            reference_step(env, e, actions[e % len(actions)][e].tolist())
            ref_decisions += int((env.cursor[e] < env.slot_count[e]).sum())
        reference.append((time.perf_counter() - t0) / max(ref_decisions, 1) * 1e9)
    case = Case(
        label=f"{num_envs} envs x {n} stations, {env.params.action_mode.value} actions",
        ours=median(ours),
        reference=median(reference),
        samples=repeats,
        details={
            "ours_decisions_per_s": 1e9 / median(ours),
            "ours_decisions_per_cpu_s": 1e9 / median(ours_cpu),
            "reference_decisions_per_s": 1e9 / median(reference),
            "speedup": median(reference) / median(ours),
        },
    )
    notes = [
        f"ours {1e9 / case.ours:,.0f} decisions/s, reference {1e9 / case.reference:,.0f} "
        f"decisions/s: {case.reference / case.ours:,.0f}x; ours per CPU second "
        f"{1e9 / median(ours_cpu):,.0f} (wall and CPU differ when other work shares the cores)",
        f"{env.num_actions} actions, up to {env.params.max_tasks} tasks per station and slot "
        f"(p = {env.params.arrival_prob:g}); {math.prod(actions[0].shape)} agent-steps a step",
    ]
    return report(Result(NAME, "ns/decision", GOAL, [case], notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
