"""The NVML reader against a real NVIDIA GPU (skipped where there is none)."""

from __future__ import annotations

import time

import pytest

from testbed.energy import MeterUnavailable
from testbed.energy.nvml import NvmlMeter
from testbed.types import EnergyMethod

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def need_nvml() -> None:
    try:
        NvmlMeter().close()
    except MeterUnavailable as exc:
        pytest.skip(f"no NVML GPU: {exc.reason}")


def test_default_meter_reads_a_growing_whole_gpu_energy() -> None:
    with NvmlMeter(0, 0.02) as meter:
        assert meter.method in (EnergyMethod.NVML_COUNTER, EnergyMethod.NVML_POWER)
        readings = []
        for _ in range(6):
            time.sleep(0.1)
            readings.append(meter.energy_j())
        assert readings == sorted(readings)
        # any GPU draws between 1 W and 1500 W, idle or busy
        assert 1.0 * 0.4 < readings[-1] < 1500.0 * 1.0
        assert meter.gpu_name in meter.describe()


def test_power_polling_integrates_board_power() -> None:
    with NvmlMeter(0, 0.01, prefer_counter=False) as meter:
        assert meter.method is EnergyMethod.NVML_POWER
        with meter.measure("idle") as span:
            time.sleep(0.3)
        assert 1.0 * 0.3 < span.part.energy_j < 1500.0 * 0.3
        assert span.part.method is EnergyMethod.NVML_POWER
        assert "power polled every 10 ms" in meter.describe()


def test_counter_and_polling_agree_roughly() -> None:
    with NvmlMeter(0, 0.01) as counter, NvmlMeter(0, 0.01, prefer_counter=False) as polled:
        if counter.method is not EnergyMethod.NVML_COUNTER:
            pytest.skip("this GPU has no energy counter")
        c0, p0 = counter.energy_j(), polled.energy_j()
        time.sleep(1.0)
        c1, p1 = counter.energy_j(), polled.energy_j()
    assert p1 - p0 == pytest.approx(c1 - c0, rel=0.3)


def test_index_beyond_the_gpus_is_unavailable() -> None:
    with pytest.raises(MeterUnavailable, match="no GPU with index 999"):
        NvmlMeter(999)
