"""Schedulers of the §B twin that learn nothing (docs/coedge.md, "Baselines"): Random,
Least-queue, and two exact optima for small instances — of each task on its own, and
of a whole slot.

Each `act(env)` returns the actions (E, N) int64 for the tasks the twin's agents hold
now (coordinator/envs/coedge_twin.py), in the twin's action mode.

- `RandomScheduler`: an action uniformly at random.
- `LeastQueueScheduler`: the server with the least queued work Q_j (Gcycles; ties: the
  lower index); in `topk` mode the k least-loaded servers, in `subset` mode that one
  server alone.
- `TaskOptimum`: every action of the mode tried on the agent's task with the split
  rule, on the state it observes: the one with the least planned delay. Exact per
  task, myopic (ignores the other stations' decisions of the same step and the future).
- `SlotOptimum`: exhaustive over the joint decisions of all tasks of a slot (A^tasks
  combinations, played through the twin's own `decide`, contention included): the
  one with the largest summed reward, i.e. the least total delay where no task is late
  — the paper's objective per slot. Only for small instances (`max_combinations`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from coordinator.envs.coedge_twin import CoedgeTwin, decide
from testbed.coedge.split import split_task
from testbed.coedge.subsets import mask_index, one_mask, topk_mask
from testbed.config.coedge import CoedgeActionMode

Array = np.ndarray[Any, Any]


class CoedgeScheduler(Protocol):
    def act(self, env: CoedgeTwin) -> Array:
        """Actions (E, N) int64 for the agents' current tasks."""
        ...


class RandomScheduler:
    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, env: CoedgeTwin) -> Array:
        return self._rng.integers(0, env.num_actions, (env.num_envs, env.num_agents))


class LeastQueueScheduler:
    def act(self, env: CoedgeTwin) -> Array:
        p = env.params
        q = env.queue_gcycles  # (E, B)
        if p.action_mode is CoedgeActionMode.TOPK:
            k = int(p.masks[0].sum())
            mask = topk_mask(-q, k)
        else:
            mask = one_mask(q.argmin(axis=1), p.num_stations)
        index = mask_index(p.action_mode, mask, int(mask[0].sum()))
        return np.broadcast_to(index[:, None], (env.num_envs, env.num_agents)).astype(np.int64)


class TaskOptimum:
    def act(self, env: CoedgeTwin) -> Array:
        return np.asarray(planned_delays(env).argmin(axis=-1), dtype=np.int64)


def planned_delays(env: CoedgeTwin) -> Array:
    """(E, N, A) the delay the split rule plans for each agent's task under each action,
    on the state it observes (0 where it has no task)."""
    p = env.params
    size, cycles, has = env.current_task()
    whole = size[..., None] / p.rate_mbps + cycles[..., None] / p.edge_ghz  # (E, N, B)
    wait = env.queue_gcycles[:, None, :] / p.edge_ghz + env.link_s
    shape = (*whole.shape[:2], p.num_actions, p.num_stations)
    split = split_task(
        np.broadcast_to(whole[:, :, None, :], shape),
        np.broadcast_to(wait[:, :, None, :], shape),
        np.broadcast_to(p.masks, shape),
    )
    return split.finish_s * has[..., None]


class SlotOptimum:
    """The best joint decisions of each slot, found when the slot starts and played
    step by step."""

    def __init__(self, max_combinations: int = 1 << 16) -> None:
        self.max_combinations = max_combinations
        self._plans: dict[int, Array] = {}  # env → (steps, N) actions of its slot

    def act(self, env: CoedgeTwin) -> Array:
        out = np.zeros((env.num_envs, env.num_agents), dtype=np.int64)
        for e in range(env.num_envs):  # small instances only: a loop is fine
            if env.cursor[e] == 0:
                self._plans[e] = self.plan(env, e)[0]
            plan = self._plans[e]
            if env.cursor[e] < len(plan):
                out[e] = plan[env.cursor[e]]
        return out

    def plan(self, env: CoedgeTwin, e: int) -> tuple[Array, float]:
        """Env `e`'s best actions (steps, N) for the slot from its state now (at the
        slot's start), and their summed reward."""
        p = env.params
        count = env.slot_count[e]
        steps = int(count.max(initial=0))
        has = np.arange(steps)[:, None] < count[None, :]  # (steps, N)
        decisions = int(has.sum())
        combos = p.num_actions**decisions
        if combos > self.max_combinations:
            raise ValueError(
                f"{combos} joint decisions ({p.num_actions} actions, {decisions} tasks): "
                f"over max_combinations={self.max_combinations}"
            )
        if decisions == 0:
            return np.zeros((0, env.num_agents), dtype=np.int64), 0.0
        digits = np.arange(combos)[:, None] // p.num_actions ** np.arange(decisions) % p.num_actions
        acts = np.zeros((combos, steps, env.num_agents), dtype=np.int64)
        acts[:, has] = digits  # (C, steps, N): decision d is the d-th task in step order
        total = np.zeros(combos)
        queue = np.broadcast_to(env.queue_gcycles[e], (combos, p.num_stations))
        link = np.broadcast_to(env.link_s[e], (combos, *env.link_s.shape[1:]))
        for k in range(steps):
            task = (
                np.broadcast_to(env.slot_size_mbit[e, k], (combos, env.num_agents)),
                np.broadcast_to(env.slot_cycles_g[e, k], (combos, env.num_agents)),
                np.broadcast_to(has[k], (combos, env.num_agents)),
            )
            out = decide(p, queue, link, task, p.masks[acts[:, k]])
            queue, link = out.queue_gcycles, out.link_s
            total += out.reward.sum(axis=-1)
        best = int(total.argmax())
        return acts[best], float(total[best])


def evaluate(
    env: CoedgeTwin, scheduler: CoedgeScheduler, steps: int, seed: int
) -> dict[str, float]:
    """Mean reward, mean delay (s) and late fraction of the decisions `scheduler` makes
    in `steps` steps of `env` from `reset(seed)`."""
    env.reset(seed=seed)
    reward = delay = late = 0.0
    count = 0
    for _ in range(steps):
        out = env.step(scheduler.act(env))
        has = out.has_decision
        reward += float(out.reward[has].sum())
        delay += float(out.info["delay_s"][has].sum())
        late += float(out.info["late"][has].sum())
        count += int(has.sum())
    return {"reward": reward / count, "delay_s": delay / count, "late": late / count,
            "decisions": float(count)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`python -m coordinator.envs.coedge_heuristics [--config F] [--envs E] [--steps S]
    [--seed N]`: the baselines of every action mode on the config's `coedge:` system."""
    import argparse
    import dataclasses

    from testbed.config import load_config

    parser = argparse.ArgumentParser(prog="python -m coordinator.envs.coedge_heuristics")
    parser.add_argument("--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    print("mode    scheduler     mean reward  mean delay (s)  late   decisions")
    for mode in CoedgeActionMode:
        coedge = dataclasses.replace(cfg.coedge, action_mode=mode)
        env = CoedgeTwin.from_config(dataclasses.replace(cfg, coedge=coedge), args.envs, args.seed)
        schedulers: dict[str, CoedgeScheduler] = {
            "random": RandomScheduler(args.seed), "least-queue": LeastQueueScheduler(),
            "task-optimum": TaskOptimum(),
        }  # fmt: skip
        for name, scheduler in schedulers.items():
            m = evaluate(env, scheduler, args.steps, args.seed)
            print(f"{mode.value:7} {name:13} {m['reward']:11.4f}  {m['delay_s']:14.4f}  "
                  f"{m['late']:5.3f}  {int(m['decisions'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
