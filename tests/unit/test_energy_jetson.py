"""The Jetson INA3221 reader against sysfs trees of both JetPack layouts, as real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from testbed.config import MeterKind
from testbed.energy import MeterUnavailable
from testbed.energy.jetson import JetsonMeter, RailLayout, find_rails
from testbed.types import EnergyMethod
from tests.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 50.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def write(path: Path, text: str) -> None:
    """Replace a file in one step, as sysfs never shows a half-written value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def jetpack4_device(folder: Path, rails: list[tuple[str, int]]) -> Path:
    """An `iio:deviceN` folder: rail_name_K and in_power{K}_input in mW."""
    for k, (name, power_mw) in enumerate(rails):
        write(folder / f"rail_name_{k}", f"{name}\n")
        write(folder / f"in_power{k}_input", f"{power_mw}\n")
        write(folder / f"in_voltage{k}_input", "5000\n")
        write(folder / f"in_current{k}_input", f"{power_mw // 5}\n")
        write(folder / f"warn_current_limit_{k}", "32760 ma\n")
    return folder


def jetpack5_device(root: Path, device: str, hwmon: str, rails: list[tuple[str, int, int]]) -> Path:
    """A mainline ina3221 hwmon folder, the device linked into the driver folder as in
    sysfs; rails are (label, mV, mA), plus the shunt-sum channel the driver adds."""
    real = root / "devices" / "platform" / "i2c" / device
    folder = real / "hwmon" / hwmon
    for k, (label, voltage_mv, current_ma) in enumerate(rails, start=1):
        write(folder / f"in{k}_label", f"{label}\n")
        write(folder / f"in{k}_input", f"{voltage_mv}\n")
        write(folder / f"curr{k}_input", f"{current_ma}\n")
        write(folder / f"curr{k}_crit", "32760\n")
        write(folder / f"in{k + 3}_input", "12\n")  # shunt voltage, no label
    write(folder / "in7_label", "sum of shunt voltages\n")
    write(folder / "in7_input", "36\n")
    write(folder / "name", "ina3221\n")
    driver = root / "bus" / "i2c" / "drivers" / "ina3221"
    driver.mkdir(parents=True, exist_ok=True)
    os.symlink(real, driver / device)
    return folder


def test_jetpack4_nano_takes_the_module_input_rail_alone(tmp_path: Path) -> None:
    drivers = tmp_path / "drivers"
    jetpack4_device(
        drivers / "ina3221x" / "6-0040" / "iio:device0",
        [("POM_5V_IN", 3000), ("POM_5V_GPU", 500), ("POM_5V_CPU", 800)],
    )
    # the default root names the JetPack 5 driver; the JetPack 4 one beside it is found
    clock = FakeClock()
    with JetsonMeter(drivers / "ina3221", 0.02, clock=clock, start=False) as meter:
        assert [r.name for r in meter.rails] == ["POM_5V_IN"]
        assert meter.poller.last_power_w == pytest.approx(3.0)
        line = meter.describe()
        assert line.startswith("jetson_rails: POM_5V_IN (1 rails, JetPack 4 iio")
        assert "not added: POM_5V_GPU, POM_5V_CPU" in line


def test_jetpack4_agx_xavier_sums_every_rail(tmp_path: Path) -> None:
    root = tmp_path / "ina3221x"
    jetpack4_device(root / "1-0040" / "iio:device0", [("GPU", 1000), ("CPU", 2000), ("SOC", 3000)])
    dev1 = jetpack4_device(
        root / "1-0041" / "iio:device1", [("CV", 400), ("VDDRQ", 600), ("SYS5V", 1000)]
    )
    (dev1 / "in_power2_input").unlink()  # no power file: V · I = 5000 mV · 200 mA = 1 W
    rails = find_rails(root)
    assert [r.name for r in rails] == ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]
    assert {r.layout for r in rails} == {RailLayout.IIO}
    with JetsonMeter(root, 0.02, start=False) as meter:
        assert len(meter.rails) == 6
        assert meter.poller.last_power_w == pytest.approx(8.0)
        assert "not added" not in meter.describe()


def test_jetpack5_orin_nx_reads_v_times_i_and_skips_the_shunt_sum(tmp_path: Path) -> None:
    jetpack5_device(
        tmp_path,
        "1-0040",
        "hwmon3",
        [("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 300), ("VDD_SOC", 5000, 400)],
    )
    root = tmp_path / "bus" / "i2c" / "drivers" / "ina3221"
    rails = find_rails(root)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert {r.layout for r in rails} == {RailLayout.HWMON}
    clock = FakeClock()
    with JetsonMeter(root, 0.02, clock=clock, start=False) as meter:
        assert [r.name for r in meter.rails] == ["VDD_IN"]
        assert meter.poller.last_power_w == pytest.approx(6.0)  # 5 V · 1.2 A
        assert "JetPack 5 hwmon" in meter.describe()


def test_jetpack5_agx_orin_skips_unconnected_channels(tmp_path: Path) -> None:
    jetpack5_device(
        tmp_path,
        "1-0040",
        "hwmon1",
        [("VDD_GPU_SOC", 5000, 1000), ("VDD_CPU_CV", 5000, 600), ("VIN_SYS_5V0", 5000, 400)],
    )
    jetpack5_device(
        tmp_path, "1-0041", "hwmon2", [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 5000, 200), ("NC", 0, 0)]
    )
    with JetsonMeter(tmp_path / "bus" / "i2c" / "drivers" / "ina3221", 0.02, start=False) as m:
        assert [r.name for r in m.rails] == [
            "VDD_GPU_SOC",
            "VDD_CPU_CV",
            "VIN_SYS_5V0",
            "VDDQ_VDD2_1V8AO",
        ]
        assert m.poller.last_power_w == pytest.approx(11.0)


def test_meter_integrates_rail_power_over_time(tmp_path: Path) -> None:
    folder = jetpack5_device(tmp_path, "1-0040", "hwmon0", [("VDD_IN", 5000, 1000)])
    clock = FakeClock()
    root = tmp_path / "bus" / "i2c" / "drivers" / "ina3221"
    with JetsonMeter(root, 0.02, clock=clock, start=False) as meter:
        assert meter.method is EnergyMethod.JETSON_RAILS
        for _ in range(25):  # 5 W for 0.5 s
            clock.advance(0.02)
            meter.poller.sample()
        assert meter.energy_j() == pytest.approx(2.5)
        with meter.measure("compute") as span:
            write(folder / "curr1_input", "3000\n")  # 15 W from the next sample on
            clock.advance(1.0)
        # the trapezoid between 5 W and 15 W over 1 s
        assert span.part.energy_j == pytest.approx(10.0)
        assert span.part.method is EnergyMethod.JETSON_RAILS


def test_poller_thread_integrates_constant_rail_power(tmp_path: Path) -> None:
    jetpack5_device(tmp_path, "1-0040", "hwmon0", [("VDD_IN", 5000, 1600)])  # 8 W
    root = tmp_path / "bus" / "i2c" / "drivers" / "ina3221"
    before_open_s = time.monotonic()
    with JetsonMeter(root, 0.005) as meter:
        after_open_s = time.monotonic()
        assert wait_until(lambda: meter.poller.samples >= 10)  # the thread really samples
        before_read_s = time.monotonic()
        energy_j = meter.energy_j()
        after_read_s = time.monotonic()
    assert 8.0 * (before_read_s - after_open_s) <= energy_j * (1 + 1e-9)
    assert energy_j <= 8.0 * (after_read_s - before_open_s) * (1 + 1e-9)


def test_no_rails_is_unavailable_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable) as info:
        JetsonMeter(tmp_path / "ina3221", 0.02, start=False)
    assert info.value.method is MeterKind.JETSON
    assert "no INA3221 rails" in info.value.reason
    assert "ina3221x" in info.value.reason


def test_rails_that_all_read_zero_are_unavailable(tmp_path: Path) -> None:
    jetpack4_device(tmp_path / "1-0040" / "iio:device0", [("GPU", 0), ("CPU", 0)])
    with pytest.raises(MeterUnavailable, match="all read 0 W"):
        JetsonMeter(tmp_path, 0.02, start=False)


def test_unparsable_rail_is_unavailable(tmp_path: Path) -> None:
    folder = jetpack4_device(tmp_path / "1-0040" / "iio:device0", [("VDD_IN", 100)])
    write(folder / "in_power0_input", "busy\n")
    with pytest.raises(MeterUnavailable, match="expected an integer"):
        JetsonMeter(tmp_path, 0.02, start=False)
