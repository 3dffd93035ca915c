"""Run folders: `runs/<experiment>__<policy>__<seed>__<utc>/` with the resolved
config, a manifest (git commit, package versions, host and board facts, broker), the
per-task records, `summary.json` and plots (docs/live-loop.md, "The run folder").
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from coordinator.records import write_json
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit

_PACKAGES = (
    "aigc-testbed", "grpcio", "protobuf", "onnxruntime", "onnxruntime-gpu", "onnx", "torch",
    "paho-mqtt", "amqtt", "numpy", "tensorrt", "nvidia-ml-py",
)  # fmt: skip


_SLUG_MAX_LEN = 64  # a run folder's name stays far below a file system's 255 bytes


def slug(text: str) -> str:
    """`text` as a file-name part (at most 64 characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:_SLUG_MAX_LEN] or "x"


def unwritable(
    folder: str | os.PathLike[str], exc: OSError, what: str = "run.out_dir"
) -> TestbedExit:
    """OUTPUT_UNWRITABLE naming the folder, the key that chose it and why."""
    why = exc.strerror or str(exc)
    return TestbedExit(ExitCode.OUTPUT_UNWRITABLE, f"cannot write in {folder} ({what}): {why}")


def new_run_dir(out_dir: str | os.PathLike[str], experiment: str, policy: str, seed: int) -> Path:
    """A fresh run folder in `out_dir`; OUTPUT_UNWRITABLE (naming `out_dir`) if it
    cannot be made there (read-only, a file in the way, no space, no permission)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(out_dir) / f"{slug(experiment)}__{slug(Path(policy).stem)}__{seed}__{stamp}"
    path, n = base, 1
    try:
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True)
    except OSError as exc:
        raise unwritable(out_dir, exc) from None
    return path


def write_config(run_dir: Path, cfg: TestbedConfig) -> Path:
    """`config.yaml` in the run folder; OUTPUT_UNWRITABLE (e.g. no space left) naming it."""
    path = run_dir / "config.yaml"
    try:
        path.write_text(
            "# Resolved configuration of this run (file + environment + flags).\n" + cfg.to_yaml()
        )
    except OSError as exc:
        raise unwritable(run_dir, exc) from None
    return path


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return f"{commit}{'+dirty' if dirty.stdout.strip() else ''}" if commit else ""


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def busy_cores(interval_s: float = 1.0) -> float:
    """How many of the host's cores were busy over the next `interval_s` (from
    /proc/stat via psutil): what runs now, unlike the 1-min load average, which still
    carries the last minute's work (in an experiment: the previous cell's own bench)."""
    return psutil.cpu_percent(interval=interval_s) / 100.0 * (os.cpu_count() or 1)


def host_facts() -> dict[str, Any]:
    """Facts about this host; on a Jetson also L4T release, power mode and clocks."""
    facts: dict[str, Any] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    tegra = Path("/etc/nv_tegra_release")
    if tegra.exists():
        facts["l4t_release"] = tegra.read_text().splitlines()[0].strip()
        try:
            mode = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5)
            facts["power_mode"] = mode.stdout.strip().replace("\n", " ")
        except (OSError, subprocess.SubprocessError):
            pass
    return facts


def write_manifest(run_dir: Path, cfg: TestbedConfig, extra: dict[str, Any]) -> Path:
    path = run_dir / "manifest.json"
    write_json(
        path,
        {
            "experiment": cfg.experiment,
            "seed": cfg.seed,
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "packages": package_versions(),
            "coordinator_host": host_facts(),
            **extra,
        },
    )
    return path
