"""The twin's contention for a shared host (coordinator/envs/twin_contention.py, docs/twin.md
"Contention on a shared host"): off, the twin is the one it was, bit for bit; on, a
slot's units cost its slowdown over the calibration run's; the fit records how busy the
calibration runs kept the host (coordinator/calibration/contention.py) and prices
switches from the run's own downloads."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.calibration.contention import host_contention
from coordinator.calibration.fidelity import _contention_line
from coordinator.calibration.fit import fit_calibration
from coordinator.calibration.switches import SwitchSample
from coordinator.calibration_file import Calibration, HostContention
from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from testbed.config import TestbedConfig
from testbed.config.runs import SharedHost
from testbed.messages import TaskRecord
from testbed.types import EnergyMethod, EnergyPart, Outcome

from .test_twin import CATALOG, LOCAL, MODELS, A, act, bench, calibration, give

GOLDEN_CALIBRATED = "d319383d8c870e6134fba45df8ea5779176d79052925012a8011873502ea51cb"
GOLDEN_PAPER = "62c1207af3e21084464dfafa28372b718ab69b262174912bdeee469554c65209"
"""sha256 of `_rollout` by the twin before contention was modelled (this checkout's
code at the time, on x86-64 with the project's numpy): the option off must not move a
bit of it."""


def contended(cores: int = 1, background: float = 1.0, **kw: Any) -> Calibration:
    c = HostContention(
        host_cores=cores, background_load=background, local_demand=1.0, edge_demand=1.0,
        local_slowdown=kw.pop("local_slowdown", 1.0), edge_slowdown=kw.pop("edge_slowdown", 1.0),
        **kw,
    )  # fmt: skip
    return dataclasses.replace(calibration(), contention=c)


def shared(cfg: TestbedConfig, mode: SharedHost) -> TestbedConfig:
    return dataclasses.replace(cfg, twin=dataclasses.replace(cfg.twin, shared_host=mode))


def env_of(cfg: TestbedConfig, cal: Calibration | None, num_envs: int = 1) -> TwinEnv:
    env = TwinEnv(TwinParams.from_config(cfg, cal, catalog=CATALOG), num_envs)
    env.reset(seed=0)
    return env


def _rollout(cfg: TestbedConfig, cal: Calibration | None) -> str:
    h = hashlib.sha256()
    env = env_of(cfg, cal, num_envs=8)
    env.reset(seed=3)
    for name in ("random", "greedy", "local", "offload"):
        policy = make_heuristic(name, seed=3)
        for _ in range(5):
            out = env.step(policy.act(env))
            for x in (out.obs, out.reward, out.latency_s, out.energy_j, out.completed,
                      out.info["t_local_s"], out.info["t_edge_compute_s"]):  # fmt: skip
                h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def test_with_the_option_off_the_twin_is_bit_identical_to_before() -> None:
    cfg = bench(["m-a", "m-b"])
    assert _rollout(cfg, calibration()) == GOLDEN_CALIBRATED  # no contention recorded
    assert _rollout(cfg, None) == GOLDEN_PAPER
    assert _rollout(shared(cfg, SharedHost.OFF), contended()) == GOLDEN_CALIBRATED
    assert _rollout(shared(cfg, SharedHost.ON), None) == GOLDEN_PAPER  # paper model: no effect
    assert _rollout(cfg, contended()) == GOLDEN_CALIBRATED  # off by default
    assert _rollout(shared(cfg, SharedHost.AUTO), contended()) != GOLDEN_CALIBRATED  # can fail


def test_a_local_unit_costs_more_when_another_board_computes_too() -> None:
    # boards at 1.5 and 2.0 GHz: 0.5 and 2/3 of a 3 GHz core
    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    env = env_of(cfg, contended(cores=1, background=1.0))
    give(env, [A, None])
    alone = act(env, [(-1, 0.0, True), (-1, 0.0, True)]).info["t_local_s"][0, 0] - LOCAL
    give(env, [A, A])
    both = act(env, [(-1, 0.0, True), (-1, 0.0, True)]).info["t_local_s"][0, 0] - LOCAL
    units = 2e6 * 10 / 1e6  # D·C·flops_per_cycle / unit FLOPs
    assert alone == pytest.approx(units * 0.015 / 1.5 * (0.5 + 1.0), rel=1e-5)
    assert both / alone == pytest.approx((0.5 + 2 / 3 + 1.0) / 1.5, rel=1e-5)


def test_an_edge_unit_pays_the_slot_s_slowdown_over_the_calibration_run_s() -> None:
    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    env = env_of(cfg, contended(cores=2, background=0.5, edge_slowdown=1.25))
    give(env, [A, A])
    out = act(env, [(0, 1.0, True), (-1, 0.0, True)])  # the edge (1 core) and board 1 (2/3)
    slowdown = (1.0 + 2 / 3 + 0.5) / 2
    assert out.info["t_edge_compute_s"][0, 0] == pytest.approx(20 * 0.002 * slowdown / 1.25)
    give(env, [A, None])
    out = act(env, [(0, 1.0, True), (-1, 0.0, True)])  # demand 1 + 0.5 background: ≤ 2 cores
    assert out.info["t_edge_compute_s"][0, 0] == pytest.approx(20 * 0.002 * 1.0 / 1.25)


def test_only_the_wall_time_share_of_the_energy_grows() -> None:
    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    env = env_of(cfg, contended(cores=1, background=1.0, local_wall_share=0.8))
    give(env, [A, A])
    out = act(env, [(-1, 0.0, True), (-1, 0.0, True)])
    factor = 0.5 + 2 / 3 + 1.0
    assert out.energy_j[0, 0] == pytest.approx(20 * 0.05 * (1 + 0.8 * (factor - 1)), rel=1e-5)


def test_the_option_needs_a_shared_host_and_a_recorded_contention() -> None:
    assert bench(["m-a"]).twin.shared_host is SharedHost.OFF  # the default (docs/twin.md)
    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    assert TwinParams.from_config(cfg, contended(), catalog=CATALOG).sharing is not None  # auto
    params = TwinParams.from_config(cfg, calibration(), catalog=CATALOG)
    assert params.sharing is None and any("calibrate again" in n for n in params.notes)
    off = TwinParams.from_config(shared(cfg, SharedHost.OFF), contended(), catalog=CATALOG)
    assert off.sharing is None and not any("calibrate again" in n for n in off.notes)
    assert cfg.twin.host_shared(remote=False) and not cfg.twin.host_shared(remote=True)
    assert shared(cfg, SharedHost.ON).twin.host_shared(remote=True)
    assert bench([], twin={"shared_host": False}).twin.shared_host is SharedHost.OFF  # YAML off


def test_the_calibration_file_keeps_the_contention_and_reads_old_files() -> None:
    cal = contended(cores=2, background=2.7, local_wall_share=0.9)
    again = Calibration.from_json(cal.to_json())
    assert again.contention == cal.contention
    assert "host: 2 cores, background load 2.7" in again.summary()
    assert Calibration.from_json(calibration().to_json()).contention is None


def record(slot: int, agent: str, *, local: int = 0, edge: int = 0, **kw: Any) -> TaskRecord:
    return TaskRecord(
        task_id=f"{agent}/{slot}", agent_id=agent, slot=slot, task_type="a", model_id="m-a",
        size_mbit=2.0, density_cycles_per_bit=10.0, deadline_s=2.0, units=local + edge,
        outcome=Outcome.COMPLETED, local_units=local, edge_units=edge,
        edge_id="edge-0" if edge else "", share=edge / (local + edge), **kw,
    )  # fmt: skip


def _est(part: str, joules: float) -> list[EnergyPart]:
    return [EnergyPart(part, joules, EnergyMethod.ESTIMATED)]


def test_the_fit_records_how_busy_the_calibration_runs_kept_the_host() -> None:
    cfg = bench(["m-a"])
    facts = dataclasses.replace(
        calibration().bench, host={"cpu_count": "2", "load_avg_1min_before": "0.5"}
    )
    local = [record(s, a, local=20, t_local_ms=400.0, energy=_est("local_compute", 2.5))
             for s in range(3) for a in ("agent-0", "agent-1")]  # fmt: skip
    offload = [record(0, "agent-0", edge=20, t_edge_compute_ms=40.0,
                      energy=_est("edge_compute", 1.5)),
               record(1, "agent-0", edge=20, t_edge_compute_ms=40.0, fetch_ms=460.0,
                      energy=_est("edge_compute", 1.5))]  # fmt: skip
    c = host_contention(cfg, facts, local, offload)
    assert c is not None and c.host_cores == 2 and c.background_load == 0.5
    assert c.local_demand == pytest.approx(0.5 + 2 / 3)
    assert c.local_slowdown == pytest.approx(1.0)  # 1.67 cores asked of 2: no slowdown
    assert c.edge_demand == pytest.approx(1.0) and c.edge_slowdown == 1.0
    agent_idle_w, edge_idle_w = cfg.agents.energy.power.idle_w, cfg.edges.energy.power.idle_w
    assert c.local_wall_share == pytest.approx(agent_idle_w * 0.4 / 2.5)
    assert c.edge_wall_share == pytest.approx(min(1.0, edge_idle_w * 0.08 / 3.0))
    busy = dataclasses.replace(facts, host={"cpu_count": "1", "load_avg_1min_before": "1"})
    assert host_contention(cfg, busy, local, offload).local_slowdown == pytest.approx(
        0.5 + 2 / 3 + 1.0
    )
    assert host_contention(cfg, dataclasses.replace(facts, host={}), local, offload) is None
    # the busy cores measured just before the bench, where recorded, over the load average
    # (which still counts the last minute's work, e.g. the previous cell's own bench)
    measured = dataclasses.replace(facts, host={"cpu_count": "2", "load_avg_1min_before": "7",
                                                "busy_cores_before": "0.25"})  # fmt: skip
    assert host_contention(cfg, measured, local, offload).background_load == 0.25


def test_switches_are_priced_from_the_run_s_own_downloads() -> None:
    cfg = bench(["m-a"])
    facts = calibration().bench
    got = record(0, "agent-0", edge=20, t_edge_compute_ms=40.0, fetch_ms=450.0,
                 verify_ms=1.0, load_ms=8.0, warmup_ms=0.5, t_switch_ms=459.5)  # fmt: skip
    local = [record(0, "agent-0", local=20, t_local_ms=400.0)]
    operator = [SwitchSample("m-a", "edge-0", 0.6, 0.001, 0.05, 0.002, 0.653)]
    fitted = fit_calibration(cfg, CATALOG, models=list(MODELS), local_records=local,
                             offload_records=[got], switches=operator, facts=facts)  # fmt: skip
    paced = MODELS["m-a"][1] * 8 / 1e6 / 80.0
    m = fitted.model("m-a")
    assert m.fetch_overhead_s == pytest.approx(0.450 - paced)
    assert (m.load_s, m.warmup_s) == pytest.approx((0.008, 0.0005))
    assert m.samples["switch_in_run"] == 1
    before = fit_calibration(cfg, CATALOG, models=list(MODELS), local_records=local,
                             offload_records=[dataclasses.replace(got, fetch_ms=0.0)],
                             switches=operator, facts=facts).model("m-a")  # fmt: skip
    assert before.fetch_overhead_s == pytest.approx(0.6 - paced) and before.load_s == 0.05


def test_the_fidelity_report_says_whether_contention_was_modelled() -> None:
    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    assert "modelled (1 cores, background load 1)" in _contention_line(cfg, contended())
    assert "not modelled" in _contention_line(cfg, calibration())
    assert "not modelled" in _contention_line(shared(cfg, SharedHost.OFF), contended())


def test_the_oracle_searches_exhaustively_when_contention_is_modelled() -> None:
    """The programme prices each edge's uploads alone; contention makes a task's cost
    depend on the whole slot, so `oracle` replays every joint decision instead."""
    from coordinator.envs.oracle import OracleMethod, SlotOracle

    cfg = shared(bench(["m-a"]), SharedHost.AUTO)
    env = env_of(cfg, contended(cores=1, background=1.0))
    give(env, [A, A])
    oracle = SlotOracle()
    *_, best = oracle.solve(env)
    assert oracle.last_solution is None  # not the programme
    with pytest.raises(ValueError, match="contention"):
        SlotOracle(method=OracleMethod.PROGRAMME).solve(env)
    # the exhaustive optimum really is the best of the twin's own slot
    give(env, [A, A])
    for decisions in ([(-1, 0.0, True)] * 2, [(0, 1.0, True), (-1, 0.0, True)]):
        give(env, [A, A])
        assert act(env, decisions).reward[0].sum() <= best + 1e-9


def test_a_calibration_file_finds_its_records_beside_it_when_its_run_is_gone(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    kept = tmp_path / "kept"
    (kept / "records").mkdir(parents=True)
    cal = dataclasses.replace(
        calibration(), bench=dataclasses.replace(calibration().bench, run_dir=str(run))
    )
    assert cal.records(kept / "calibration.json") == kept / "records"  # the run is gone
    run.mkdir()
    assert cal.records(kept / "calibration.json") == run  # the run folder it names first
    assert cal.records(tmp_path / "calibration.json") == run


def test_the_contention_check_reads_a_committed_calibration_and_its_records() -> None:
    """Fig. 3's 4-model calibration (docs/results/mato_models/calibration/4): each
    calibration run is its own price, and under greedy the edges cost more than the
    all-offload run prices them (docs/twin.md, "Known differences")."""
    root = Path(__file__).resolve().parents[2]
    source = root / "docs/results/mato_models/calibration/4/calibration.json"
    out = subprocess.run(
        [sys.executable, "-m", "coordinator.calibration.contention", str(source)],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout  # fmt: skip
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in out.splitlines()}
    assert "| +0.0 % | +0.0 % |" in rows["calibration-local", "local"]
    one_price = float(rows["fidelity-greedy", "edge"].split("|")[5].strip(" %"))
    assert one_price < -30  # measured: −48.6 %
