"""The RAPL reader against powercap trees written as real files."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from testbed.config import MeterKind
from testbed.energy import MeterUnavailable, rapl
from testbed.energy.rapl import RaplMeter, counter_delta_uj, find_zones
from testbed.types import EnergyMethod
from tests.waiting import WAIT_S, wait_until

MAX_UJ = 262_143_328_850  # a real package range


def write(path: Path, text: str) -> None:
    """Replace a file in one step, as sysfs never shows a half-written value."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def zone(folder: Path, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    folder.mkdir(parents=True)
    write(folder / "name", f"{name}\n")
    write(folder / "energy_uj", f"{energy_uj}\n")
    write(folder / "max_energy_range_uj", f"{max_uj}\n")
    write(folder / "enabled", "1\n")
    return folder


def powercap_tree(root: Path) -> dict[str, Path]:
    """A two-socket server with dram plus a laptop-style psys zone, laid out as
    /sys/class/powercap is: zones nested, and every zone also linked at the top."""
    (root / "intel-rapl").mkdir(parents=True)  # the control type, not a zone
    write(root / "intel-rapl" / "enabled", "1\n")
    z = {
        "package-0": zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "core": zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 10),
        "uncore": zone(root / "intel-rapl:0" / "intel-rapl:0:1", "uncore", 20),
        "dram-0": zone(root / "intel-rapl:0" / "intel-rapl:0:2", "dram", 500_000),
        "package-1": zone(root / "intel-rapl:1", "package-1", 2_000_000),
        "dram-1": zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 0),
        "psys": zone(root / "intel-rapl:2", "psys", 7_000_000),
        "mmio": zone(root / "intel-rapl-mmio:0", "package-0", 1_000_000),
    }
    for parent in ("intel-rapl:0", "intel-rapl:1"):
        for sub in (root / parent).glob("intel-rapl:*"):
            os.symlink(sub, root / sub.name)
    return z


def test_counts_packages_and_dram_once_each(tmp_path: Path) -> None:
    powercap_tree(tmp_path)
    zones = find_zones(tmp_path)
    assert [z.key for z in zones] == [
        "intel-rapl:0",
        "intel-rapl:0:0",
        "intel-rapl:0:1",
        "intel-rapl:0:2",
        "intel-rapl:1",
        "intel-rapl:1:0",
        "intel-rapl:2",
    ]
    with RaplMeter(tmp_path, verify_s=0) as meter:
        assert [z.name for z in meter.zones] == ["package-0", "dram", "package-1", "dram"]
        assert meter.method is EnergyMethod.RAPL
        line = meter.describe()
        assert "package-0 + dram + package-1 + dram (4 zones" in line
        assert "not counted: core, uncore, psys" in line


def test_energy_is_the_sum_of_counted_deltas(tmp_path: Path) -> None:
    z = powercap_tree(tmp_path)
    with RaplMeter(tmp_path, verify_s=0) as meter:
        assert meter.energy_j() == 0.0
        write(z["package-0"] / "energy_uj", "3000000\n")  # +2 J
        write(z["dram-0"] / "energy_uj", "1500000\n")  # +1 J
        write(z["package-1"] / "energy_uj", "2500000\n")  # +0.5 J
        write(z["dram-1"] / "energy_uj", "250000\n")  # +0.25 J
        write(z["core"] / "energy_uj", "1999990\n")  # inside package-0: not added
        write(z["psys"] / "energy_uj", "99000000\n")  # overlaps all: not added
        assert meter.energy_j() == pytest.approx(3.75)
        with meter.measure("compute") as span:
            write(z["package-0"] / "energy_uj", "4000000\n")
        assert span.part.energy_j == pytest.approx(1.0)
        assert span.part.method is EnergyMethod.RAPL


def test_counts_across_a_wrap_around(tmp_path: Path) -> None:
    pkg = zone(tmp_path / "intel-rapl:0", "package-0", 900_000, max_uj=1_000_000)
    with RaplMeter(tmp_path, verify_s=0) as meter:
        write(pkg / "energy_uj", "100000\n")  # ran up to 1_000_000 and started again
        assert meter.energy_j() == pytest.approx(0.2)
        write(pkg / "energy_uj", "300000\n")
        assert meter.energy_j() == pytest.approx(0.4)
        write(pkg / "energy_uj", "50000\n")
        assert meter.energy_j() == pytest.approx(1.15)


def test_guard_thread_catches_wraps_between_readings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = zone(tmp_path / "intel-rapl:0", "package-0", 0, max_uj=1000)
    guard_read_800 = threading.Event()
    read_uj = rapl.read_uj

    def watched_read_uj(path: Path) -> int:
        value = read_uj(path)
        if value == 800 and threading.current_thread().name == "rapl-guard":
            guard_read_800.set()
        return value

    monkeypatch.setattr(rapl, "read_uj", watched_read_uj)
    with RaplMeter(tmp_path, verify_s=0, guard_interval_s=0.01) as meter:
        write(pkg / "energy_uj", "800\n")
        assert guard_read_800.wait(WAIT_S)
        write(pkg / "energy_uj", "600\n")  # one wrap: +800 µJ
        # without the guard only 0 → 600 would be seen
        assert meter.energy_j() == pytest.approx(1600e-6)


def test_counter_delta_arithmetic() -> None:
    assert counter_delta_uj(10, 25, 100) == 15
    assert counter_delta_uj(90, 5, 100) == 15
    assert counter_delta_uj(7, 7, 100) == 0


def _open_unprivileged(root: Path) -> str:
    """Open a RaplMeter as an ordinary user; return the reason it was refused."""
    if os.geteuid() != 0:
        try:
            RaplMeter(root, verify_s=0).close()
        except MeterUnavailable as exc:
            return exc.reason
        return "opened"
    # root reads any file: fork, drop to `nobody`, and let the kernel say no
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                RaplMeter(root, verify_s=0).close()
                message = "opened"
            except MeterUnavailable as exc:
                message = exc.reason
            os.write(write_fd, message.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as f:
        return f.read().decode()


def test_root_only_counters_are_unavailable_with_the_reason() -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        tmp.chmod(0o755)  # the unprivileged child must reach the files
        pkg = zone(tmp / "intel-rapl:0", "package-0", 123)
        (pkg / "energy_uj").chmod(0o400)  # as on Linux ≥ 5.10
        reason = _open_unprivileged(tmp)
    finally:
        shutil.rmtree(tmp)
    assert "permission denied" in reason
    assert "energy_uj" in reason
    assert "CVE-2020-8694" in reason


def test_missing_tree_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable) as info:
        RaplMeter(tmp_path / "powercap")
    assert info.value.method is MeterKind.RAPL
    assert "does not exist" in info.value.reason


def test_tree_without_package_zones_is_unavailable(tmp_path: Path) -> None:
    zone(tmp_path / "intel-rapl:0", "psys", 100)
    with pytest.raises(MeterUnavailable, match=r"no package or dram zone .*found: psys"):
        RaplMeter(tmp_path, verify_s=0)


def test_counters_that_never_move_are_refused(tmp_path: Path) -> None:
    zone(tmp_path / "intel-rapl:0", "package-0", 0)
    with pytest.raises(MeterUnavailable, match="did not advance"):
        RaplMeter(tmp_path, verify_s=0.01)


def test_counters_that_move_pass_the_check(tmp_path: Path) -> None:
    pkg = zone(tmp_path / "intel-rapl:0", "package-0", 0)
    stop = threading.Event()

    def count_up() -> None:
        value = 0
        while not stop.wait(0.002):
            value += 1000
            write(pkg / "energy_uj", f"{value}\n")

    writer = threading.Thread(target=count_up, daemon=True)
    writer.start()
    try:
        with RaplMeter(tmp_path, verify_s=0.05) as meter:
            assert wait_until(lambda: meter.energy_j() > 0)
    finally:
        stop.set()
        writer.join()


def test_unparsable_counter_is_unavailable(tmp_path: Path) -> None:
    pkg = zone(tmp_path / "intel-rapl:0", "package-0", 0)
    write(pkg / "energy_uj", "n/a\n")
    with pytest.raises(MeterUnavailable, match="expected an integer"):
        RaplMeter(tmp_path, verify_s=0)
