"""Choosing the meter: auto-detection on this host, explicit kinds, diagnostics."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from testbed.config import EnergyConfig, MeterKind
from testbed.energy import MeterUnavailable, detect, open_kind, open_meter
from testbed.energy.estimated import EstimatedMeter
from testbed.energy.jetson import JetsonMeter
from testbed.energy.nvml import NvmlMeter
from testbed.types import EnergyMethod


def nvml_reason() -> str | None:
    """Why NVML cannot read here (None: it can)."""
    try:
        NvmlMeter().close()
    except MeterUnavailable as exc:
        return exc.reason
    return None


def empty_roots(tmp_path: Path, meter: MeterKind = MeterKind.AUTO) -> EnergyConfig:
    return EnergyConfig(
        meter=meter,
        jetson_sysfs_root=str(tmp_path / "ina3221"),
        rapl_sysfs_root=str(tmp_path / "powercap"),
    )


def test_auto_on_this_host_picks_a_meter_and_says_why_others_were_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="testbed.energy")
    with open_meter(EnergyConfig()) as meter:
        assert meter.method in set(EnergyMethod) - {EnergyMethod.MODELED}
        assert meter.energy_j() >= 0
        chosen = meter.describe()
    lines = [r.getMessage() for r in caplog.records if "energy meter (auto)" in r.getMessage()]
    assert len(lines) == 1
    assert chosen in lines[0]
    if isinstance(meter, EstimatedMeter):  # no sensor: each candidate's reason is logged
        for kind in (MeterKind.NVML, MeterKind.JETSON, MeterKind.RAPL):
            assert f"{kind.value}: " in lines[0]


def test_auto_without_sensors_falls_back_to_estimated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if nvml_reason() is None:
        pytest.skip("an NVIDIA GPU is present: auto picks nvml")
    caplog.set_level(logging.INFO, logger="testbed.energy")
    with open_meter(empty_roots(tmp_path)) as meter:
        assert isinstance(meter, EstimatedMeter)
    message = next(r.getMessage() for r in caplog.records if "(auto)" in r.getMessage())
    assert "passed over: nvml: " in message
    assert "jetson: no INA3221 rails" in message
    assert "rapl: " in message and "does not exist" in message


def test_auto_picks_jetson_rails_when_they_read(tmp_path: Path) -> None:
    if nvml_reason() is None:
        pytest.skip("an NVIDIA GPU is present: auto picks nvml")
    iio = tmp_path / "ina3221x" / "6-0040" / "iio:device0"
    iio.mkdir(parents=True)
    (iio / "rail_name_0").write_text("POM_5V_IN\n")
    (iio / "in_power0_input").write_text("2500\n")
    with open_meter(empty_roots(tmp_path)) as meter:
        assert isinstance(meter, JetsonMeter)
        assert meter.method is EnergyMethod.JETSON_RAILS


def test_explicit_nvml_without_a_gpu_is_unavailable(tmp_path: Path) -> None:
    if nvml_reason() is None:
        pytest.skip("an NVIDIA GPU is present")
    with pytest.raises(MeterUnavailable) as info:
        open_meter(empty_roots(tmp_path, MeterKind.NVML))
    assert info.value.method is MeterKind.NVML
    assert info.value.reason
    assert str(info.value).startswith("nvml energy meter unavailable: ")


@pytest.mark.parametrize("kind", [MeterKind.JETSON, MeterKind.RAPL])
def test_explicit_sensor_that_is_absent_is_unavailable(tmp_path: Path, kind: MeterKind) -> None:
    with pytest.raises(MeterUnavailable) as info:
        open_meter(empty_roots(tmp_path, kind))
    assert info.value.method is kind
    assert str(tmp_path) in info.value.reason


def test_explicit_estimated_is_always_available(tmp_path: Path) -> None:
    with open_meter(empty_roots(tmp_path, MeterKind.ESTIMATED)) as meter:
        assert isinstance(meter, EstimatedMeter)


def test_detect_lists_every_candidate_with_its_reason(tmp_path: Path) -> None:
    report = dict(detect(empty_roots(tmp_path)))
    assert list(report) == [MeterKind.NVML, MeterKind.JETSON, MeterKind.RAPL, MeterKind.ESTIMATED]
    assert report[MeterKind.ESTIMATED] is None
    assert "no INA3221 rails" in str(report[MeterKind.JETSON])
    assert "does not exist" in str(report[MeterKind.RAPL])
    assert report[MeterKind.NVML] == nvml_reason()


def test_open_kind_refuses_auto() -> None:
    with pytest.raises(ValueError, match="not a single meter kind"):
        open_kind(MeterKind.AUTO, EnergyConfig())


def test_this_host_has_no_powercap_tree() -> None:
    """A record of this VM class (2 cores, no GPU): no RAPL is exposed to guests."""
    if os.path.isdir("/sys/class/powercap"):
        pytest.skip("this host exposes powercap")
    reason = dict(detect(EnergyConfig()))[MeterKind.RAPL]
    assert reason == "/sys/class/powercap does not exist (no powercap on this host)"
