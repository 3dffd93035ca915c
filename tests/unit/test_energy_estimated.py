"""The `estimated` meter: wall time × idle power + process CPU time × per-core power."""

from __future__ import annotations

import threading
import time

import pytest

from testbed.config import PowerModelConfig
from testbed.energy.estimated import EstimatedMeter
from testbed.types import EnergyMethod


class FakeClock:
    def __init__(self, start_s: float) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s


def test_formula_uses_the_configured_power_model() -> None:
    wall, cpu = FakeClock(10.0), FakeClock(3.0)
    power = PowerModelConfig(idle_w=5.0, active_w_per_core=10.0)
    meter = EstimatedMeter(power, clock=wall, cpu_clock=cpu)
    assert meter.method is EnergyMethod.ESTIMATED
    assert meter.energy_j() == 0.0
    wall.now_s += 2.0
    cpu.now_s += 0.5  # half a core-second of CPU
    assert meter.energy_j() == pytest.approx(5.0 * 2.0 + 10.0 * 0.5)
    line = meter.describe()
    assert line.startswith("estimated: 5 W idle")
    assert "not a measurement" in line


def _spin_cpu(cpu_s: float) -> None:
    """Busy-loop until this thread has used `cpu_s` CPU seconds (robust to a loaded host)."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def test_busy_work_costs_more_than_sleeping() -> None:
    meter = EstimatedMeter(PowerModelConfig(idle_w=1.0, active_w_per_core=10.0))
    with meter.measure("busy") as busy:
        _spin_cpu(0.2)
    with meter.measure("idle") as idle:
        time.sleep(0.2)
    # idle: 1 W · 0.2 s and next to no CPU; busy adds 10 W · 0.2 CPU-s
    assert 0.2 <= idle.part.energy_j < 0.4
    assert busy.part.energy_j >= 0.2 + 2.0
    assert busy.part.method is EnergyMethod.ESTIMATED


def test_counts_cpu_time_of_every_thread_of_the_process() -> None:
    meter = EstimatedMeter(PowerModelConfig(idle_w=0.0, active_w_per_core=10.0))
    with meter.measure("threads") as span:
        workers = [threading.Thread(target=_spin_cpu, args=(0.1,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    # 0.1 CPU-s in each of two threads: both count
    assert span.part.energy_j >= 10.0 * 0.2
