"""Jetson INA3221 power rails from sysfs, integrated by a poller (`method: jetson_rails`).

Two layouts are read (`energy.jetson_sysfs_root` is the driver folder):

- JetPack 4.x (L4T 32, driver `ina3221x`): `<dev>/iio:deviceN/rail_name_K`,
  `in_power{K}_input` (mW); `in_voltage{K}_input` (mV) · `in_current{K}_input` (mA)
  where no power file exists.
- JetPack 5.x and later (mainline `ina3221` hwmon driver):
  `<dev>/hwmon/hwmonN/in{K}_label`, `in{K}_input` (mV), `curr{K}_input` (mA);
  P = V · I. Channels labelled `NC` (not connected) and the "sum of shunt
  voltages" channel are skipped.

With the default root (`/sys/bus/i2c/drivers/ina3221`) the JetPack 4 driver folder
beside it (`ina3221x`) is searched too, so one config serves both.

Which rails are summed: on boards whose monitor has a module-input rail (`VDD_IN` on
Xavier NX and the Orin NX/Nano, `POM_5V_IN` on the Nano and TX1/TX2) that rail is
the whole module, and the other rails are parts of it, so it is taken alone. Where
there is no such rail (AGX Xavier: GPU, CPU, SOC, CV, VDDRQ, SYS5V) all rails found
are summed. `describe()` names the rails counted and those left out.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.config import MeterKind
from testbed.energy.base import Clock, EnergyMeter, MeterUnavailable, Poller
from testbed.types import EnergyMethod

TOTAL_RAIL_NAMES = ("VDD_IN", "POM_5V_IN")
"""Rails that carry the whole module's input power."""

_JETPACK4_DRIVER = "ina3221x"


class RailLayout(enum.StrEnum):
    IIO = "iio"  # JetPack 4.x
    HWMON = "hwmon"  # JetPack 5.x and later


@dataclass(frozen=True, slots=True)
class Rail:
    """One INA3221 channel: power from `power_file` (mW), else voltage (mV) × current (mA)."""

    name: str
    layout: RailLayout
    power_file: Path | None = None
    voltage_file: Path | None = None
    current_file: Path | None = None


# ---------------------------------------------------------------------------- parsing


def parse_int(text: str, what: str) -> int:
    """An integer sysfs value; some drivers append a unit (`"32760 ma"`)."""
    token = text.strip().split(" ", 1)[0]
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{what}: expected an integer, got {text.strip()[:40]!r}") from None


def power_w_from_mw(power_mw: int) -> float:
    return power_mw / 1e3


def power_w_from_mv_ma(voltage_mv: int, current_ma: int) -> float:
    return voltage_mv * current_ma / 1e6


def skip_channel_label(label: str) -> bool:
    """Labels of channels that measure no rail: not connected, or the shunt sum."""
    upper = label.strip().upper()
    return upper == "" or upper == "NC" or upper.startswith("NC ") or "SUM OF SHUNT" in upper


def select_rails(rails: list[Rail]) -> tuple[list[Rail], list[Rail]]:
    """(counted, left out): the module-input rail alone if there is one, else all."""
    for rail in rails:
        if rail.name.upper() in TOTAL_RAIL_NAMES:
            return [rail], [r for r in rails if r is not rail]
    return list(rails), []


# ---------------------------------------------------------------------------- files


def _read_int(path: Path) -> int:
    return parse_int(path.read_text(encoding="ascii"), str(path))


def read_rail_w(rail: Rail) -> float:
    """The rail's power now, in watts (raises OSError or ValueError)."""
    if rail.power_file is not None:
        return power_w_from_mw(_read_int(rail.power_file))
    assert rail.voltage_file is not None and rail.current_file is not None
    return power_w_from_mv_ma(_read_int(rail.voltage_file), _read_int(rail.current_file))


def _iio_rails(folder: Path) -> list[Rail]:
    rails = []
    for label_file in sorted(folder.glob("rail_name_*")):
        channel = label_file.name.removeprefix("rail_name_")
        name = label_file.read_text(encoding="ascii").strip()
        if skip_channel_label(name):
            continue
        power = folder / f"in_power{channel}_input"
        voltage = folder / f"in_voltage{channel}_input"
        current = folder / f"in_current{channel}_input"
        if power.exists():
            rails.append(Rail(name, RailLayout.IIO, power_file=power))
        elif voltage.exists() and current.exists():
            rails.append(Rail(name, RailLayout.IIO, voltage_file=voltage, current_file=current))
    return rails


def _hwmon_rails(folder: Path) -> list[Rail]:
    rails = []
    for label_file in sorted(folder.glob("in*_label")):
        channel = label_file.name.removeprefix("in").removesuffix("_label")
        name = label_file.read_text(encoding="ascii").strip()
        voltage = folder / f"in{channel}_input"
        current = folder / f"curr{channel}_input"
        if skip_channel_label(name) or not (voltage.exists() and current.exists()):
            continue
        rails.append(Rail(name, RailLayout.HWMON, voltage_file=voltage, current_file=current))
    return rails


def _sensor_folders(root: Path) -> list[Path]:
    patterns = ("", "iio:device*", "hwmon/hwmon*", "*/iio:device*", "*/hwmon/hwmon*")
    seen: dict[str, Path] = {}
    for pattern in patterns:
        for folder in [root] if not pattern else sorted(root.glob(pattern)):
            if folder.is_dir():
                seen.setdefault(os.path.realpath(folder), folder)
    return list(seen.values())


def search_roots(root: Path) -> list[Path]:
    """`root`, plus the JetPack 4 driver folder beside the default JetPack 5 one."""
    roots = [root]
    if root.name == "ina3221":
        roots.append(root.with_name(_JETPACK4_DRIVER))
    return roots


def find_rails(root: Path) -> list[Rail]:
    """Every INA3221 rail under `root` (either layout), in a stable order."""
    rails: list[Rail] = []
    for base in search_roots(root):
        if not base.is_dir():
            continue
        for folder in _sensor_folders(base):
            try:
                rails += _iio_rails(folder) + _hwmon_rails(folder)
            except OSError as exc:
                raise MeterUnavailable(MeterKind.JETSON, f"{folder}: {exc.strerror}") from None
    return rails


# ---------------------------------------------------------------------------- meter


class JetsonMeter(EnergyMeter):
    """Energy of the Jetson module from its INA3221 rails (whole board, all processes).

    The summed rail power (W) is sampled every `interval_s` seconds and integrated with
    the trapezoid rule. `clock` and `start` are for tests (see `Poller`).
    """

    method = EnergyMethod.JETSON_RAILS

    def __init__(
        self,
        root: str | os.PathLike[str],
        interval_s: float,
        *,
        clock: Clock = time.monotonic,
        start: bool = True,
    ) -> None:
        self.root = Path(root)
        self.interval_s = interval_s
        rails = find_rails(self.root)
        if not rails:
            where = " or ".join(str(r) for r in search_roots(self.root))
            raise MeterUnavailable(
                MeterKind.JETSON,
                f"no INA3221 rails under {where} (not a Jetson, or another JetPack layout)",
            )
        self.rails, self.left_out = select_rails(rails)
        try:
            first_w = self._read_total_w()
        except (OSError, ValueError) as exc:
            raise MeterUnavailable(MeterKind.JETSON, f"cannot read rails: {exc}") from None
        if first_w <= 0:
            names = ", ".join(r.name for r in self.rails)
            raise MeterUnavailable(MeterKind.JETSON, f"rails {names} all read 0 W")
        self._poller = Poller(
            self._read_total_w, interval_s, clock=clock, start=start, name="jetson-rails"
        )

    def _read_total_w(self) -> float:
        return sum(read_rail_w(r) for r in self.rails)

    @property
    def poller(self) -> Poller:
        return self._poller

    def energy_j(self) -> float:
        return self._poller.energy_j()

    def describe(self) -> str:
        counted = " + ".join(r.name for r in self.rails)
        layout = "JetPack 4 iio" if self.rails[0].layout is RailLayout.IIO else "JetPack 5 hwmon"
        line = (
            f"jetson_rails: {counted} ({len(self.rails)} rails, {layout}, "
            f"polled every {self.interval_s * 1e3:g} ms)"
        )
        if self.left_out:
            line += "; inside the total, not added: " + ", ".join(r.name for r in self.left_out)
        return line

    def close(self) -> None:
        self._poller.close()
