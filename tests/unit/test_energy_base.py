"""Spans, the power poller and `modeled`: what a node's energy figures rest on."""

from __future__ import annotations

import threading
import time

import pytest

from testbed.config import PowerModelConfig
from testbed.energy import EnergyMeter, MeterError, Poller, modeled
from testbed.energy.estimated import EstimatedMeter
from testbed.types import EnergyMethod, EnergyPart
from tests.waiting import wait_until


class FakeClock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


class PolledMeter(EnergyMeter):
    """The smallest meter on top of the Poller (a stand-in for jetson/nvml power)."""

    method = EnergyMethod.NVML_POWER

    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    def energy_j(self) -> float:
        return self.poller.energy_j()

    def describe(self) -> str:
        return "polled"

    def close(self) -> None:
        self.poller.close()


def test_poller_integrates_constant_power_to_p_times_t() -> None:
    clock = FakeClock()
    poller = Poller(lambda: 7.5, 0.02, clock=clock, start=False)
    for _ in range(50):
        clock.advance(0.02)
        poller.sample()
    assert poller.energy_j() == pytest.approx(7.5 * 1.0)


def test_poller_uses_the_trapezoid_rule_between_samples() -> None:
    clock = FakeClock()
    power_w = [10.0]
    poller = Poller(lambda: power_w[0], 1.0, clock=clock, start=False)
    clock.advance(2.0)
    power_w[0] = 30.0
    # a linear ramp 10 W → 30 W over 2 s is 40 J; the trapezoid rule is exact for it
    assert poller.energy_j() == pytest.approx(40.0)
    clock.advance(1.0)
    assert poller.energy_j() == pytest.approx(70.0)


def test_negative_power_counts_as_zero_so_energy_never_decreases() -> None:
    clock = FakeClock()
    power_w = [-3.0]
    poller = Poller(lambda: power_w[0], 1.0, clock=clock, start=False)
    clock.advance(1.0)
    assert poller.energy_j() == 0.0
    power_w[0] = 2.0
    clock.advance(1.0)
    assert poller.energy_j() == pytest.approx(1.0)


def test_failed_reads_hold_the_last_power_then_raise_once_stale() -> None:
    clock = FakeClock()
    state = {"fail": False}

    def read_w() -> float:
        if state["fail"]:
            raise OSError(5, "Input/output error")
        return 4.0

    poller = Poller(read_w, 0.1, clock=clock, start=False, stale_after_s=1.0)
    state["fail"] = True
    clock.advance(0.5)
    assert poller.energy_j() == pytest.approx(2.0)  # held at 4 W, not dropped to zero
    assert poller.read_errors == 1
    clock.advance(1.0)
    with pytest.raises(MeterError, match=r"unreadable for 1\.5 s"):
        poller.energy_j()
    state["fail"] = False
    clock.advance(0.5)
    assert poller.energy_j() == pytest.approx(8.0)


def test_a_source_that_cannot_read_at_all_makes_no_poller() -> None:
    def read_w() -> float:
        raise OSError(2, "No such file or directory")

    with pytest.raises(OSError):
        Poller(read_w, 0.1, start=False)


def test_poller_thread_integrates_in_real_time() -> None:
    before_open_s = time.monotonic()
    poller = Poller(lambda: 5.0, 0.005)
    after_open_s = time.monotonic()
    try:
        assert wait_until(lambda: poller.samples >= 10)  # the thread really samples
        before_read_s = time.monotonic()
        energy_j = poller.energy_j()
        after_read_s = time.monotonic()
    finally:
        poller.close()
    # the integral spans from inside the constructor to inside energy_j()
    assert 5.0 * (before_read_s - after_open_s) <= energy_j * (1 + 1e-9)
    assert energy_j <= 5.0 * (after_read_s - before_open_s) * (1 + 1e-9)


def test_concurrent_spans_are_monotonic_and_add_up() -> None:
    meter = PolledMeter(Poller(lambda: 20.0, 0.002))
    readings: dict[int, list[float]] = {}
    spans: list[EnergyPart] = []
    lock = threading.Lock()

    def work(tid: int) -> None:
        mine = readings.setdefault(tid, [])
        for _ in range(200):
            with meter.measure("compute") as span:
                mine.append(meter.energy_j())
            with lock:
                spans.append(span.part)

    total_start_j = meter.energy_j()
    after_start_s = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before_end_s = time.monotonic()
    total_j = meter.energy_j() - total_start_j
    meter.close()
    for values in readings.values():
        assert values == sorted(values)
    assert len(spans) == 800
    assert all(p.energy_j >= 0 and p.method is EnergyMethod.NVML_POWER for p in spans)
    assert total_j >= 20.0 * (before_end_s - after_start_s) * (1 - 1e-9)


def test_span_reports_part_energy_method_and_seconds() -> None:
    wall = FakeClock()
    meter = EstimatedMeter(PowerModelConfig(idle_w=2.0, active_w_per_core=0.0), clock=wall)
    with meter.measure("compute") as span:
        wall.advance(3.0)
    assert span.part == EnergyPart("compute", span.energy_j, EnergyMethod.ESTIMATED)
    assert span.energy_j == pytest.approx(6.0)
    assert span.method is EnergyMethod.ESTIMATED
    assert span.seconds >= 0
    assert "compute" in repr(span)


def test_span_records_energy_when_the_block_raises() -> None:
    wall = FakeClock()
    meter = EstimatedMeter(PowerModelConfig(idle_w=1.0, active_w_per_core=0.0), clock=wall)
    span = meter.measure("load")
    with pytest.raises(RuntimeError, match="boom"), span:
        wall.advance(2.0)
        raise RuntimeError("boom")
    assert span.energy_j == pytest.approx(2.0)


def test_span_cannot_be_read_before_it_ends_or_entered_twice() -> None:
    meter = EstimatedMeter(PowerModelConfig())
    with meter.measure("compute") as span:
        with pytest.raises(RuntimeError, match="not finished"):
            _ = span.part
        with pytest.raises(RuntimeError, match="already entered"), span:
            pass


def test_modeled_is_power_times_time_labelled_modeled() -> None:
    assert modeled("tx", 0.5, 2.0) == EnergyPart("tx", 1.0, EnergyMethod.MODELED)
    with pytest.raises(ValueError, match="power_w"):
        modeled("tx", -1.0, 2.0)
    with pytest.raises(ValueError, match="seconds"):
        modeled("tx", 1.0, float("nan"))


def test_meter_interface_is_abstract() -> None:
    with pytest.raises(TypeError):
        EnergyMeter()  # type: ignore[abstract]
