"""The CartPole check (coordinator/cartpole.py): the `DiscreteVecEnv` adapter keeps the
contract of coordinator/envs/discrete.py, the paired gains are computed as stated, and
a tiny run writes its report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from coordinator.cartpole import (
    PAPER_GAIN_VS_DQN_PCT,
    CartPoleVecEnv,
    main,
    summarise,
)


def test_adapter_shapes_and_auto_reset_on_a_fall() -> None:
    env = CartPoleVecEnv(num_envs=3)
    obs = env.reset(seed=0)
    assert obs.shape == (3, 1, 4) and obs.dtype == np.float32
    assert (env.num_agents, env.obs_dim, env.num_actions) == (1, 4, 2)
    steps = 0
    while True:  # always pushing left drops the pole within a few dozen steps
        step = env.step(np.zeros((3, 1), np.int64))
        steps += 1
        assert step.reward.shape == (3, 1) and step.has_decision.all()
        if step.done.any():
            break
        np.testing.assert_array_equal(step.obs, step.final_obs)
        assert steps < 500
    e = int(np.flatnonzero(step.done)[0])
    assert step.terminated[e]  # a fall is terminal, not a time limit
    assert not np.array_equal(step.obs[e], step.final_obs[e])  # reset on the spot
    assert np.all(np.abs(step.obs[e]) <= 0.05)  # CartPole starts within ±0.05
    env.close()


def test_same_seed_same_episode() -> None:
    first, second = CartPoleVecEnv(), CartPoleVecEnv()
    np.testing.assert_array_equal(first.reset(seed=7), second.reset(seed=7))
    assert not np.array_equal(first.reset(seed=7), second.reset(seed=8))


def _rows() -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    for seed, (dsac, sac, dqn) in enumerate([(110, 100, 100), (130, 100, 110), (120, 100, 90)]):
        for alg, value in (("dsac", dsac), ("sac", sac), ("dqn", dqn)):
            rows.append({"algorithm": alg, "seed": seed, "avg_train_return": value,
                         "greedy_return": 2 * value, "wall_s": 1.0})  # fmt: skip
    return rows


def test_gains_are_paired_by_seed_in_percent_of_the_baseline() -> None:
    gains = summarise(_rows())["gains"]["avg_train_return"]
    vs_sac, vs_dqn = gains["dsac_vs_sac"], gains["dsac_vs_dqn"]
    assert vs_sac["difference"] == pytest.approx(20.0)  # (10 + 30 + 20) / 3
    assert vs_sac["gain_pct"] == pytest.approx(20.0)  # of SAC's mean 100
    assert vs_dqn["difference"] == pytest.approx(20.0)  # (10 + 20 + 30) / 3
    assert vs_dqn["gain_pct"] == pytest.approx(20.0)
    # per-seed differences 10, 20, 30: s = 10, t(0.975, 2) = 4.303 → ±24.84
    assert vs_sac["difference_high"] - vs_sac["difference"] == pytest.approx(24.84, abs=0.01)
    assert vs_sac["pairs"] == 3 and 0.0 < vs_sac["p_value"] < 1.0


def test_a_tiny_check_writes_runs_summary_and_report(tmp_path: Path) -> None:
    out = tmp_path / "cartpole"
    code = main(["--seeds", "2", "--steps", "40", "--eval-episodes", "1", "--out", str(out)])
    assert code == 0
    with (out / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["algorithm"], r["seed"]) for r in rows) == sorted(
        (a, s) for a in ("dsac", "sac", "dqn") for s in ("0", "1")
    )
    assert {r["env_steps"] for r in rows} == {"40"}  # equal environment steps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithms"]["dsac"]["avg_train_return"]["n"] == 2
    report = (out / "report.md").read_text()
    assert f"+{PAPER_GAIN_VS_DQN_PCT} %" in report
    assert "python -m coordinator.cartpole --seeds 2 --steps 40" in report
    assert not math.isnan(summary["gains"]["greedy_return"]["dsac_vs_dqn"]["difference"])
