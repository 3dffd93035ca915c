"""Processor sharing of the host's cores within a slot (coordinator/envs/twin_ps.py,
docs/twin.md "Processor sharing within a slot"): the event simulation against hand
computations; the twin with it and an idle host equals the twin without contention;
the fit by replay recovers the slowdown a run was made with
(coordinator/calibration/ps_replay.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from coordinator.calibration.contention import _Demand, ps_slowdowns
from coordinator.calibration.ps_replay import replayed_slowdown
from coordinator.calibration_file import Calibration, HostContention
from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin_params import TwinParams
from coordinator.envs.twin_ps import CoreShare, SlotJobs, node_lanes, share_cores
from testbed.config import TestbedConfig
from testbed.config.runs import SharedHost

from .test_twin import CATALOG, LOCAL, A, act, bench, calibration, give
from .test_twin_contention import env_of, record, shared


def jobs(lanes: list[list[tuple[float, float, float]]], *, sleep: list[float] | None = None
         ) -> SlotJobs:  # fmt: skip
    """One environment; per lane its jobs as (arrive, switch, work)."""
    num_l, num_j = len(lanes), max(1, max(len(x) for x in lanes))
    a = np.zeros((3, 1, num_l, num_j))
    for lane, items in enumerate(lanes):
        for k, job in enumerate(items):
            a[:, 0, lane, k] = job
    count = np.array([[len(x) for x in lanes]])
    return SlotJobs(a[0], a[1], a[2], count, np.ones(num_l), np.array(sleep or [0.0] * num_l))


def test_two_computations_share_one_core_until_the_shorter_ends() -> None:
    t = share_cores(jobs([[(0, 0, 1.0)], [(0, 0, 2.0)]]), CoreShare(1.0, 0.0, 0.0))
    # both at half speed until the first has done its 1 s (t = 2), then the other alone
    assert t.finish_s[0, :, 0] == pytest.approx([2.0, 3.0])
    alone = share_cores(jobs([[(0, 0, 1.0)], [(0, 0, 2.0)]]), CoreShare(2.0, 0.0, 0.0))
    assert alone.finish_s[0, :, 0] == pytest.approx([1.0, 2.0])  # a core each


def test_a_switch_loads_the_host_lightly_and_a_later_job_shares_only_its_overlap() -> None:
    # lane 0 computes 2 s from 0; lane 1's job arrives at 1, switches 0.5 s (0.5 cores),
    # then computes 1 s; one core, no background
    t = share_cores(jobs([[(0, 0, 2.0)], [(1.0, 0.5, 1.0)]]), CoreShare(1.0, 0.0, 0.5))
    # 0–1: lane 0 alone (1 s done); 1–1.5: D = 1.5 (1/3 s done); then D = 2: the 2/3 s
    # left take 4/3 s (t = 17/6), in which lane 1 did 2/3 s; its last 1/3 s alone
    assert t.finish_s[0, 0, 0] == pytest.approx(17 / 6)
    assert t.start_s[0, 1, 0] == pytest.approx(1.0)
    assert t.finish_s[0, 1, 0] == pytest.approx(17 / 6 + 1 / 3)


def test_a_lane_serves_its_jobs_fifo() -> None:
    t = share_cores(jobs([[(0.0, 0.1, 1.0), (0.5, 0.0, 1.0)]]), CoreShare(1.0, 0.0, 0.0))
    assert t.finish_s[0, 0, :] == pytest.approx([1.1, 2.1])
    assert t.start_s[0, 0, 1] == pytest.approx(1.1)  # waited for the first from 0.5
    late = share_cores(jobs([[(0.0, 0.0, 1.0), (3.0, 0.0, 1.0)]]), CoreShare(1.0, 0.0, 0.0))
    assert late.start_s[0, 0, 1] == 3.0 and late.finish_s[0, 0, 1] == pytest.approx(4.0)


def test_a_stretched_board_computes_on_a_whole_core_then_sleeps_without_one() -> None:
    cores, sleep = node_lanes(np.array([0.5, 1.0]))  # a 1.5 GHz board on a 3 GHz host
    assert list(cores) == [1.0, 1.0] and list(sleep) == [1.0, 0.0]
    t = share_cores(
        jobs([[(0, 0, 1.0)], [(0, 0, 3.0)]], sleep=list(sleep)), CoreShare(1.0, 0.0, 0.0)
    )
    # both at half speed until t = 2; the board then sleeps 2 s without a core, so the
    # other computes its last 2 s alone
    assert t.finish_s[0, :, 0] == pytest.approx([4.0, 4.0])


def test_environments_advance_each_to_its_own_events() -> None:
    one = jobs([[(0, 0, 1.0)], [(0, 0, 2.0)]])
    other = jobs([[(0.3, 0.2, 0.5)], []])
    fields = ("arrive_s", "switch_s", "work_s", "count")
    stacked = (np.concatenate([getattr(one, f), getattr(other, f)]) for f in fields)
    both = SlotJobs(*stacked, one.demand, one.sleep)
    t = share_cores(both, CoreShare(1.0, 0.0, 0.0))
    assert t.finish_s[:, 0, 0] == pytest.approx([2.0, 1.0])
    assert t.finish_s[1, 1, 0] == 0.0  # no job


def ps_calibration(cores: int, background: float, **kw: Any) -> Calibration:
    c = HostContention(
        host_cores=cores, background_load=background, local_demand=1.0, edge_demand=1.0,
        local_slowdown=1.0, edge_slowdown=1.0, fetch_cores=kw.pop("fetch_cores", 0.0),
        local_ps_slowdown=kw.pop("local_ps_slowdown", 1.0),
        edge_ps_slowdown=kw.pop("edge_ps_slowdown", 1.0), **kw,
    )  # fmt: skip
    return dataclasses.replace(calibration(), contention=c)


def _rollout(cfg: TestbedConfig, cal: Calibration) -> list[np.ndarray[Any, Any]]:
    env = env_of(cfg, cal, num_envs=8)
    env.reset(seed=3)
    got = []
    for name in ("random", "greedy", "local", "offload"):
        policy = make_heuristic(name, seed=3)
        for _ in range(5):
            out = env.step(policy.act(env))
            got += [out.latency_s, out.energy_j, out.completed, out.info["t_local_s"],
                    out.info["t_edge_compute_s"], out.info["t_edge_queue_s"]]  # fmt: skip
    return got


@pytest.mark.parametrize("servers", [1, 2])
def test_on_an_idle_host_processor_sharing_is_the_twin_without_contention(servers: int) -> None:
    cfg = bench(["m-a", "m-b"], edges={
        "count": 1, "cpu_ghz": 7.0, "cache_capacity_mb": 10.0, "cloud_link_mbps": 80.0,
        "parallel_slots": servers, "nodes": [{"position_m": [0.0, 0.0], "preload": ["m-a"]}],
    })  # fmt: skip
    idle = ps_calibration(cores=64, background=0.0)
    ps = shared(cfg, SharedHost.PROCESSOR_SHARING)
    assert TwinParams.from_config(ps, idle, catalog=CATALOG).sharing is not None
    plain = _rollout(cfg, idle)
    for a, b in zip(_rollout(ps, idle), plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    busy = _rollout(ps, ps_calibration(cores=1, background=1.0))
    assert not all(np.allclose(a, b) for a, b in zip(busy, plain, strict=True))  # can fail


def test_a_local_share_pays_for_what_overlaps_it_only() -> None:
    """One core, no background: board 0 (1.5 GHz: computes 1/2 of its time) and board 1
    (2 GHz: 2/3) compute 20 units of m-a each at once."""
    cfg = shared(bench(["m-a"]), SharedHost.PROCESSOR_SHARING)
    env = env_of(cfg, ps_calibration(cores=1, background=0.0))
    give(env, [A, A])
    out = act(env, [(-1, 0.0, True), (-1, 0.0, True)])
    fig0, fig1 = 20 * 0.015 / 1.5, 20 * 0.015 / 2.0  # 0.2 s and 0.15 s alone
    w0, w1 = fig0 / 2, fig1 * 2 / 3  # on a whole core: 0.1 s each
    # both at half speed until both have done 0.1 s (t = 0.2); then each sleeps
    assert w0 == pytest.approx(w1)
    got = out.info["t_local_s"][0] - LOCAL
    assert got == pytest.approx([0.2 * 2, 0.2 * 1.5], rel=1e-5)
    energy = out.energy_j[0]
    assert energy == pytest.approx([20 * 0.05 * 2.0, 20 * 0.05 * 2.0], rel=1e-5)  # wall share 1


def test_without_a_processor_sharing_fit_the_twin_says_so_and_prices_one_way() -> None:
    cfg = shared(bench(["m-a"]), SharedHost.PROCESSOR_SHARING)
    old = ps_calibration(cores=1, background=0.0, local_ps_slowdown=None)
    params = TwinParams.from_config(cfg, old, catalog=CATALOG)
    assert params.sharing is None and any("--refit" in n for n in params.notes)
    on = TwinParams.from_config(shared(cfg, SharedHost.ON), old, catalog=CATALOG)
    assert on.sharing is not None and not on.sharing.processor_sharing  # the slot count
    assert cfg.twin.host_shared(remote=True)


def test_the_calibration_file_keeps_the_fit_and_reads_files_without_it() -> None:
    cal = ps_calibration(cores=2, background=2.7, fetch_cores=0.15, local_ps_slowdown=3.4)
    again = Calibration.from_json(cal.to_json())
    assert again.contention == cal.contention
    assert "processor sharing 3.40 / 1.00" in again.summary()
    data = json.loads(cal.to_json())
    for key in ("fetch_cores", "local_ps_slowdown", "edge_ps_slowdown"):
        del data["contention"][key]
    old = Calibration.from_json(json.dumps(data))
    assert old.contention is not None and old.contention.local_ps_slowdown is None
    assert old.contention.fetch_cores == 0.15


def test_the_fit_by_replay_recovers_the_slowdown_a_run_was_made_with() -> None:
    """A `local` run made by the model itself: two boards (0.5 and 2/3 of a core on
    average), one core and a background load of 0.5; every unit costs 0.01 s alone at
    the host's clock. The fit must find the figures' slowdown over that price."""
    cfg = bench(["m-a"])
    demand = _Demand.of(cfg)
    host = CoreShare(1.0, 0.5, 0.15)
    ghz = {"agent-0": 1.5, "agent-1": 2.0}
    units = {(0, "agent-0"): 30, (0, "agent-1"): 10, (1, "agent-0"): 12, (1, "agent-1"): 40}
    records = []
    for slot in (0, 1):
        agents = ["agent-0", "agent-1"]
        stretch = np.array([1 / demand.agent[a] for a in agents])
        alone = np.array([units[slot, a] * 0.01 * 3.0 / ghz[a] for a in agents])
        cores, sleep = node_lanes(1 / stretch)
        lanes = SlotJobs(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)),
                         (alone / stretch)[None, :, None], np.ones((1, 2), dtype=np.int64),
                         cores, sleep)  # fmt: skip
        took = share_cores(lanes, host).finish_s[0, :, 0]
        records += [record(slot, a, local=units[slot, a], t_local_ms=1e3 * took[i])
                    for i, a in enumerate(agents)]  # fmt: skip
    s = replayed_slowdown(cfg, records, local=True, host=host,
                          demand=(demand.agent, demand.edge))  # fmt: skip
    cost = sum(r.t_local_ms / 1e3 * ghz[r.agent_id] for r in records)
    figure = cost / sum(r.local_units for r in records)  # GHz·s per unit, as fit.py
    assert figure / s == pytest.approx(0.01 * 3.0, rel=1e-6)
    # the measured overlap's estimate is the same here (every unit costs the same)
    per = ps_slowdowns(demand, records, host.cores, host.background, host.fetch_cores)
    measured = sum(t * ghz[r.agent_id] for r, _, t, _ in per)
    assert measured / sum(w * ghz[r.agent_id] for r, _, _, w in per) == pytest.approx(s, rel=1e-6)
