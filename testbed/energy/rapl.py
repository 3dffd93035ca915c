"""RAPL energy counters from the Linux powercap tree (`method: rapl`).

Layout (`energy.rapl_sysfs_root`, default /sys/class/powercap):

    intel-rapl:0/            name = package-0, energy_uj, max_energy_range_uj
    intel-rapl:0/intel-rapl:0:0   name = core      (inside package-0)
    intel-rapl:0/intel-rapl:0:1   name = uncore    (inside package-0)
    intel-rapl:0/intel-rapl:0:2   name = dram      (beside package-0, servers)
    intel-rapl:1/            name = psys (client platforms) or package-1

/sys/class/powercap also lists every subzone flat, as a link; zones are told apart
by their folder name, so a zone seen twice counts once. AMD processors expose their
package and core counters through the same driver and layout.

What is counted: every `package-N` zone plus every `dram` zone. Core and uncore are
parts of their package, so counting them too would count their energy twice. DRAM
is outside the package domain, so it is added. `psys` (the whole platform, laptops
and some desktops) is NOT counted: it overlaps every other zone, its calibration is
left to the platform firmware, and server sockets do not have it, so
package + dram is the one scope that compares across hosts. `describe()` names the
zones counted and the ones left out.

The counters are unsigned and wrap at `max_energy_range_uj` (about 262 kJ for a
package, i.e. 40-odd minutes at 100 W); a reading below the previous one is taken
as one wrap-around. A guard thread reads the counters every `guard_interval_s` so
that no zone can wrap twice between two readings.

Since Linux 5.10 `energy_uj` is readable by root only (CVE-2020-8694, "PLATYPUS");
then the meter is unavailable, with that reason.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.config import MeterKind
from testbed.energy.base import EnergyMeter, MeterError, MeterUnavailable, Periodic
from testbed.types import EnergyMethod

_ZONE_DIR = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
COUNTED_NAMES = ("package", "dram")
"""Zone names counted (a package zone is named `package-N`)."""


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One powercap zone: `key` is its folder name (e.g. intel-rapl:0:2)."""

    key: str
    name: str
    energy_file: Path
    max_energy_range_uj: int

    @property
    def counted(self) -> bool:
        """Whether the zone is summed (package-N and dram; see the module doc)."""
        base = self.name.split("-", 1)[0]
        return base in COUNTED_NAMES


# ---------------------------------------------------------------------------- parsing


def parse_uj(text: str, what: str) -> int:
    """A sysfs counter value in microjoules (a non-negative integer)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: expected an integer, got {text.strip()[:40]!r}") from None
    if value < 0:
        raise ValueError(f"{what}: expected ≥ 0, got {value}")
    return value


def counter_delta_uj(previous_uj: int, now_uj: int, max_energy_range_uj: int) -> int:
    """Microjoules between two readings of a counter that wraps at `max_energy_range_uj`.

    A reading below the previous one is one wrap-around: the counter ran up to its
    range and started again at 0.
    """
    if now_uj >= previous_uj:
        return now_uj - previous_uj
    return max_energy_range_uj - previous_uj + now_uj


def zone_sort_key(key: str) -> tuple[int, int]:
    match = _ZONE_DIR.match(key)
    assert match is not None
    return int(match.group(1)), int(match.group(2) or -1)


# ---------------------------------------------------------------------------- files


def _reason(exc: OSError, path: Path) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"{path}: permission denied (energy_uj is readable by root only since "
            "Linux 5.10, CVE-2020-8694); run the node as root, grant read access "
            "(e.g. a udev rule or `chmod o+r`), or choose another energy.meter"
        )
    return f"{path}: {exc.strerror or exc}"


def read_uj(path: Path) -> int:
    """Read one counter file (raises OSError or ValueError)."""
    return parse_uj(path.read_text(encoding="ascii"), str(path))


def find_zones(root: Path) -> list[RaplZone]:
    """Every RAPL zone under `root` (top level and nested), each once, in order.

    Raises MeterUnavailable when the tree is absent or a zone's files are unreadable.
    """
    if not root.is_dir():
        raise MeterUnavailable(MeterKind.RAPL, f"{root} does not exist (no powercap on this host)")
    dirs: dict[str, Path] = {}
    try:
        for top in sorted(os.scandir(root), key=lambda e: e.name):
            if _ZONE_DIR.match(top.name) and top.is_dir():
                dirs.setdefault(top.name, Path(top.path))
                for sub in os.scandir(top.path):
                    if _ZONE_DIR.match(sub.name) and sub.is_dir():
                        dirs.setdefault(sub.name, Path(sub.path))
    except OSError as exc:
        raise MeterUnavailable(MeterKind.RAPL, _reason(exc, root)) from None
    zones = []
    for key in sorted(dirs, key=zone_sort_key):
        path = dirs[key]
        try:
            name = (path / "name").read_text(encoding="ascii").strip()
            max_uj = read_uj(path / "max_energy_range_uj")
        except OSError as exc:
            raise MeterUnavailable(MeterKind.RAPL, _reason(exc, path)) from None
        except ValueError as exc:
            raise MeterUnavailable(MeterKind.RAPL, str(exc)) from None
        zones.append(RaplZone(key, name, path / "energy_uj", max_uj))
    if not zones:
        raise MeterUnavailable(MeterKind.RAPL, f"no intel-rapl zones under {root}")
    return zones


# ---------------------------------------------------------------------------- meter


class RaplMeter(EnergyMeter):
    """Sum of the package and dram RAPL counters of this host (whole host, all processes).

    `verify_s` (seconds): at open, read the counters twice this far apart and refuse
    counters that do not move (some VMs expose RAPL zones that always read 0); 0 skips
    the check. `guard_interval_s` (seconds): period of the wrap-around guard thread.
    """

    method = EnergyMethod.RAPL

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        verify_s: float = 0.05,
        guard_interval_s: float = 10.0,
    ) -> None:
        self.root = Path(root)
        zones = find_zones(self.root)
        self.zones = [z for z in zones if z.counted]
        self.skipped = [z for z in zones if not z.counted]
        if not self.zones:
            names = ", ".join(z.name for z in zones)
            raise MeterUnavailable(
                MeterKind.RAPL, f"no package or dram zone under {self.root} (found: {names})"
            )
        self._lock = threading.Lock()
        self._last_uj = self._read_all()
        self._total_uj = 0
        if verify_s > 0:
            time.sleep(verify_s)
            again = self._read_all()
            if again == self._last_uj:
                raise MeterUnavailable(
                    MeterKind.RAPL,
                    f"counters under {self.root} did not advance in {verify_s:g} s "
                    "(a VM exposing dead RAPL zones?)",
                )
            self._last_uj = again  # count from the end of the check, not its start
        self._guard: Periodic | None = Periodic(self.energy_j, guard_interval_s, "rapl-guard")

    def _read_all(self) -> list[int]:
        try:
            return [read_uj(z.energy_file) for z in self.zones]
        except OSError as exc:
            raise MeterUnavailable(MeterKind.RAPL, _reason(exc, Path(exc.filename or ""))) from None
        except ValueError as exc:
            raise MeterUnavailable(MeterKind.RAPL, str(exc)) from None

    def energy_j(self) -> float:
        with self._lock:
            try:
                now = [read_uj(z.energy_file) for z in self.zones]
            except (OSError, ValueError) as exc:
                raise MeterError(f"rapl: cannot read counters: {exc}") from exc
            for zone, before, after in zip(self.zones, self._last_uj, now, strict=True):
                self._total_uj += counter_delta_uj(before, after, zone.max_energy_range_uj)
            self._last_uj = now
            return self._total_uj / 1e6

    def describe(self) -> str:
        counted = " + ".join(z.name for z in self.zones)
        line = f"rapl: {counted} ({len(self.zones)} zones, {self.root})"
        if self.skipped:
            line += "; not counted: " + ", ".join(z.name for z in self.skipped)
        return line

    def close(self) -> None:
        if self._guard is not None:
            self._guard.stop()
            self._guard = None
