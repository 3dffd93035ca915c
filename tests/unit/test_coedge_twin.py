"""The §B twin (coordinator/envs/coedge_twin.py): a hand-computed two-station,
two-slot example with carry-over, number by number; the carry-over recursion; episode
ends; the `DiscreteVecEnv` contract."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.envs.coedge_twin import CoedgeParams, CoedgeTwin
from testbed.config import ConfigError, TestbedConfig, config_from_dict
from testbed.config.coedge import CoedgeActionMode, CoedgeConfig

TWO_STATIONS = {
    "edge_ghz": [1.0, 2.0],
    "link_mbps": [[1.0, 10.0], [10.0, 1.0]],  # the diagonal is never used
    "slot_s": 1.0,
    "arrival_prob": 1.0,
    "max_tasks": 1,
    "deadline_s": 1.95,
    "deadline_penalty": 10.0,
    "action_mode": "subset",  # actions: 0 = {0}, 1 = {1}, 2 = {0, 1}
    "episode_slots": 2,
}


def _twin(num_envs: int = 1, seed: int = 0, **coedge: object) -> CoedgeTwin:
    cfg = config_from_dict({"coedge": {**TWO_STATIONS, **coedge}})
    return CoedgeTwin.from_config(cfg, num_envs, seed)


def _set_tasks(env: CoedgeTwin, size_mbit: list[float], cycles_g: list[float]) -> None:
    env.slot_size_mbit[0, 0] = size_mbit
    env.slot_cycles_g[0, 0] = cycles_g


def test_two_stations_two_slots_by_hand() -> None:
    env = _twin()
    env.reset()
    # slot 1 — station 0: D = 10 Mbit, 2 Gcycles over {0, 1}; station 1: D = 2, 3 Gcycles at home
    _set_tasks(env, [10.0, 2.0], [2.0, 3.0])
    out = env.step(np.array([[2, 1]]))
    # station 0: a = (0 + 2/1, 10/10 + 2/2) = (2, 2), w = (0, 0): T = 1, x = (½, ½)
    np.testing.assert_allclose(out.info["planned_s"], [[1.0, 1.5]])
    # station 1 plans a = 3/2 = 1.5 at home, but station 0's 1 Gcycle is ahead of it
    # at server 1 this step: 1/2 s more, 2.0 s > deadline 1.95: −10 · 1.95
    np.testing.assert_allclose(out.info["delay_s"], [[1.0, 2.0]])
    np.testing.assert_allclose(out.reward, [[-1.0, -19.5]])
    assert out.info["late"].tolist() == [[False, True]]
    assert out.info["servers_used"].tolist() == [[2, 1]]
    # queues (1, 1 + 3) and link 0→1 (½ · 10/10 s) drain one slot: f·Δ = (1, 2), Δ = 1
    np.testing.assert_allclose(env.queue_gcycles, [[0.0, 2.0]])
    np.testing.assert_allclose(env.link_s, 0.0)
    assert not out.done[0] and env.slot[0] == 1
    np.testing.assert_allclose(out.obs[0, :, 2:4], [[0.0, 1.0], [0.0, 1.0]])  # Q_j / (f_j Δ)

    # slot 2 — station 0: D = 1, 0.5 Gcycles over {0, 1}; station 1: D = 4, 2 Gcycles over {0, 1}
    _set_tasks(env, [1.0, 4.0], [0.5, 2.0])
    out = env.step(np.array([[2, 2]]))
    # station 0: a = (0.5, 0.1 + 0.25), w = (0, 2/2 carried): T = 0.794 < w_1, so server 1
    # is dropped: everything at home, 0.5 s
    # station 1: a = (4/10 + 2/1, 2/2) = (2.4, 1), w = (0, 1): T = 2/(1/2.4 + 1) = 24/17,
    # x = (10/17, 7/17); at server 0 station 0's 0.5 Gcycle is ahead: + 0.5 s
    np.testing.assert_allclose(out.info["planned_s"], [[0.5, 24 / 17]])
    np.testing.assert_allclose(out.info["delay_s"], [[0.5, 24 / 17 + 0.5]])
    np.testing.assert_allclose(out.reward, [[-0.5, -(24 / 17 + 0.5)]])
    assert out.info["servers_used"].tolist() == [[1, 2]]
    # the episode (2 slots) ends: the final observation holds the drained backlogs
    # Q = (0.5 + 2·10/17 − 1, 2 + 2·7/17 − 2), link 1→0: 10/17·4/10 − 1 < 0
    assert out.done[0] and not out.terminated[0]
    np.testing.assert_allclose(out.final_obs[0, 0, 2:4], [20 / 17 - 0.5, 14 / 17 / 2], rtol=1e-6)
    np.testing.assert_allclose(out.final_obs[0, 1, 4:6], [0.0, 0.0])
    assert (out.final_obs[0, :, 0] == 0).all()  # no task left in the ended episode
    # … and the new episode starts with empty backlogs
    np.testing.assert_allclose(env.queue_gcycles, 0.0)
    assert env.slot[0] == 0 and (out.obs[0, :, 2:6] == 0).all() and (out.obs[0, :, 0] > 0).all()


def test_backlogs_carry_over_as_the_recursion_says() -> None:
    env = _twin(num_envs=64, seed=4, arrival_prob=0.6, max_tasks=4, episode_slots=50)
    env.reset()
    rng = np.random.default_rng(4)
    queue = env.queue_gcycles.copy()
    arrived = np.zeros_like(queue)
    checked = carried = 0
    for _ in range(60):
        slot_before = env.slot.copy()
        _size, cycles, has = env.current_task()
        out = env.step(rng.integers(0, env.num_actions, (64, 2)))
        arrived += np.einsum("enb,en->eb", out.info["shares"], cycles * has)
        moved = env.slot != slot_before
        keep = moved & ~out.done
        # Q(t+1) = max(Q(t) + arrivals − f·Δ, 0); a skipped empty slot drains once more
        want = np.maximum(queue + arrived - env.params.edge_ghz * env.params.slot_s, 0.0)
        skipped = env.slot - slot_before - 1
        for extra in range(int(skipped[keep].max(initial=0))):
            more = keep & (skipped > extra)
            want[more] = np.maximum(want[more] - env.params.edge_ghz * env.params.slot_s, 0.0)
        np.testing.assert_allclose(env.queue_gcycles[keep], want[keep], atol=1e-9)
        checked += int(keep.sum())
        carried += int((want[keep] > 0).sum())
        new_slot = moved | out.done
        queue[new_slot] = env.queue_gcycles[new_slot]  # the next slot's starting backlog
        arrived[new_slot] = 0.0
    assert checked > 100 and carried > 20  # backlogs did carry over


def test_the_discrete_vec_env_contract() -> None:
    env = CoedgeTwin.from_config(TestbedConfig(), num_envs=8, seed=0)
    b = len(TestbedConfig().coedge.edge_ghz)
    assert (env.num_agents, env.num_actions, env.obs_dim) == (b, 2**b - 1, 3 * b + 3)
    assert env.agent_ids == [f"bs-{i}" for i in range(b)]
    obs = env.reset(seed=1)
    assert obs.shape == (8, b, 3 * b + 3) and obs.dtype == np.float32
    out = env.step(np.zeros((8, b), dtype=np.int64))
    assert out.reward.dtype == np.float32 and out.reward.shape == (8, b)
    assert out.has_decision.shape == (8, b) and out.done.shape == (8,)
    assert (out.reward[~out.has_decision] == 0).all()
    assert (out.reward[out.has_decision] < 0).all()
    with pytest.raises(ValueError, match="actions must lie"):
        env.step(np.full((8, b), 2**b - 1))
    env2 = CoedgeTwin.from_config(TestbedConfig(), num_envs=8, seed=0)
    np.testing.assert_array_equal(env2.reset(seed=1), obs)  # a seed repeats the run


def test_an_agent_out_of_tasks_waits_while_the_busiest_station_finishes() -> None:
    env = _twin(max_tasks=3, episode_slots=5)
    env.reset()
    env.slot_count[0] = [3, 1]
    seen = []
    for _ in range(3):
        out = env.step(np.array([[0, 1]]))
        seen.append(out.has_decision[0].tolist())
    assert seen == [[True, True], [True, False], [True, False]]
    assert env.slot[0] == 1 and env.cursor[0] == 0  # the slot ended after 3 steps


def test_episodes_last_episode_slots_slots() -> None:
    # every station gets 2 tasks a slot: a slot is 2 steps, an episode of 4 slots 8
    env = _twin(num_envs=3, arrival_prob=1.0, max_tasks=2, episode_slots=4)
    env.reset()
    done_at = [s + 1 for s in range(24) if env.step(np.zeros((3, 2), dtype=np.int64)).done.all()]
    assert done_at == [8, 16, 24]


def test_empty_slots_pass_without_a_step() -> None:
    env = _twin(num_envs=256, seed=5, arrival_prob=0.05, max_tasks=2, episode_slots=10)
    env.reset()
    out = env.step(np.zeros((256, 2), dtype=np.int64))
    assert (env.slot_count.max(axis=1) > 0).any()
    last = env.slot == 9
    assert ((env.slot_count.max(axis=1) > 0) | last).all()  # only the last slot may be empty
    assert out.has_decision.any() and env.slot.max() > 1


def test_config_rules() -> None:
    assert CoedgeParams.from_config(CoedgeConfig()).num_actions == 31
    topk = CoedgeParams.from_config(CoedgeConfig(action_mode=CoedgeActionMode.TOPK, top_k=3))
    assert topk.num_actions == 10 and (topk.masks.sum(axis=1) == 3).all()
    with pytest.raises(ConfigError, match="link_mbps"):
        config_from_dict({"coedge": {"edge_ghz": [1.0, 2.0], "link_mbps": [[1.0]]}})
    with pytest.raises(ConfigError, match="top_k"):
        config_from_dict({"coedge": {"edge_ghz": [1.0, 2.0], "action_mode": "topk"}})
    with pytest.raises(ConfigError, match="subset mode"):
        config_from_dict({"coedge": {"edge_ghz": [1.0] * 17}})
    rates = CoedgeConfig().rate_matrix_mbps(seed=0)
    assert rates[0][0] == np.inf and rates[0][1] == rates[1][0] and 400 <= rates[0][1] <= 500
