"""Schedulers of the §B twin without learning (coordinator/envs/coedge_heuristics.py)
and its PettingZoo wrapper (coordinator/envs/coedge_parallel.py)."""

from __future__ import annotations

import copy

import numpy as np
from pettingzoo.test import parallel_api_test

from coordinator.envs.coedge_heuristics import (
    LeastQueueScheduler,
    RandomScheduler,
    SlotOptimum,
    TaskOptimum,
    planned_delays,
)
from coordinator.envs.coedge_parallel import CoedgeParallelEnv
from coordinator.envs.coedge_twin import CoedgeTwin
from testbed.coedge.split import split_task
from testbed.config import TestbedConfig, config_from_dict


def _twin(num_envs: int, seed: int = 0, **coedge: object) -> CoedgeTwin:
    return CoedgeTwin.from_config(config_from_dict({"coedge": coedge}), num_envs, seed)


def _mean_reward(env: CoedgeTwin, scheduler: object, steps: int) -> float:
    env.reset(seed=11)
    total, count = 0.0, 0
    for _ in range(steps):
        out = env.step(scheduler.act(env))  # type: ignore[attr-defined]
        total += float(out.reward[out.has_decision].sum())
        count += int(out.has_decision.sum())
    return total / count


def test_least_queue_picks_the_least_loaded_server_in_every_mode() -> None:
    for mode, want in (("one", [[2] * 3, [0] * 3]), ("subset", [[3] * 3, [0] * 3])):
        env = _twin(2, edge_ghz=[1.0, 2.0, 3.0], action_mode=mode)
        env.reset()
        env.queue_gcycles[:] = [[5.0, 4.0, 1.0], [0.0, 9.0, 9.0]]
        assert LeastQueueScheduler().act(env).tolist() == want
    env = _twin(1, edge_ghz=[1.0, 2.0, 3.0, 4.0], action_mode="topk", top_k=2)
    env.reset()
    env.queue_gcycles[:] = [[5.0, 0.5, 1.0, 7.0]]
    chosen = env.params.masks[LeastQueueScheduler().act(env)]
    assert chosen[0, 0].tolist() == [False, True, True, False]


def test_the_task_optimum_is_the_best_action_for_each_task() -> None:
    env = _twin(16, seed=1, edge_ghz=[10.0, 30.0, 50.0], max_tasks=4)
    env.reset()
    env.queue_gcycles[:] = np.random.default_rng(1).uniform(0, 40, env.queue_gcycles.shape)
    best = TaskOptimum().act(env)
    size, cycles, has = env.current_task()
    p = env.params
    whole = size[..., None] / p.rate_mbps + cycles[..., None] / p.edge_ghz
    wait = env.queue_gcycles[:, None, :] / p.edge_ghz + env.link_s
    for action in range(env.num_actions):  # no single action plans a shorter delay
        mask = np.broadcast_to(p.masks[action], whole.shape)
        delay = split_task(whole, wait, mask).finish_s
        assert (delay[has] >= planned_delays(env)[has, best[has]] - 1e-12).all()
    assert len(np.unique(best[has])) > 1


def test_the_slot_optimum_beats_every_other_joint_decision_it_is_checked_against() -> None:
    env = _twin(1, seed=2, edge_ghz=[1.0, 3.0], max_tasks=3, arrival_prob=0.9, deadline_s=2.0)
    env.reset()
    env.queue_gcycles[:] = [[0.5, 2.0]]
    optimum = SlotOptimum()
    plan, best = optimum.plan(env, 0)
    assert plan.shape[0] == env.slot_count[0].max() >= 2

    def play(actions: np.ndarray) -> float:
        twin = copy.deepcopy(env)
        return sum(float(twin.step(a[None]).reward.sum()) for a in actions)

    assert abs(play(plan) - best) < 1e-5  # as the twin pays it (float32 rewards)
    rng = np.random.default_rng(2)
    others = [np.asarray(rng.integers(0, env.num_actions, plan.shape)) for _ in range(40)]
    twin = copy.deepcopy(env)
    greedy: list[np.ndarray] = []
    for _ in range(plan.shape[0]):
        greedy.append(TaskOptimum().act(twin)[0])
        twin.step(greedy[-1][None])
    assert all(play(o) <= best + 1e-5 for o in [*others, np.stack(greedy)])


def test_smarter_schedulers_wait_less_than_random() -> None:
    for mode in ("one", "subset", "topk"):
        env = _twin(64, seed=3, max_tasks=20, arrival_prob=0.8, action_mode=mode)
        random = _mean_reward(env, RandomScheduler(seed=3), 60)
        least = _mean_reward(env, LeastQueueScheduler(), 60)
        task = _mean_reward(env, TaskOptimum(), 60)
        assert random < task and least < task, (mode, random, least, task)
        if mode == "one":  # one server per task: the least loaded beats a random one
            assert random < least, (random, least)


def test_the_parallel_env_passes_the_pettingzoo_api_test() -> None:
    cfg = config_from_dict({"coedge": {"max_tasks": 3, "episode_slots": 3}})
    env = CoedgeParallelEnv.from_config(cfg, seed=0)
    parallel_api_test(env, num_cycles=40)
    obs, infos = env.reset(seed=1)
    assert set(obs) == {f"bs-{i}" for i in range(5)} and "has_decision" in infos["bs-0"]
    _, rewards, _, truncs, infos = env.step({a: 30 for a in env.agents})
    assert all(r <= 0 for r in rewards.values()) and not any(truncs.values())
    assert {"delay_s", "planned_s", "late", "servers_used"} <= set(infos["bs-0"])


def test_the_default_system_runs_every_scheduler() -> None:
    env = CoedgeTwin.from_config(TestbedConfig(), 4, seed=0)
    env.reset()
    for scheduler in (RandomScheduler(0), LeastQueueScheduler(), TaskOptimum()):
        out = env.step(scheduler.act(env))
        assert np.isfinite(out.reward).all()
