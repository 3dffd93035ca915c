"""What a node tells the registry about the host it runs on, beyond its own facts: the
interpreter, the package versions, and on a Jetson the L4T release, the power mode and
the clocks; the GPU where `nvidia-smi` answers. The coordinator of a bench of hosts
writes them into the run manifest per host (coordinator/bench_hosts.py), so a run says
on what it ran without a second round of SSH.

Every value is a short string (the registry bounds facts: coordinator/registry.py), and
a fact that cannot be read is left out, never guessed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "aigc-testbed", "grpcio", "protobuf", "onnxruntime", "onnxruntime-gpu", "numpy",
    "paho-mqtt", "tensorrt",
)  # fmt: skip
"""The packages whose versions decide what a node measures."""

FACT_MAX_LEN = 512
"""A fact's value is cut to this (the registry takes at most 1024 characters)."""

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_MODEL = Path("/proc/device-tree/model")
CPU_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
DEVFREQ = Path("/sys/class/devfreq")
COMMAND_TIMEOUT_S = 5.0


def announced_host_facts() -> dict[str, str]:
    """The host's facts as the registry takes them (strings, each at most
    FACT_MAX_LEN characters)."""
    facts = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count() or 0),
        "packages": package_versions(),
    }
    facts.update(_first_line(TEGRA_RELEASE, "l4t_release"))
    facts.update(_first_line(DEVICE_MODEL, "board_model"))
    if shutil.which("nvpmodel"):
        facts.update(_command(["nvpmodel", "-q"], "power_mode"))
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        facts.update(_command(query, "gpu"))
    clocks = clock_readings()
    if clocks:
        facts["clocks"] = clocks
    return {key: value[:FACT_MAX_LEN] for key, value in facts.items() if value}


def package_versions() -> str:
    """`name=version` of the installed PACKAGES, comma-separated."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ",".join(found)


def clock_readings() -> str:
    """The current clocks in MHz where the kernel shows them: CPU 0 and every devfreq
    device (a Jetson's GPU and memory controller), e.g. `cpu0=1190,17000000.gv11b=1109`."""
    readings = []
    khz = _read(CPU_FREQ)
    if khz.isdigit():
        readings.append(f"cpu0={int(khz) // 1000}")
    try:
        devices = sorted(DEVFREQ.iterdir()) if DEVFREQ.is_dir() else []
    except OSError:
        devices = []
    for device in devices:
        hz = _read(device / "cur_freq")
        if hz.isdigit():
            readings.append(f"{device.name}={int(hz) // 1_000_000}")
    return ",".join(readings)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return ""


def _first_line(path: Path, key: str) -> dict[str, str]:
    text = _read(path)
    return {key: text.splitlines()[0].strip()} if text else {}


def _command(argv: list[str], key: str) -> dict[str, str]:
    """`key`: the command's output on one line; nothing when it fails or hangs."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return {}
    text = " ".join(out.stdout.split())
    return {key: text} if out.returncode == 0 and text else {}
