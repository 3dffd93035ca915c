"""`tiny_quality_zoo`: the tiny quality zoo (digits-s/m/l and digits-eval, with its
gate), built once and cached across test sessions, as tests/zoo_fixtures.py caches the
IIoT zoo.

The zoo is built into `.zoo/quality-tiny-test-<key>`, where the key hashes the sources
that decide its bytes (coordinator/zoo and its quality package, testbed/zoo,
testbed/quality, testbed/config/quality.py) and the versions of torch, onnx, numpy and
scikit-learn; ≈ 30–60 s on 2 cores. Treat the folder as read-only: copy it
(`shutil.copytree`) to modify it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from testbed.config import ZooScale
from tests.zoo_fixtures import CACHE_ROOT, KEY_FILE, _is_valid, _locked, source_key

QUALITY_ZOO_SEED = 0
_SOURCES = ("coordinator/zoo", "coordinator/zoo/quality", "testbed/zoo", "testbed/quality")
_FILES = ("testbed/config/quality.py",)
_PACKAGES = ("torch", "onnx", "numpy", "scikit-learn")


def quality_source_key() -> str:
    """Hash of everything that decides the tiny quality zoo's bytes."""
    return source_key(f"quality/{QUALITY_ZOO_SEED}", _SOURCES, _FILES, _PACKAGES)


def build_tiny_quality_zoo(root: Path = CACHE_ROOT) -> Path:
    """The cached tiny quality zoo of the current sources under `root`, built if missing."""
    key = quality_source_key()
    folder = root / f"quality-tiny-test-{key[:16]}"
    with _locked(root / "quality-tiny-test.lock"):
        if _is_valid(folder, key):
            return folder
        for module in ("torch", "onnx", "sklearn"):
            pytest.importorskip(module, reason="building the quality zoo needs it")
        from coordinator.zoo.build import built_with, deterministic_torch
        from coordinator.zoo.quality.build import build_quality_zoo
        from testbed.zoo.catalog import Catalog

        building = root / f"{folder.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        with deterministic_torch():
            entries, _report = build_quality_zoo(
                ZooScale.TINY, building, QUALITY_ZOO_SEED, progress=lambda _line: None
            )
        Catalog(ZooScale.TINY, entries, built_with()).save(building)
        (building / KEY_FILE).write_text(key)
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_quality_zoo() -> Path:
    """Folder of the tiny quality zoo (catalog.json, four ONNX files, quality-gate.json)."""
    return build_tiny_quality_zoo()
