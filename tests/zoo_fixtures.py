"""`tiny_zoo`: the tiny model zoo, built once and cached across test sessions.

The zoo is built into `.zoo/tiny-test-<key>`, where the key hashes the sources that
decide its bytes (coordinator/zoo, testbed/zoo, but not the CLI) and the versions of
torch, onnx and numpy: a change of either builds a new folder beside the old one
(≈ 15 s on 2 cores), so a test session still using the old zoo is never pulled from
under its feet. Each build goes to a temporary folder renamed into place; every file is
checked against the catalog's sha256 before reuse; a file lock keeps parallel test
processes from building it twice. Treat the folder as read-only: copy it
(`shutil.copytree`) to modify it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.config import ZooScale
from testbed.zoo.catalog import Catalog, CatalogError, file_sha256

REPO = Path(__file__).resolve().parents[1]
CACHE_ROOT = REPO / ".zoo"
KEY_FILE = ".source-key"
TINY_ZOO_SEED = 0
TINY_ZOO_TRAIN_STEPS = 200
_SOURCES = ("coordinator/zoo", "testbed/zoo")
_NOT_SOURCES = ("coordinator/zoo/cli.py",)  # the command line decides no byte of the zoo
_PACKAGES = ("torch", "onnx", "numpy")


def zoo_source_key() -> str:
    """Hash of everything that decides the tiny zoo's bytes."""
    return source_key(f"{TINY_ZOO_SEED}/{TINY_ZOO_TRAIN_STEPS}", _SOURCES, (), _PACKAGES)


def source_key(
    salt: str, folders: tuple[str, ...], files: tuple[str, ...], packages: tuple[str, ...]
) -> str:
    """Hash of `salt`, the Python files of `folders` (not the command line's), `files`
    and the versions of `packages`: a cached zoo's key (tests/quality_fixtures.py too)."""
    digest = hashlib.sha256(salt.encode())
    paths = [p for folder in folders for p in sorted((REPO / folder).glob("*.py"))]
    for path in [*paths, *(REPO / f for f in files)]:
        if path.relative_to(REPO).as_posix() in _NOT_SOURCES:
            continue
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    for name in packages:
        try:
            digest.update(f"{name}={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{name}=absent".encode())
    return digest.hexdigest()


def _is_valid(folder: Path, key: str) -> bool:
    try:
        if (folder / KEY_FILE).read_text() != key:
            return False
        catalog = Catalog.load(folder)
    except (OSError, CatalogError):
        return False
    return all(
        e.path(folder).is_file() and file_sha256(e.path(folder)) == e.sha256
        for e in catalog.entries
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_tiny_zoo(root: Path = CACHE_ROOT) -> Path:
    """The cached tiny zoo of the current sources under `root`, built if missing."""
    key = zoo_source_key()
    folder = root / f"tiny-test-{key[:16]}"
    with _locked(root / "tiny-test.lock"):
        if _is_valid(folder, key):
            return folder
        pytest.importorskip("torch", reason="building the tiny zoo needs torch")
        pytest.importorskip("onnx", reason="building the tiny zoo needs onnx")
        from coordinator.zoo.build import build_zoo

        building = root / f"{folder.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        build_zoo(
            ZooScale.TINY,
            building,
            seed=TINY_ZOO_SEED,
            train_steps=TINY_ZOO_TRAIN_STEPS,
            progress=lambda _line: None,
        )
        (building / KEY_FILE).write_text(key)
        shutil.rmtree(folder, ignore_errors=True)  # an invalid one: a build cut short
        building.rename(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_zoo() -> Path:
    """Folder of the tiny zoo (catalog.json + six ONNX files); read-only."""
    return build_tiny_zoo()


def tiny_bench(folder: Path, zoo: Path, **sections: Any) -> dict[str, Any]:
    """A testbed config (as a dict) of the small bench the training tests use: 3 agents,
    2 edges, 3 task types on the tiny zoo (linked as <folder>/zoo/tiny), 5-slot twin
    episodes; `sections` are added (e.g. train=…, run=…)."""
    (folder / "zoo").mkdir(exist_ok=True)
    if not (folder / "zoo" / "tiny").exists():
        os.symlink(zoo, folder / "zoo" / "tiny")
    return {
        "zoo": {"scale": "tiny", "dir": str(folder / "zoo")},
        "agents": {"count": 3},
        "edges": {"count": 2, "cache_capacity_mb": 8.0,
                  "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}]},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "twin": {"episode_slots": 5},
        **sections,
    }  # fmt: skip
