"""What deploy learns about a host before it plans anything (docs/deploy.md, "Facts"):
its Python, architecture, C library, JetPack/L4T release, NVIDIA GPUs, clock offset to
the coordinator, whether systemd is PID 1, and — once installed — which ONNX Runtime
execution providers the daemons' interpreter can load. One shell script, one round
trip; `python_choice` then decides which interpreter the host's venv is made with.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.deploy.layout import MANIFEST, PROVIDERS_SAID, PROVISIONED_PYTHON, HostLayout
from coordinator.deploy.ssh import HostFailure, HostLink, q, shell_path
from testbed.config import BoardClass, DeployConfig, HostConfig

MIN_PYTHON = (3, 11)
"""This project's `requires-python` (pyproject.toml)."""

_L4T = re.compile(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")
_JETPACK_OF_L4T = {32: "4", 34: "5 (developer preview)", 35: "5", 36: "6"}
"""JetPack major release by L4T major release (NVIDIA's JetPack archive)."""


@dataclass
class HostFacts:
    """What one host is, as read over SSH."""

    home: str
    arch: str
    os_name: str
    glibc: str
    pid1: str
    clock_offset_s: float
    """Host clock minus coordinator clock (positive: the host is ahead)."""
    clock_uncertainty_s: float
    """Half the round trip the reading took: the offset is known to ± this."""
    l4t: str = ""
    """e.g. `R35.4.1` from /etc/nv_tegra_release; '' where absent."""
    gpus: list[str] = field(default_factory=list)
    """`nvidia-smi -L` lines."""
    python_path: str = ""
    python_version: str = ""
    provisioned_version: str = ""
    """Version of the interpreter deploy unpacked under the prefix, if any."""
    deployed: dict[str, str] = field(default_factory=dict)
    """Node id → kind of the daemons the last deploy left here (its deploy.json)."""
    providers: str = ""
    """ONNX Runtime execution providers of the venv, as said after its last install."""

    @property
    def systemd(self) -> bool:
        return self.pid1 == "systemd"

    @property
    def jetpack(self) -> str:
        match = re.match(r"R(\d+)", self.l4t)
        return _JETPACK_OF_L4T.get(int(match.group(1)), "?") if match else ""

    @property
    def nvidia_gpu(self) -> bool:
        return bool(self.gpus)

    def summary(self) -> str:
        board = f"L4T {self.l4t} (JetPack {self.jetpack})" if self.l4t else "no L4T"
        gpu = "; ".join(self.gpus) if self.gpus else "no NVIDIA GPU"
        python = (f"{self.python_path} {self.python_version}" if self.python_version
                  else "no Python")  # fmt: skip
        init = "systemd" if self.systemd else f"no systemd (PID 1 is {self.pid1 or '?'})"
        return (f"{python}; {self.arch}, {self.os_name or 'unknown OS'}, glibc {self.glibc}; "
                f"{board}; {gpu}; clock {self.clock_offset_s:+.3f} s; {init}")  # fmt: skip


def _script(host: HostConfig) -> str:
    python = shell_path(host.python)
    provisioned = shell_path(posixpath.join(host.prefix, PROVISIONED_PYTHON))
    manifest = shell_path(posixpath.join(host.prefix, MANIFEST))
    providers = shell_path(posixpath.join(host.prefix, PROVIDERS_SAID))
    return f"""
echo "home=$HOME"
echo "arch=$(uname -m)"
echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2)"
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
[ -r /etc/nv_tegra_release ] && echo "l4t=$(head -n 1 /etc/nv_tegra_release)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | sed 's/^/gpu=/'
if command -v {python} >/dev/null 2>&1; then
  echo "python_path=$(command -v {python})"
  echo "python_version=$({python} -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
fi
P={provisioned}
[ -x "$P" ] && echo "provisioned=$("$P" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
[ -r {manifest} ] && echo "manifest=$(tr -d '\\n' < {manifest})"
[ -r {providers} ] && echo "providers=$(head -n 1 {providers})"
exit 0
"""


CLOCK_SAMPLES = 5
READ_TIMEOUT_S = 30.0


async def gather_facts(link: HostLink) -> HostFacts:
    """Read the host's facts: its clock, NTP style — asked several times on an open
    channel, the reading with the shortest round trip wins, its offset taken against
    the round trip's midpoint — then the facts script, in the same channel (each new
    SSH channel costs a round trip and a process on the host)."""
    reader = 'while read -r line && [ "$line" = now ]; do date +%s.%N; done'
    proc = await link.conn.create_process(f"{reader}\n{_script(link.host)}")
    best: tuple[float, float] | None = None
    try:
        for _ in range(CLOCK_SAMPLES):
            t0 = time.time()
            proc.stdin.write("now\n")
            answer = str(await asyncio.wait_for(proc.stdout.readline(), READ_TIMEOUT_S))
            t1 = time.time()
            remote = _float(answer.strip())
            if remote is None:
                raise HostFailure(f"no clock reading from the host (date said {answer!r})")
            sample = (remote - (t0 + t1) / 2, (t1 - t0) / 2)
            best = sample if best is None or sample[1] < best[1] else best
        proc.stdin.write("facts\n")
        proc.stdin.write_eof()
        text = str(await asyncio.wait_for(proc.stdout.read(), READ_TIMEOUT_S))
    except TimeoutError:
        raise HostFailure(f"the host gave no facts within {READ_TIMEOUT_S:g} s") from None
    finally:
        proc.close()
    assert best is not None
    return _parse(text, best)


def _parse(text: str, clock: tuple[float, float]) -> HostFacts:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    one = {k: v[0] for k, v in values.items()}
    match = _L4T.search(one.get("l4t", ""))
    try:
        deployed = json.loads(one.get("manifest", "")).get("nodes", {})
    except (ValueError, AttributeError):
        deployed = {}
    return HostFacts(
        home=one.get("home", ""),
        arch=one.get("arch", ""),
        os_name=one.get("os", ""),
        glibc=one.get("glibc", ""),
        pid1=one.get("pid1", ""),
        clock_offset_s=clock[0],
        clock_uncertainty_s=clock[1],
        l4t=f"R{match.group(1)}.{match.group(2)}" if match else "",
        gpus=values.get("gpu", []),
        python_path=one.get("python_path", ""),
        python_version=one.get("python_version", ""),
        provisioned_version=one.get("provisioned", ""),
        deployed=dict(deployed) if isinstance(deployed, dict) else {},
        providers=one.get("providers", ""),
    )


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


@dataclass(frozen=True)
class PythonChoice:
    """The interpreter the host's venv is made with, and why."""

    path: str
    version: str
    provision: bool
    """True: unpack `deploy.python_dist` under the prefix first."""
    note: str


def python_choice(host: HostConfig, facts: HostFacts, settings: DeployConfig,
                  layout: HostLayout) -> PythonChoice:  # fmt: skip
    """The host's own interpreter where it is new enough; else the standalone CPython
    of `deploy.python_dist` (its architecture must be the host's); else HostFailure
    saying what to do (docs/deploy.md, "Boards' Python")."""
    own = version_tuple(facts.python_version)
    if own >= MIN_PYTHON:
        return PythonChoice(facts.python_path, facts.python_version, False, "the host's own")
    found = (f"{host.python} is Python {facts.python_version}" if facts.python_version
             else f"no {host.python} on the host")  # fmt: skip
    if not settings.python_dist:
        raise HostFailure(
            f"{found}; this project needs Python ≥ {'.'.join(map(str, MIN_PYTHON))}: set "
            f"deploy.python_dist to a python-build-standalone install_only archive for "
            f'{facts.arch} (docs/deploy.md, "Boards\' Python"), or inventory python to a '
            "newer interpreter"
        )
    archive = Path(settings.python_dist).expanduser()
    if not archive.is_file():
        raise HostFailure(f"deploy.python_dist: no such file {archive}")
    if facts.arch and facts.arch not in archive.name:
        raise HostFailure(f"deploy.python_dist {archive.name} is not for {facts.arch} "
                          f"(the host's architecture; {found})")  # fmt: skip
    dist_version = _archive_version(archive.name)
    if dist_version and version_tuple(dist_version) < MIN_PYTHON:
        raise HostFailure(f"deploy.python_dist {archive.name} is Python {dist_version}")
    lost = (" — JetPack's GPU ONNX Runtime and TensorRT bindings are for the system "
            "interpreter only: this board's local work runs on its CPU"
            if host.board in (BoardClass.JETSON_XAVIER, BoardClass.JETSON_ORIN) or facts.l4t
            else "")  # fmt: skip
    return PythonChoice(layout.provisioned_python, dist_version or "?", True,
                        f"provisioned from {archive.name} ({found}){lost}")  # fmt: skip


def _archive_version(name: str) -> str:
    """`cpython-3.11.9+20240814-aarch64-unknown-linux-gnu-install_only.tar.gz` → 3.11.9."""
    match = re.match(r"cpython-(\d+\.\d+\.\d+)", name)
    return match.group(1) if match else ""


def check_clock(facts: HostFacts, settings: DeployConfig) -> None:
    """Refuse a host whose clock is off by more than `deploy.max_clock_skew_s`
    (certificates are checked against clocks; latencies are measured by them)."""
    skew = abs(facts.clock_offset_s) - facts.clock_uncertainty_s
    if skew > settings.max_clock_skew_s:
        raise HostFailure(
            f"its clock is {facts.clock_offset_s:+.1f} s off the coordinator's (more than "
            f"deploy.max_clock_skew_s = {settings.max_clock_skew_s:g} s): sync it (NTP/chrony)"
        )


async def read_providers(link: HostLink, layout: HostLayout, facts: HostFacts, *,
                         refresh: bool) -> str:  # fmt: skip
    """The ONNX Runtime execution providers the venv's interpreter can load: as said
    after its last install (the facts read `<venv>/testbed-providers.txt`), or, with
    `refresh` or none said yet, asked of the interpreter now and kept."""
    said = layout.path(PROVIDERS_SAID)
    if facts.providers and not refresh:
        return facts.providers
    code = "import onnxruntime as o; print(', '.join(o.get_available_providers()))"
    out = await link.run(f"{q(layout.venv_python)} -c {q(code)}", check=False)
    text = (out.stdout.strip() if out.exit_status == 0
            else "none: ONNX Runtime is not installed (no role of this host needs it)")  # fmt: skip
    await link.write_bytes(said, text.encode() + b"\n")
    return text
