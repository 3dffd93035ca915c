"""Benchmark (issue 4): the digital twin's throughput in agent-steps per second.

Ours: `TwinEnv.step` (coordinator/envs/twin.py) on the default bench (testbed.yaml: 10
agents, 3 edges, 3 task types; the paper model, which the reference implements) with
4096 environments (1024 with --quick) stepped in lock-step, random actions (drawn
before timing), sampled tasks, caches, FIFO edges, rewards and the next observations
included — what a trainer's environment step costs.

Reference: the same slot as a plain Python loop, one environment and one agent at a
time — `units_for` / `split_units` (testbed/zoo/workload.py), `costs.task_cost` and
`costs.reward` per task, a FIFO list per edge, an `OrderedDict` LRU cache per edge and
`observe_one` for each next observation — on the same tasks and actions, in the same
run. Its rewards are checked against ours on a first step (the same cost model, or
the benchmark fails).

Goal (issue 4): ≥ 1,000,000 agent-steps/s, i.e. < 1000 ns per agent-step (the unit
here, so the goal reads as a time; agent-steps/s are printed beside it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO,
    Case,
    Goal,
    GoalKind,
    Result,
    demo_zoo_or_tiny,
    median,
    report,
    standalone,
)

NAME = "twin_throughput"
GOAL = Goal(GoalKind.BELOW, 1000.0, "< 1000 ns per agent-step (≥ 1 M agent-steps/s)")


def _twin(num_envs: int, notes: list[str]) -> Any:
    from coordinator.envs.twin import TaskSource, TwinEnv
    from coordinator.envs.twin_params import TwinParams
    from testbed.config import load_config
    from testbed.zoo.catalog import Catalog

    cfg = load_config(REPO / "testbed.yaml", env={})
    catalog = Catalog.load(demo_zoo_or_tiny(notes))
    params = TwinParams.from_config(cfg, catalog=catalog, use_config_calibration=False)
    return TwinEnv(params, num_envs, tasks=TaskSource.SAMPLED, seed=0), catalog


class ReferenceSlot:
    """The twin's slot, one environment and one agent at a time, in plain Python."""

    def __init__(self, env: Any, catalog: Any) -> None:
        self.p = p = env.params
        self.spec = env.spec
        self.entries = [catalog.get(m) for m in p.models]
        e, m = env.num_envs, p.num_edges
        # per env and edge: an LRU of model indices (least recent first), as preloaded
        self.caches = [
            [OrderedDict((int(u), None) for u in np.argsort(env._pre_last[j])
                         if env._pre_cached[j, u]) for j in range(m)]
            for _ in range(e)
        ]  # fmt: skip

    def step(self, env_index: int, tasks: list[Any], decisions: list[Any]) -> list[float]:
        from testbed import costs
        from testbed.zoo.workload import split_units, units_for

        p, cfg = self.p, self.p.cfg
        rewards = [0.0] * len(tasks)
        uploads = []
        plans = {}
        for i, (has, k, size) in enumerate(tasks):
            if not has:
                continue
            target, ratio, download = decisions[i]
            u = int(p.type_model[k])
            density = float(p.type_density[k])
            units = units_for(size, density, self.entries[u], cfg.tasks.flops_per_cycle)
            _, edge_units = split_units(units, ratio if target >= 0 else 0.0)
            if edge_units == 0:
                target = -1
            share = edge_units / units if target >= 0 else 0.0
            arrive = (
                float(costs.upload_latency_s(share, size, p.pace_rate_mbps[i, target]))
                if target >= 0
                else 0.0
            )
            plans[i] = (k, u, size, density, target, share, download)
            if target >= 0:
                uploads.append((arrive, i))
        edge_free = [0.0] * p.num_edges
        served: dict[int, tuple[bool, float, bool]] = {}  # hit, queue delay, failed
        for arrive, i in sorted(uploads):
            k, u, size, density, target, share, download = plans[i]
            cache = self.caches[env_index][target]
            start = max(arrive, edge_free[target])
            hit = u in cache
            if hit:
                cache.move_to_end(u)
            elif not download or p.model_size_bytes[u] > p.edge_capacity_bytes[target]:
                served[i] = (False, start - arrive, True)
                edge_free[target] = start
                continue
            else:
                used = sum(p.model_size_bytes[v] for v in cache)
                while used + p.model_size_bytes[u] > p.edge_capacity_bytes[target]:
                    victim, _ = cache.popitem(last=False)
                    used -= p.model_size_bytes[victim]
                cache[u] = None
            switch = 0.0 if hit else float(p.switch_s[target, u])
            compute = float(costs.edge_compute_latency_s(share, size, density, p.edge_ghz[target]))
            edge_free[target] = start + switch + compute
            served[i] = (hit, start - arrive, False)
        specs = cfg.edge_specs()
        for i, plan in plans.items():
            hit, queue, failed = served.get(i, (True, 0.0, False))
            rewards[i] = self._reward(i, plan, specs, (hit, queue, failed))
        return rewards

    def _reward(
        self, i: int, plan: tuple[Any, ...], specs: list[Any], served: tuple[bool, float, bool]
    ) -> float:
        """Agent i's reward for its task `plan` as the edge served it (`served`: hit, queue
        delay, refused at once); `specs`: the edges' specs."""
        from coordinator.envs.twin_params import DEFAULT_LOAD_S_PER_MB
        from testbed import costs

        p, cfg = self.p, self.p.cfg
        k, u, size, density, target, share, _download = plan
        hit, queue, failed = served
        f_i = float(p.agent_ghz[i])
        if failed:  # the edge refused at once: the upload and the local share only
            rate = p.pace_rate_mbps[i, target]
            t_tx = float(costs.upload_latency_s(share, size, rate))
            latency = max(float(costs.local_latency_s(share, size, density, f_i)), t_tx + queue)
            energy = float(costs.local_energy_j(share, size, density, f_i, p.agent_kappa[i]))
            energy += float(costs.upload_energy_j(p.agent_transmit_w[i], t_tx))
        else:
            j = max(target, 0)
            spec = specs[j]
            power = spec.energy.power
            cost = costs.task_cost(
                costs.TaskWork(size_mbit=size, density_cycles_per_bit=density),
                costs.OffloadDecision(ratio=share, has_target=target >= 0),
                costs.Device(
                    ghz=f_i, kappa=p.agent_kappa[i], transmit_power_w=p.agent_transmit_w[i]
                ),
                costs.EdgeTarget(upload_rate_mbps=p.pace_rate_mbps[i, j], ghz=p.edge_ghz[j],
                                 kappa=p.edge_kappa[j], queue_delay_s=queue),
                costs.ModelSwitch(
                    cached=hit, model_size_mbit=p.model_size_bytes[u] * 8 / 1e6,
                    cloud_rate_mbps=spec.cloud_link_mbps,
                    load_s=DEFAULT_LOAD_S_PER_MB * p.model_size_bytes[u] / 1e6,
                    cloud_power_w=cfg.cloud.transmit_power_w,
                    edge_load_power_w=power.idle_w + power.active_w_per_core,
                ),
            )  # fmt: skip
            latency, energy = float(cost.latency_s), float(cost.energy_j)
        ok = not failed and latency <= float(p.type_deadline_s[k])
        return float(costs.reward(latency, energy, p.type_weight[k], cfg.reward, violated=not ok))

    def observe(self, env_index: int, tasks: list[Any]) -> list[Any]:
        from testbed.observation import observe_one

        p, spec = self.p, self.spec
        caches = self.caches[env_index]
        free = [
            1.0 - sum(p.model_size_bytes[u] for u in c) / p.edge_capacity_bytes[j]
            for j, c in enumerate(caches)
        ]
        held = [[float(spec.models.index(m) in c) for m in spec.models] for c in caches]
        out = []
        for i, (_has, k, size) in enumerate(tasks):
            out.append(observe_one(
                spec, task_type=int(k), size_mbit=size, density_cycles_per_bit=float(
                    p.type_density[k]), deadline_s=float(p.type_deadline_s[k]),
                self_position_m=p.agent_position_m[i], self_ghz=float(p.agent_ghz[i]),
                self_queue=0.0, edge_position_m=p.edge_position_m, edge_ghz=p.edge_ghz,
                rate_mbps=p.rate_mbps[i], edge_queue=[0.0] * p.num_edges,
                edge_alive=[1.0] * p.num_edges, edge_cache_free=free, edge_cached=held,
            ))  # fmt: skip
        return out


def _tasks(env: Any, e: int) -> list[Any]:
    return [
        (bool(env.has_task[e, i]), int(env.task_type[e, i]), float(env.size_mbit[e, i]))
        for i in range(env.num_agents)
    ]


def _decisions(env: Any, actions: np.ndarray, e: int) -> list[Any]:
    target, ratio, download = env.decode(actions)
    return [
        (int(target[e, i]), float(ratio[e, i]), bool(download[e, i])) for i in range(env.num_agents)
    ]


def _check(notes: list[str]) -> None:
    """The reference prices a slot as the twin does (rewards on the same tasks)."""
    env, catalog = _twin(16, notes)
    env.reset(seed=3)
    ref = ReferenceSlot(env, catalog)
    actions = np.random.default_rng(3).uniform(0, 1, (16, env.num_agents, env.spec.action_dim))
    tasks = [_tasks(env, e) for e in range(16)]
    want = [ref.step(e, tasks[e], _decisions(env, actions, e)) for e in range(16)]
    got = env.step(actions.astype(np.float32)).reward
    if not np.allclose(got, np.array(want), rtol=1e-4, atol=1e-6):
        raise AssertionError("the reference loop and the twin price a slot differently")


def run(quick: bool = False) -> Result:
    notes: list[str] = []
    _check(notes)
    num_envs, steps, repeats = (1024, 10, 3) if quick else (4096, 25, 5)
    env, catalog = _twin(num_envs, notes)
    n = env.num_agents
    rng = np.random.default_rng(0)
    shape = (num_envs, n, env.spec.action_dim)
    actions = [rng.uniform(0, 1, shape).astype(np.float32) for _ in range(4)]
    env.reset(seed=0)
    for a in actions:  # warm-up
        env.step(a)
    ours = []
    ours_cpu = []
    ref_envs, ref_steps = (2, 5) if quick else (4, 10)
    reference = []
    ref = ReferenceSlot(env, catalog)
    for _ in range(repeats):  # interleaved: ours, then the reference, per repeat
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(steps):
            env.step(actions[s % len(actions)])
        ours.append((time.perf_counter() - t0) / (steps * num_envs * n) * 1e9)
        ours_cpu.append((time.process_time() - c0) / (steps * num_envs * n) * 1e9)
        t0 = time.perf_counter()
        for s in range(ref_steps):
            for e in range(ref_envs):
                tasks = _tasks(env, e)
                ref.step(e, tasks, _decisions(env, actions[s % len(actions)], e))
                ref.observe(e, tasks)
        reference.append((time.perf_counter() - t0) / (ref_steps * ref_envs * n) * 1e9)
    case = Case(
        label=f"{num_envs} envs x {n} agents",
        ours=median(ours),
        reference=median(reference),
        samples=repeats,
        details={
            "ours_agent_steps_per_s": 1e9 / median(ours),
            "ours_agent_steps_per_cpu_s": 1e9 / median(ours_cpu),
            "reference_agent_steps_per_s": 1e9 / median(reference),
            "speedup": median(reference) / median(ours),
        },
    )
    notes += [
        f"ours {1e9 / case.ours:,.0f} agent-steps/s, reference {1e9 / case.reference:,.0f} "
        f"agent-steps/s: {case.reference / case.ours:,.0f}x; ours per CPU second "
        f"{1e9 / median(ours_cpu):,.0f} (wall and CPU differ when other work shares the cores)",
        f"cost model: {env.params.source}",
    ]
    return report(Result(NAME, "ns/agent-step", GOAL, [case], notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
