"""Both environments through PettingZoo's own API test: the twin, and the live bench
(real processes on the tiny zoo, embedded broker); the same agents and spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pettingzoo.test import parallel_api_test

from coordinator.envs import make_env, make_vec_env
from testbed.config import load_config

pytestmark = pytest.mark.slow


def tiny_bench(tmp_path: Path, tiny_zoo: Path) -> Path:
    """2 edges, 3 agents, links and compute not emulated, 3-slot episodes."""
    (tmp_path / "zoo").mkdir(exist_ok=True)
    if not (tmp_path / "zoo" / "tiny").exists():
        (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(tmp_path / "zoo")},
        "emulation": {"links": False, "compute": False},
        "edges": {
            "count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
            "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}],
        },
        "agents": {"count": 3, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "registry": {"heartbeat_interval_s": 0.3},
        "run": {"out_dir": str(tmp_path / "runs"), "start_timeout_s": 60.0},
        "twin": {"episode_slots": 3},
    }  # fmt: skip
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_twin_passes_the_parallel_api_test(tmp_path: Path, tiny_zoo: Path) -> None:
    env = make_env("twin", tiny_bench(tmp_path, tiny_zoo))
    parallel_api_test(env, num_cycles=10)
    _, infos = env.reset(seed=0)
    assert "paper model" in infos["agent-0"]["model"]  # no calibration file: says so
    _, rewards, _, truncs, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert set(rewards) == set(env.possible_agents) and not any(truncs.values())
    assert {"latency_s", "energy_j", "completed", "outcome", "reason"} <= set(infos["agent-0"])
    vec = make_vec_env(tiny_bench(tmp_path, tiny_zoo), num_envs=4, seed=1)
    assert vec.reset().shape == (4, 3, env.observation_space("agent-0").shape[0])


def test_the_live_bench_passes_it_with_the_twins_spaces(tmp_path: Path, tiny_zoo: Path) -> None:
    config = tiny_bench(tmp_path, tiny_zoo)
    twin = make_env("twin", config)
    live = make_env("live", load_config(config, env={}))
    try:
        parallel_api_test(live, num_cycles=10)
        assert live.possible_agents == twin.possible_agents
        for agent in live.possible_agents:
            assert live.observation_space(agent) == twin.observation_space(agent)
            assert live.action_space(agent) == twin.action_space(agent)
        # the same seed: the same tasks, positions, clocks, rates and caches (not the
        # queues: the board counts its own task in observe/act slots, docs/twin.md, and
        # an edge's last state may reach a busy host's boards late)
        live_obs, _ = live.reset(seed=0)
        twin_obs, _ = twin.reset(seed=0)
        names = twin.vec.spec.feature_names()
        keep = [i for i, n in enumerate(names) if not n.endswith("queue")]
        for agent in live.possible_agents:
            assert np.allclose(live_obs[agent][keep], twin_obs[agent][keep], atol=1e-6), agent
        actions = {a: live.action_space(a).sample() for a in live.agents}
        _, rewards, _, _, infos = live.step(actions)
        for agent in live.possible_agents:
            assert infos[agent]["outcome"] in ("completed", "failed")
            assert infos[agent]["latency_s"] > 0 and rewards[agent] < 0
    finally:
        live.close()
