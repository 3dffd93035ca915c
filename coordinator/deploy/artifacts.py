"""What deploy copies to every host, made once on the coordinator and cached: the
project's wheel (rebuilt only when its sources change) and a wheelhouse of its
dependencies per kind of host (architecture, Python, C library, extras), pinned to the
versions of the coordinator's own environment, so hosts install with `pip install
--no-index --find-links` and never need an index (docs/deploy.md, "Artifacts").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coordinator.deploy.ssh import HostFailure
from testbed.exit_codes import ExitCode, TestbedExit

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "aigc-testbed"
PACKAGES = ("testbed", "agent_node", "edge_node", "cloud_node", "coordinator")
"""pyproject.toml's packages: what the wheel holds."""
_PACKAGE_SUFFIXES = (".py", ".yaml", ".json", ".pyi", ".typed")
_TOP_FILES = ("pyproject.toml", "README.md")
COMPLETE = "complete.json"
"""Written last into a cached folder: a folder without it is a build cut short."""


def source_files(repo: Path = REPO) -> list[Path]:
    """The files the wheel is built from (relative to `repo`), sorted."""
    files = [Path(name) for name in _TOP_FILES if (repo / name).is_file()]
    for package in PACKAGES:
        files += [
            p.relative_to(repo) for p in (repo / package).rglob("*")
            if p.is_file() and p.suffix in _PACKAGE_SUFFIXES and "__pycache__" not in p.parts
        ]  # fmt: skip
    return sorted(files)


def source_key(repo: Path = REPO) -> str:
    """sha256 of every source file's path and bytes: a new key, a new wheel."""
    digest = hashlib.sha256()
    for rel in source_files(repo):
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update((repo / rel).read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder at a time per cache folder (parallel deploys, tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _complete(folder: Path) -> dict | None:
    try:
        return json.loads((folder / COMPLETE).read_text())
    except (OSError, ValueError):
        return None


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
        raise TestbedExit(ExitCode.DEPLOY_FAILED, f"{what} failed: {tail}")


@dataclass(frozen=True)
class ProjectWheel:
    path: Path
    source_key: str
    version: str


def given_wheel(path: Path) -> ProjectWheel:
    """An operator's wheel (`deploy.wheel`): its bytes' sha256 stands for its sources."""
    if not path.is_file() or not path.name.endswith(".whl"):
        raise TestbedExit(ExitCode.CONFIG_INVALID, f"deploy.wheel: no wheel file {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ProjectWheel(path.resolve(), digest, path.name.split("-")[1])


def project_wheel(cache_dir: Path, repo: Path = REPO) -> ProjectWheel:
    """The project's wheel for the current sources: cached under
    `<cache_dir>/wheels/<key>`, built (`pip wheel --no-deps`, from a copy of the sources,
    so the checkout gets no build folder) only when the sources changed."""
    if not (repo / "pyproject.toml").is_file():
        raise TestbedExit(ExitCode.DEPLOY_FAILED, f"no pyproject.toml in {repo}: deploy "
                          "builds the project's wheel from a checkout of its sources")  # fmt: skip
    key = source_key(repo)
    folder = cache_dir / "wheels" / key[:16]
    with _locked(cache_dir / "wheels"):
        done = _complete(folder)
        if done is None:
            shutil.rmtree(folder, ignore_errors=True)
            with tempfile.TemporaryDirectory(prefix="testbed-wheel-") as tmp:
                staging = Path(tmp) / "src"
                for rel in source_files(repo):
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(repo / rel, staging / rel)
                built = Path(tmp) / "out"
                _pip(["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                      "-w", str(built), str(staging)], "building the project wheel")  # fmt: skip
                wheel = next(built.glob("*.whl"))
                folder.mkdir(parents=True)
                shutil.copy2(wheel, folder / wheel.name)
            done = {"wheel": wheel.name, "source_key": key}
            (folder / COMPLETE).write_text(json.dumps(done))
    version = done["wheel"].split("-")[1]
    return ProjectWheel(folder / done["wheel"], key, version)


# ------------------------------------------------------------------------- wheelhouse


@dataclass(frozen=True)
class Target:
    """A kind of host, as far as wheels care."""

    arch: str
    python: str
    """major.minor"""
    glibc: str
    extras: tuple[str, ...]

    @property
    def label(self) -> str:
        extras = "+".join(self.extras) or "core"
        return f"{self.arch}-py{self.python}-glibc{self.glibc or '?'}-{extras}"


def requirements(extras: tuple[str, ...], repo: Path = REPO) -> list[str]:
    """The project's dependencies and those of `extras`, from pyproject.toml."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"].get(extra, [])
    return reqs


def constraints() -> list[str]:
    """`name==version` of every distribution in the coordinator's environment: the
    hosts run what the coordinator was tested with."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != DISTRIBUTION:
            pins[name.lower()] = f"{name}=={dist.version}"
    return sorted(pins.values())


def _platform_flags(target: Target) -> list[str]:
    """pip's flags for wheels of another machine than the coordinator (none when the
    host is this kind of machine: pip's own choice is right)."""
    here_glibc = platform.libc_ver()[1]
    same = (target.arch == platform.machine()
            and target.python == f"{sys.version_info[0]}.{sys.version_info[1]}"
            and _version(target.glibc) >= _version(here_glibc))  # fmt: skip
    if same:
        return []
    minor = _version(target.glibc)[1] if len(_version(target.glibc)) > 1 else 17
    tags = [f"manylinux_2_{m}_{target.arch}" for m in range(17, minor + 1)]
    tags += [f"manylinux2014_{target.arch}", "any"]
    py = target.python.replace(".", "")
    flags = ["--python-version", target.python, "--implementation", "cp", "--abi", f"cp{py}",
             "--abi", "abi3", "--abi", "none"]  # fmt: skip
    for tag in tags:
        flags += ["--platform", tag]
    return flags


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def wheelhouse(cache_dir: Path, target: Target, given: str = "") -> Path:
    """The folder of dependency wheels for `target`: `given` (`deploy.wheelhouse`, an
    operator's folder) as it is; else downloaded once (`pip download`, pinned to the
    coordinator's versions, pip itself included to bootstrap the host's venv) into
    `<cache_dir>/wheelhouse/<target>-<key>`."""
    if given:
        folder = Path(given).expanduser()
        if not any(folder.glob("pip-*.whl")):
            raise HostFailure(f"deploy.wheelhouse {folder} holds no pip wheel (pip-*.whl)")
        return folder
    reqs = [*requirements(target.extras), "pip"]
    pins = constraints()
    key = hashlib.sha256(json.dumps([target.label, reqs, pins]).encode()).hexdigest()[:12]
    folder = cache_dir / "wheelhouse" / f"{target.label}-{key}"
    with _locked(cache_dir / "wheelhouse"):
        if _complete(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            (staging / "constraints.txt").write_text("\n".join(pins) + "\n")
            log.info("downloading the wheelhouse for %s", target.label)
            _pip(["download", "-q", "--only-binary=:all:", "-d", str(staging),
                  "-c", str(staging / "constraints.txt"), *_platform_flags(target), *reqs],
                 f"pip download of the wheelhouse for {target.label}")  # fmt: skip
            (staging / "constraints.txt").unlink()
            files = sorted(p.name for p in staging.glob("*.whl"))
            (staging / COMPLETE).write_text(json.dumps({"target": target.label, "wheels": files}))
            staging.rename(folder)
    return folder


def wheel_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.whl"))
