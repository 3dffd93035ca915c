"""Mixed slots (coordinator/calibration/mixed.py, docs/twin.md "Mixed slots"): the twin
multiplies a slot's compute time and energy by the calibration's factors only where a
board and an edge both compute, only under the pricing they were fitted for, and the
fit recovers known factors from a run's records."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import pytest

from coordinator.calibration.mixed import _twin, fit_mixed, mixed_slots, with_mixed
from coordinator.calibration_file import Calibration, MixedSlots
from coordinator.envs.twin_params import TwinParams
from testbed.config import TestbedConfig
from testbed.config.runs import SharedHost
from testbed.messages import TaskRecord
from testbed.types import EnergyMethod, EnergyPart, Outcome

from .test_twin import CATALOG, LOCAL, A, act, bench, calibration, give
from .test_twin_contention import contended, env_of, shared

FACTORS = {"local_time": 1.5, "local_energy": 1.25, "edge_time": 2.0, "edge_energy": 1.75}


def with_factors(cal: Calibration, mode: str = "off", **kw: float) -> Calibration:
    return dataclasses.replace(cal, mixed=MixedSlots(mode, **{**FACTORS, **kw}))


def test_the_factors_apply_to_mixed_slots_only() -> None:
    cfg = bench(["m-a"])
    plain, mixed = env_of(cfg, calibration()), env_of(cfg, with_factors(calibration()))
    outs = []
    for env in (plain, mixed):
        give(env, [A, A])  # board 0 computes, board 1 offloads all to edge 0: mixed
        outs.append(act(env, [(-1, 0.0, True), (0, 1.0, True)]).info)
    base, got = outs
    assert got["t_local_s"][0, 0] - LOCAL == pytest.approx(1.5 * (base["t_local_s"][0, 0] - LOCAL))
    assert got["e_local_j"][0, 0] == pytest.approx(1.25 * base["e_local_j"][0, 0])
    assert got["t_edge_compute_s"][0, 1] == pytest.approx(2.0 * base["t_edge_compute_s"][0, 1])
    assert got["e_edge_compute_j"][0, 1] == pytest.approx(1.75 * base["e_edge_compute_j"][0, 1])
    for decisions in ([(-1, 0.0, True)] * 2, [(0, 1.0, True)] * 2):  # boards only, edge only
        same = []
        for env in (plain, mixed):
            give(env, [A, A])
            same.append(act(env, decisions).info)
        for key in ("t_local_s", "e_local_j", "t_edge_compute_s", "e_edge_compute_j"):
            assert same[1][key] == pytest.approx(same[0][key]), key


def test_factors_fitted_under_another_pricing_are_not_applied_and_say_so() -> None:
    cfg = bench(["m-a"])
    off = TwinParams.from_config(cfg, with_factors(calibration()), catalog=CATALOG)
    assert off.mixed is not None and off.pricing_mode == "off"
    assert not any("mixed-slot" in n for n in off.notes)
    ps = TwinParams.from_config(
        cfg, with_factors(calibration(), "processor_sharing"), catalog=CATALOG
    )
    assert ps.mixed is None
    assert any("--refit --set twin.shared_host=off" in n for n in ps.notes)
    on = shared(cfg, SharedHost.ON)
    assert TwinParams.from_config(on, with_factors(contended(), "on"), catalog=CATALOG).mixed
    paper = TwinParams.from_config(cfg, None, catalog=CATALOG)
    assert paper.mixed is None and paper.pricing_mode == "off"


def _records(params: TwinParams, slots: int, first: int | None = None) -> list[TaskRecord]:
    """The twin's `random` run on slots S … 2S−1 (or from `first`), as a live run's records."""
    parts: dict[tuple[int, str], dict[str, Any]] = defaultdict(dict)
    for (slot, agent, kind), share in _twin(
        params, slots, slots if first is None else first
    ).items():
        parts[slot, agent][kind] = share
    out = []
    for (slot, agent), kinds in sorted(parts.items()):
        some = next(iter(kinds.values()))
        loc, edge = kinds.get("local"), kinds.get("edge")
        energy = []
        if loc is not None:
            energy.append(EnergyPart("local_compute", loc.energy_j, EnergyMethod.ESTIMATED))
        if edge is not None:
            energy.append(EnergyPart("edge_compute", edge.energy_j, EnergyMethod.ESTIMATED))
        out.append(TaskRecord(
            task_id=f"{agent}/{slot}", agent_id=agent, slot=slot, task_type="a",
            model_id="m-a", size_mbit=2.0, density_cycles_per_bit=10.0, deadline_s=2.0,
            units=some.edge_units + (10 if loc else 0), outcome=Outcome.COMPLETED,
            local_units=10 if loc else 0, edge_units=some.edge_units, edge_id=some.edge,
            t_local_ms=loc.time_s * 1e3 if loc else 0.0,
            t_edge_compute_ms=edge.time_s * 1e3 if edge else 0.0, energy=energy,
        ))  # fmt: skip
    return out


@pytest.mark.parametrize("mode", [SharedHost.OFF, SharedHost.PROCESSOR_SHARING])
def test_the_fit_recovers_the_factors_of_a_run(mode: SharedHost) -> None:
    cfg: TestbedConfig = shared(bench(["m-a", "m-b"]), mode)
    base = contended(cores=2, background=0.0, local_ps_slowdown=1.0, edge_ps_slowdown=1.0)
    base = dataclasses.replace(base, bench=dataclasses.replace(base.bench, slots=6))
    truth = with_factors(base, mode.value)
    params = TwinParams.from_config(cfg, truth, catalog=CATALOG, use_config_calibration=False)
    assert params.mixed is not None
    records = _records(params, 6)
    assert mixed_slots(records)  # the run has mixed slots to fit on
    fitted = fit_mixed(cfg, CATALOG, base, records)
    assert fitted is not None and fitted.shared_host == mode.value
    got = {k: getattr(fitted, k) for k in FACTORS}
    assert got == pytest.approx(FACTORS, rel=0.02 if mode is SharedHost.PROCESSOR_SHARING else 1e-5)
    assert fitted.slots == len(mixed_slots(records)) and fitted.local_shares > 0
    fresh = _records(params, 6, first=0)  # a run on slots 0 … S−1, fresh generators
    again = fit_mixed(cfg, CATALOG, base, fresh, first_slot=0)
    assert again is not None and again.local_time == pytest.approx(1.5, rel=0.02)
    assert {r.slot for r in fresh} <= set(range(6)) and fresh != records
    assert with_mixed(cfg, CATALOG, truth, None).mixed is None  # no mixed run: none


def test_a_run_without_a_mixed_slot_fits_nothing() -> None:
    cfg = bench(["m-a"])
    base = dataclasses.replace(
        calibration(), bench=dataclasses.replace(calibration().bench, slots=2)
    )
    boards_only = [r for r in _records(TwinParams.from_config(cfg, base, catalog=CATALOG), 2)
                   if not r.edge_units]  # fmt: skip
    assert fit_mixed(cfg, CATALOG, base, boards_only) is None


def test_the_calibration_file_keeps_the_factors_and_reads_old_files() -> None:
    cal = with_factors(calibration(), "on")
    again = Calibration.from_json(cal.to_json())
    assert again.mixed == cal.mixed
    assert "mixed slots (0, twin.shared_host on): board compute time × 1.50" in again.summary()
    assert Calibration.from_json(calibration().to_json()).mixed is None
