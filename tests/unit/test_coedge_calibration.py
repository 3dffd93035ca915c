"""The §B calibration (coordinator/calibration/coedge_fit.py, the file format
coordinator/coedge_calibration_file.py) and the twin that loads it: the fit recovers
known per-edge and per-link costs from synthetic shares, the file round-trips, and
the calibrated twin charges each share its fixed cost."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from coordinator.calibration.coedge_fit import (
    ShareSample,
    fit_coedge,
    fit_line,
    share_samples,
)
from coordinator.calibration.coedge_gap import live_choices, replay_twin
from coordinator.coedge_calibration_file import (
    CoedgeCalibration,
    CoedgeCalibrationError,
    FitMethod,
)
from coordinator.envs.coedge_twin import CoedgeParams, decide
from testbed.config.coedge import CoedgeConfig
from testbed.messages import TaskRecord
from testbed.tasks import Task
from testbed.types import Outcome

EDGE_IDS = ["edge-0", "edge-1", "edge-2"]
S_PER_GCYCLE = [0.05, 0.03, 0.01]  # f_j = 20, 33.3, 100 GHz
COMPUTE_FIXED_S = [0.004, 0.002, 0.001]
TX_FIXED_S = 0.009
REPLY_S = 0.015
PER_SIBLING_S = 0.004
RATE_MBPS = 20.0  # slow enough that the share sizes show in the upload times
INF = math.inf
CONFIGURED = [[INF, 450.0, 450.0], [450.0, INF, 450.0], [450.0, 450.0, INF]]


def synthetic(noise_s: float = 0.0, n: int = 40, seed: int = 0) -> list[ShareSample]:
    """Shares at every station → edge with known costs (plus Gaussian noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        for b in range(3):
            for j in range(3):
                mbit, gcycles = rng.uniform(0.1, 1.0), rng.uniform(0.1, 1.2)
                tx = TX_FIXED_S + (0.0 if b == j else mbit / RATE_MBPS)
                compute = COMPUTE_FIXED_S[j] + S_PER_GCYCLE[j] * gcycles
                tx, compute = (v + rng.normal(0, noise_s) for v in (tx, compute))
                queue, siblings = rng.uniform(0, 0.02), int(rng.integers(0, 3))
                finish = tx + queue + compute + REPLY_S + PER_SIBLING_S * siblings
                out.append(ShareSample(b, j, mbit, gcycles, tx, queue, compute, finish, siblings))
    return out


def test_the_fit_recovers_known_per_edge_and_per_link_costs() -> None:
    cal = fit_coedge(synthetic(), EDGE_IDS, [1.0, 1.5, 3.0], CONFIGURED, {"slots": 3})
    for e, s, c in zip(cal.edges, S_PER_GCYCLE, COMPUTE_FIXED_S, strict=True):
        assert e.method is FitMethod.LEAST_SQUARES and e.shares == 120
        assert e.s_per_gcycle == pytest.approx(s, rel=1e-9)
        assert e.compute_fixed_s == pytest.approx(c, abs=1e-9)
        assert e.effective_ghz == pytest.approx(1 / s) and e.r2 == pytest.approx(1.0)
    for ln in cal.links:
        assert ln.tx_fixed_s == pytest.approx(TX_FIXED_S, abs=1e-9)
        assert ln.reply_s == pytest.approx(REPLY_S, abs=1e-9)
        home = ln.station == ln.edge
        assert ln.rate_mbps == (INF if home else pytest.approx(RATE_MBPS, rel=1e-9))
    assert cal.per_sibling_s == pytest.approx(PER_SIBLING_S, abs=1e-9)
    o = cal.share_overhead_s()
    assert o[0][2] == pytest.approx(TX_FIXED_S + COMPUTE_FIXED_S[2] + REPLY_S)
    assert cal.measured == {"slots": 3, "shares_used": 9 * 40}


def test_the_fit_with_noise_stays_close_and_keeps_the_paced_rate_where_sizes_say_nothing() -> None:
    cal = fit_coedge(synthetic(noise_s=0.0005, n=200), EDGE_IDS, [1.0, 1.5, 3.0],
                     CONFIGURED, {})  # fmt: skip
    for e, s in zip(cal.edges, S_PER_GCYCLE, strict=True):
        assert e.s_per_gcycle == pytest.approx(s, rel=0.05)
    # uploads at 450 Mbit/s configured but 20 measured: the fit sees and keeps 20
    assert all(ln.rate_mbps == pytest.approx(RATE_MBPS, rel=0.1) for ln in cal.links
               if ln.station != ln.edge)  # fmt: skip
    flat = [replace(s, tx_s=TX_FIXED_S + (0.003 if k % 2 else -0.003))  # sizes explain nothing
            for k, s in enumerate(synthetic())]  # fmt: skip
    cal = fit_coedge(flat, EDGE_IDS, [1.0, 1.5, 3.0], CONFIGURED, {})
    remote = [ln for ln in cal.links if ln.station != ln.edge]
    assert all(ln.method is FitMethod.CONFIGURED_RATE and ln.rate_mbps == 450.0 for ln in remote)


def test_an_edge_no_share_measured_is_scaled_from_the_others_by_the_bench_clocks() -> None:
    only_two = [s for s in synthetic() if s.edge != 1]
    cal = fit_coedge(only_two, EDGE_IDS, [1.0, 1.0, 1.0], CONFIGURED, {})
    assert cal.edges[1].method is FitMethod.NOT_MEASURED
    assert cal.edges[1].s_per_gcycle == pytest.approx((0.05 + 0.01) / 2)
    assert cal.link(0, 1).method is FitMethod.NOT_MEASURED
    assert cal.link(0, 1).reply_s == pytest.approx(REPLY_S)


def test_a_line_without_spread_or_with_a_negative_intercept_goes_through_the_origin() -> None:
    assert fit_line([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]).method is FitMethod.THROUGH_ORIGIN
    line = fit_line([1.0, 2.0, 3.0], [1.0, 3.0, 5.0])  # intercept −1
    assert line.method is FitMethod.THROUGH_ORIGIN and line.intercept == 0.0
    assert line.slope == pytest.approx((1 + 6 + 15) / 14)


def test_share_samples_read_shares_csv_rows_in_the_twins_units() -> None:
    task = Task(task_id="agent-1/s000000/k000", agent_id="agent-1", slot=0,
                task_type="t", model_id="cgan-s", size_mbit=0.8,
                density_cycles_per_bit=1000.0, deadline_s=4.0, weight=1.0)  # fmt: skip
    row = {"task_id": task.task_id, "agent_id": "agent-1", "edge_id": "edge-2",
           "share": "0.25", "outcome": "completed", "t_tx_ms": "10", "t_edge_queue_ms": "2",
           "t_edge_compute_ms": "5", "finish_ms": "30"}  # fmt: skip
    failed = {**row, "outcome": "failed"}
    samples = share_samples([row, failed], {task.task_id: task},
                            ["agent-0", "agent-1", "agent-2"], EDGE_IDS, "home")  # fmt: skip
    # the failed share is not fitted, but it was the completed one's sibling
    assert samples == [ShareSample(1, 2, 0.2, 0.2, 0.01, 0.002, 0.005, 0.03, siblings=1,
                                   task_key=f"home/{task.task_id}")]  # fmt: skip


def test_the_file_round_trips_and_the_twin_charges_each_share_its_fixed_cost(
    tmp_path: Path,
) -> None:
    cal = fit_coedge(synthetic(), EDGE_IDS, [1.0, 1.5, 3.0], CONFIGURED, {"seed": 0})
    path = cal.save(tmp_path / "calibration.json")
    again = CoedgeCalibration.load(path)
    assert again.edges == cal.edges and again.links == cal.links
    cfg = CoedgeConfig(edge_ghz=[1.0, 1.5, 3.0], max_tasks=1, calibration=str(path))
    p = CoedgeParams.from_config(cfg)
    assert p.edge_ghz == pytest.approx([20.0, 1 / 0.03, 100.0])
    assert p.rate_mbps[0, 1] == pytest.approx(RATE_MBPS) and math.isinf(p.rate_mbps[1, 1])
    assert p.per_sibling_s == pytest.approx(PER_SIBLING_S)
    # one task at station 0, kept at home: D·C/f_0 + the home share's fixed cost
    size, cycles = np.array([1.0, 0, 0]), np.array([0.6, 0, 0])
    has = np.array([True, False, False])
    out = decide(p, np.zeros(3), np.zeros((3, 3)), (size, cycles, has), np.eye(3, dtype=bool))
    fixed = TX_FIXED_S + COMPUTE_FIXED_S[0] + REPLY_S
    assert out.delay_s[0] == pytest.approx(0.6 * 0.05 + fixed)
    # the edge's fixed compute occupies its queue: f_0·c_0 Gcycles beyond the task's
    assert out.queue_gcycles[0] == pytest.approx(0.6 + 20.0 * COMPUTE_FIXED_S[0])
    # split over edges 0 and 2: each share pays its fixed cost and one sibling's
    both = np.zeros((3, 3), dtype=bool)
    both[0, [0, 2]] = True
    out = decide(p, np.zeros(3), np.zeros((3, 3)), (size, cycles, has), both)
    x = out.shares[0]
    assert x[1] == 0 and x[0] + x[2] == pytest.approx(1.0)
    finish_0 = x[0] * 0.6 * 0.05 + fixed + PER_SIBLING_S
    o_02 = TX_FIXED_S + COMPUTE_FIXED_S[2] + REPLY_S
    finish_2 = x[2] * (1.0 / RATE_MBPS + 0.6 * 0.01) + o_02 + PER_SIBLING_S
    assert out.delay_s[0] == pytest.approx(max(finish_0, finish_2))
    plain = CoedgeParams.from_config(replace(cfg, calibration=None))
    assert plain.share_overhead_s is None and plain.edge_ghz.tolist() == [1.0, 1.5, 3.0]
    with pytest.raises(CoedgeCalibrationError, match="measured 3 edges"):
        CoedgeParams.from_config(replace(cfg, edge_ghz=[1.0, 2.0]))
    with pytest.raises(CoedgeCalibrationError, match="not a §B calibration"):
        CoedgeCalibration.from_json('{"system": "mato", "version": 1}')


def test_the_replay_of_home_on_hand_made_tasks() -> None:
    """Two slots at station 0 only, kept at home on a 1 GHz edge with Δ = 1 s: the
    second slot's task waits for what the first left (carry-over)."""
    cfg = CoedgeConfig(edge_ghz=[1.0, 1.0], max_tasks=1, slot_s=1.0, deadline_s=2.0)
    p = CoedgeParams.from_config(cfg)

    def task(slot: int, gcycles: float) -> Task:
        return Task(task_id=f"a/s{slot}", agent_id="agent-0", slot=slot, task_type="t",
                    model_id="m", size_mbit=1.0, density_cycles_per_bit=gcycles * 1e3,
                    deadline_s=2.0, weight=1.0)  # fmt: skip

    tasks = [[[task(0, 1.5)], []], [[task(1, 1.0)], []]]
    got = replay_twin(p, tasks, "home")
    # slot 0: 1.5 s; slot 1: 0.5 s left over + 1.0 s = 1.5 s; both within 2 s
    assert got.tasks == 2 and got.mean_delay_s == pytest.approx(1.5)
    assert got.completion_rate == 1.0


def test_a_split_task_ends_with_its_latest_noisy_share_and_the_twin_adds_that() -> None:
    """Tasks split two ways whose shares land d early and d late (about the model):
    a split task ends d after the model's common finish; one-share tasks add nothing;
    a task with a failed share (one sample of two) is not counted."""
    d = 0.006
    clean = synthetic()  # every residual 0: one-share tasks, keys all distinct
    base = [replace(s, task_key=f"r/{k}") for k, s in enumerate(clean)]
    pairs = []
    for k, (first, second) in enumerate(zip(clean[0::2], clean[1::2], strict=True)):
        if first.siblings != second.siblings:
            continue
        pairs += [
            replace(first, finish_s=first.finish_s - d, siblings=1, task_key=f"s/{k}"),
            replace(second, finish_s=second.finish_s + d, siblings=1, task_key=f"s/{k}"),
        ]
    half = replace(clean[0], siblings=1, task_key="failed/0")  # its sibling failed
    cal = fit_coedge(base + pairs + [half], EDGE_IDS, [1.0, 1.5, 3.0], CONFIGURED, {})
    assert cal.split_tasks == [0, len(pairs) // 2, 0]
    assert cal.split_excess_s[0] == 0.0 and cal.split_excess_s[2] == 0.0
    assert cal.split_excess_s[1] == pytest.approx(d, rel=0.05)
    p = CoedgeParams.from_config(CoedgeConfig(edge_ghz=[1.0, 1.5, 3.0], max_tasks=1))
    p = replace(p, share_overhead_s=np.zeros((3, 3)), split_excess_s=np.array([0, 0, d, 2 * d]))
    size, cycles, has = np.array([1.0, 0, 0]), np.array([0.6, 0, 0]), np.array([True, False, False])
    alone = decide(p, np.zeros(3), np.zeros((3, 3)), (size, cycles, has), np.eye(3, dtype=bool))
    bare = replace(p, split_excess_s=None)
    every = np.ones((3, 3), dtype=bool)
    split = decide(p, np.zeros(3), np.zeros((3, 3)), (size, cycles, has), every)
    plain = decide(bare, np.zeros(3), np.zeros((3, 3)), (size, cycles, has), every)
    assert alone.delay_s[0] == pytest.approx(0.6 / 1.0)  # at home: nothing added
    assert int((split.shares[0] > 0).sum()) == 3
    assert split.delay_s[0] == pytest.approx(plain.delay_s[0] + 2 * d)
    assert split.delay_s[1] == 0.0  # no task, no delay


def test_random_replays_the_boards_own_draws() -> None:
    """Given each task's recorded edges, the twin's `random` makes the same decisions:
    every task recorded at its home edge replays exactly as `home`."""
    cfg = CoedgeConfig(edge_ghz=[1.0, 2.0], max_tasks=2, slot_s=1.0, deadline_s=5.0)
    p = CoedgeParams.from_config(cfg)

    def task(station: int, slot: int, k: int) -> Task:
        return Task(task_id=f"agent-{station}/s{slot}/k{k}", agent_id=f"agent-{station}",
                    slot=slot, task_type="t", model_id="m", size_mbit=1.0,
                    density_cycles_per_bit=400.0 * (1 + k + station), deadline_s=5.0,
                    weight=1.0)  # fmt: skip

    tasks = [[[task(0, s, 0), task(0, s, 1)], [task(1, s, 0)]] for s in range(3)]
    records = [
        TaskRecord(task_id=t.task_id, agent_id=t.agent_id, slot=t.slot, task_type="t",
                   model_id="m", size_mbit=1.0, density_cycles_per_bit=400.0, deadline_s=5.0,
                   units=1, outcome=Outcome.COMPLETED, edge_id=f"edge-{b}")
        for slot in tasks for b, station in enumerate(slot) for t in station
    ]  # fmt: skip
    drawn = live_choices(records, ["edge-0", "edge-1"])
    assert drawn["agent-1/s0/k0"].tolist() == [False, True]
    home = replay_twin(p, tasks, "home")
    assert replay_twin(p, tasks, "random", seed=5, choices=drawn) == home
    split = {tid: np.ones(2, dtype=bool) for tid in drawn}
    assert replay_twin(p, tasks, "random", choices=split) == replay_twin(p, tasks, "split-all")
    assert replay_twin(p, tasks, "random", seed=1) != home  # its own draws otherwise
