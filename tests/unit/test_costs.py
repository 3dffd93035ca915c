"""The cost model of docs/papers.md §A, equations (3)–(14) and the reward (18), by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from testbed import costs
from testbed.config import FailedLatency, RewardConfig

# One task, worked by hand (the numbers every test below starts from):
#   D = 2 Mbit, C = 60 cycles/bit          → D·C = 2e6 · 60 = 1.2e8 cycles
#   x = 0.5                                → each share 6e7 cycles
#   f_i = 1.5 GHz, κ_i = 1e-28             (device)
#   r_ij = 100 Mbit/s, p_i = 0.5 W         (upload)
#   f_j = 7 GHz, κ_j = 1e-28               (edge)
#   model missing, S_m = 800 Mbit (100 MB), r_cj = 400 Mbit/s, T_load = 0.3 s,
#   p_c = 20 W, P_j = 50 W                 (switch)
TASK: dict[str, Any] = dict(
    task=costs.TaskWork(size_mbit=2.0, density_cycles_per_bit=60.0),
    decision=costs.OffloadDecision(ratio=0.5),
    device=costs.Device(ghz=1.5, kappa=1e-28, transmit_power_w=0.5),
    edge=costs.EdgeTarget(upload_rate_mbps=100.0, ghz=7.0, kappa=1e-28),
    switch=costs.ModelSwitch(
        cached=False, model_size_mbit=800.0, cloud_rate_mbps=400.0, load_s=0.3,
        cloud_power_w=20.0, edge_load_power_w=50.0,
    ),
)  # fmt: skip


def task_with(**changes: object) -> costs.TaskCost:
    """`task_cost` of TASK with fields changed, e.g. `cached=True` (found in its group)."""
    groups = dict(TASK)
    for name, value in changes.items():
        key = next(k for k, g in groups.items() if name in {f.name for f in dataclasses.fields(g)})
        groups[key] = dataclasses.replace(groups[key], **{name: value})
    return costs.task_cost(**groups)


def test_unit_conversions() -> None:
    assert costs.mb_to_mbit(100.0) == 800.0  # 100 MB · 8 bit/byte
    assert costs.bytes_to_mbit(125_000) == 1.0  # 125 000 B · 8 = 1e6 bit
    assert costs.cycles(2.0, 60.0) == 1.2e8


def test_local_latency_eq3() -> None:
    # T_loc = (1−x)·D·C/f_i = 0.5 · 1.2e8 / 1.5e9 = 0.04 s
    assert costs.local_latency_s(0.5, 2.0, 60.0, 1.5) == pytest.approx(0.04)
    # everything local: 1.2e8 / 1.5e9 = 0.08 s; everything offloaded: 0
    assert costs.local_latency_s(0.0, 2.0, 60.0, 1.5) == pytest.approx(0.08)
    assert costs.local_latency_s(1.0, 2.0, 60.0, 1.5) == 0.0


def test_local_energy_eq4() -> None:
    # E_loc = κ·f²·(1−x)·D·C = 1e-28 · (1.5e9)² · 6e7 = 1e-28 · 2.25e18 · 6e7 = 0.0135 J
    assert costs.local_energy_j(0.5, 2.0, 60.0, 1.5, 1e-28) == pytest.approx(0.0135)


def test_upload_eq5_eq6() -> None:
    # T_tx = x·D/r = 0.5 · 2 / 100 = 0.01 s; E_tx = p·T_tx = 0.5 · 0.01 = 0.005 J
    t_tx = costs.upload_latency_s(0.5, 2.0, 100.0)
    assert t_tx == pytest.approx(0.01)
    assert costs.upload_energy_j(0.5, t_tx) == pytest.approx(0.005)
    # nothing offloaded: 0 whatever the rate (even none); offloaded over no link: inf
    assert costs.upload_latency_s(0.0, 2.0, 0.0) == 0.0
    assert costs.upload_latency_s(0.5, 2.0, 0.0) == np.inf


def test_switch_eq7_eq8() -> None:
    # T_sw = S_m/r_cj + T_load = 800/400 + 0.3 = 2.3 s
    assert costs.switch_latency_s(False, 800.0, 400.0, 0.3) == pytest.approx(2.3)
    # E_sw = p_c·S_m/r_cj + P_j·T_load = 20 · 2 + 50 · 0.3 = 55 J
    assert costs.switch_energy_j(False, 800.0, 400.0, 0.3, 20.0, 50.0) == pytest.approx(55.0)
    # cached: no switch at all (c_jk = 1), T_load included
    assert costs.switch_latency_s(True, 800.0, 400.0, 0.3) == 0.0
    assert costs.switch_energy_j(True, 800.0, 400.0, 0.3, 20.0, 50.0) == 0.0


def test_edge_compute_eq9_eq10() -> None:
    # T_ec = x·D·C/f_j = 6e7 / 7e9 = 0.008571… s; with 0.1 s queueing: 0.108571… s
    assert costs.edge_compute_latency_s(0.5, 2.0, 60.0, 7.0) == pytest.approx(6e7 / 7e9)
    assert costs.edge_compute_latency_s(0.5, 2.0, 60.0, 7.0, 0.1) == pytest.approx(0.1 + 6e7 / 7e9)
    # nothing offloaded: no queueing either
    assert costs.edge_compute_latency_s(0.0, 2.0, 60.0, 7.0, 0.1) == 0.0
    # E_ec = κ_j·f_j²·x·D·C = 1e-28 · 49e18 · 6e7 = 0.294 J
    assert costs.edge_compute_energy_j(0.5, 2.0, 60.0, 7.0, 1e-28) == pytest.approx(0.294)


def test_task_cost_with_model_switch() -> None:
    c = costs.task_cost(**TASK)
    assert c.t_local_s == pytest.approx(0.04)
    assert c.t_tx_s == pytest.approx(0.01)
    assert c.t_switch_s == pytest.approx(2.3)
    assert c.t_edge_s == pytest.approx(6e7 / 7e9)
    # (11) T_es = 0.01 + 2.3 + 0.008571 = 2.318571 s; (13) T = max(0.04, 2.318571)
    assert c.t_edge_path_s == pytest.approx(2.3185714285714)
    assert c.latency_s == pytest.approx(2.3185714285714)
    # (12) E_es = 0.005 + 55 + 0.294 = 55.299 J; (14) E = 0.0135 + 55.299 = 55.3125 J
    assert c.e_local_j == pytest.approx(0.0135)
    assert c.e_tx_j == pytest.approx(0.005)
    assert c.e_switch_j == pytest.approx(55.0)
    assert c.e_edge_j == pytest.approx(0.294)
    assert c.e_edge_path_j == pytest.approx(55.299)
    assert c.energy_j == pytest.approx(55.3125)
    assert isinstance(c.latency_s, float)  # np.float64 for scalar inputs


def test_latency_is_the_max_of_the_two_paths() -> None:
    # cached: T_es = 0.01 + 0 + 0.008571 = 0.018571 s < T_loc = 0.04 s → T = T_loc
    c = task_with(cached=True)
    assert c.t_edge_path_s == pytest.approx(0.0185714285714)
    assert c.latency_s == pytest.approx(0.04)
    # mostly offloaded, x = 0.9: T_loc = 0.1 · 1.2e8/1.5e9 = 0.008 s;
    # T_es = 1.8/100 + 1.08e8/7e9 = 0.018 + 0.015429 = 0.033429 s → T = T_es
    c = task_with(cached=True, ratio=0.9)
    assert c.t_local_s == pytest.approx(0.008)
    assert c.latency_s == pytest.approx(0.018 + 1.08e8 / 7e9)
    # energy adds up, latency does not: E = E_loc + E_es
    assert c.energy_j == pytest.approx(c.e_local_j + c.e_tx_j + c.e_edge_j)


@pytest.mark.parametrize("overrides", [{"ratio": 0.0}, {"has_target": False}])
def test_no_edge_path_has_no_edge_costs(overrides: dict[str, object]) -> None:
    c = task_with(**overrides)
    # everything runs locally: T = T_loc = 1.2e8/1.5e9 = 0.08 s,
    # E = 1e-28 · 2.25e18 · 1.2e8 = 0.027 J; the missing model costs nothing
    assert c.latency_s == pytest.approx(0.08)
    assert c.energy_j == pytest.approx(0.027)
    for name in ("t_tx_s", "t_switch_s", "t_edge_s", "t_edge_path_s"):
        assert getattr(c, name) == 0.0, name
    for name in ("e_tx_j", "e_switch_j", "e_edge_j", "e_edge_path_j"):
        assert getattr(c, name) == 0.0, name


def test_local_only_needs_no_edge_parameters() -> None:
    work = costs.TaskWork(size_mbit=2.0, density_cycles_per_bit=60.0)
    device = costs.Device(ghz=1.5, kappa=1e-28)
    c = costs.task_cost(work, costs.OffloadDecision(ratio=0.0), device)
    assert c.latency_s == pytest.approx(0.08)
    with pytest.raises(ValueError, match=r"edge, switch, device\.transmit_power_w not given"):
        costs.task_cost(work, costs.OffloadDecision(ratio=0.5), device)
    with pytest.raises(ValueError, match="but switch not given"):
        costs.task_cost(**{**TASK, "switch": None})


def test_ratio_outside_unit_interval_is_an_error() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="ratio"):
            task_with(ratio=bad)


def test_broadcasting_equals_scalar_results() -> None:
    rng = np.random.default_rng(7)
    shape = (4, 5)  # environments × agents
    arrays: dict[str, dict[str, Any]] = {
        "task": {"size_mbit": rng.uniform(1, 3, shape),
                 "density_cycles_per_bit": rng.uniform(30, 80, shape)},
        "decision": {"ratio": rng.choice([0.0, 0.3, 0.7, 1.0], shape),
                     "has_target": rng.random(shape) < 0.8},
        # per agent, broadcast over envs; a scalar for every agent
        "device": {"ghz": rng.uniform(1, 2, shape[-1]), "kappa": 1e-28, "transmit_power_w": 0.5},
        "edge": {"upload_rate_mbps": rng.uniform(50, 150, shape), "ghz": rng.uniform(5, 9, shape),
                 "kappa": 1e-28, "queue_delay_s": rng.uniform(0, 0.2, shape)},
        "switch": {"cached": rng.random(shape) < 0.5,
                   "model_size_mbit": rng.uniform(720, 2000, shape), "cloud_rate_mbps": 400.0,
                   "load_s": rng.uniform(0.1, 0.4, shape), "cloud_power_w": 20.0,
                   "edge_load_power_w": 50.0},
    }  # fmt: skip
    kinds = {"task": costs.TaskWork, "decision": costs.OffloadDecision, "device": costs.Device,
             "edge": costs.EdgeTarget, "switch": costs.ModelSwitch}  # fmt: skip

    def groups(pick: Any) -> dict[str, Any]:
        return {g: kinds[g](**{n: pick(v) for n, v in fields.items()})
                for g, fields in arrays.items()}  # fmt: skip

    vec = costs.task_cost(**groups(lambda v: v))
    for i in range(shape[0]):
        for k in range(shape[1]):

            def one(value: Any, i: int = i, k: int = k) -> Any:
                return value[i, k] if np.ndim(value) == 2 else value[k] if np.ndim(value) else value

            scalar = costs.task_cost(**groups(one))
            for f in dataclasses.fields(costs.TaskCost):
                got = getattr(vec, f.name)
                assert got.shape == shape
                assert got[i, k] == pytest.approx(getattr(scalar, f.name)), (f.name, i, k)
    np.testing.assert_allclose(vec.latency_s, np.maximum(vec.t_local_s, vec.t_edge_path_s))


def test_reward_eq18() -> None:
    cfg = RewardConfig(omega_latency=0.5, omega_energy=0.5, penalty=2.0)
    # r = −w·(ω1·T + ω2·E) = −1.2 · (0.5·2 + 0.5·4) = −1.2 · 3 = −3.6
    assert costs.reward(2.0, 4.0, 1.2, cfg) == pytest.approx(-3.6)
    # with a broken constraint: −3.6 − φ = −3.6 − 2 = −5.6
    assert costs.reward(2.0, 4.0, 1.2, cfg, violated=True) == pytest.approx(-5.6)
    # scales: −1.2 · (0.5 · 2/2 + 0.5 · 4/8) = −1.2 · 0.75 = −0.9
    scaled = RewardConfig(latency_scale_s=2.0, energy_scale_j=8.0, penalty=2.0)
    assert costs.reward(2.0, 4.0, 1.2, scaled) == pytest.approx(-0.9)
    # vectorised, penalty per element
    r = costs.reward([2.0, 2.0], [4.0, 4.0], [1.2, 1.2], cfg, violated=[False, True])
    np.testing.assert_allclose(r, [-3.6, -5.6])


def test_a_task_not_completed_is_charged_as_failed_latency_says() -> None:
    elapsed = RewardConfig()
    deadline = RewardConfig(failed_latency=FailedLatency.DEADLINE)
    latency, limit = [0.8, 0.3, 0.0, 2.5], [2.0, 2.0, 2.0, 2.0]
    done = [True, False, False, False]  # on time; refused at 0.3 s; never served; late
    np.testing.assert_allclose(
        costs.charged_latency_s(latency, limit, done, elapsed), [0.8, 0.3, 2.0, 2.5]
    )
    np.testing.assert_allclose(
        costs.charged_latency_s(latency, limit, done, deadline), [0.8, 2.0, 2.0, 2.5]
    )
    # a refusal at 0.3 s then costs what a timeout does: −1·(0.5·2 + 0.5·0) − 2 = −3
    charged = costs.charged_latency_s(0.3, 2.0, False, deadline)
    assert costs.reward(charged, 0.0, 1.0, deadline, violated=True) == pytest.approx(-3.0)


def test_completed_against_deadline() -> None:
    assert costs.completed(1.5, 2.0)
    assert costs.completed(2.0, 2.0)  # on time is in time
    assert not costs.completed(2.0001, 2.0)
    np.testing.assert_array_equal(costs.completed([1.0, 3.0], [2.0, 2.0]), [True, False])


def test_uplink_capacity_check() -> None:
    # agents 0, 1 upload into edge 0 (100 + 150 = 250 > B_0 = 200); agent 2 into edge 1
    # (50 ≤ 200); agent 3 has no target; agent 4 targets edge 1 but uploads nothing
    check = costs.uplink_check(
        rate_mbps=[100.0, 150.0, 50.0, 500.0, 900.0],
        target=[0, 0, 1, -1, 1],
        capacity_mbps=[200.0, 200.0],
        uploading=[True, True, True, True, False],
    )
    np.testing.assert_allclose(check.load_mbps, [250.0, 50.0])
    np.testing.assert_array_equal(check.edge_overloaded, [True, False])
    np.testing.assert_array_equal(check.agent_violated, [True, True, False, False, False])


def test_uplink_check_batched() -> None:
    # two environments of three agents and two edges
    check = costs.uplink_check(
        rate_mbps=[[100.0, 100.0, 100.0], [250.0, 10.0, 10.0]],
        target=[[0, 1, 1], [1, 0, 0]],
        capacity_mbps=[150.0, 150.0],
    )
    np.testing.assert_allclose(check.load_mbps, [[100.0, 200.0], [20.0, 250.0]])
    np.testing.assert_array_equal(check.agent_violated, [[False, True, True], [True, False, False]])
