"""The board's own zoo (agent_node/local_models.py): a model file is checked against the
catalog before it is loaded, as an edge checks what it fetches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent_node.local_models import LocalModels
from testbed.runtime import ModelRuntime
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import Catalog


def test_a_corrupted_file_is_never_loaded_and_a_repaired_one_is(
    tiny_zoo: Path, tmp_path: Path
) -> None:
    zoo = tmp_path / "tiny"
    shutil.copytree(tiny_zoo, zoo)
    path = Catalog.load(zoo).get("cgan-s").path(zoo)
    clean = path.read_bytes()
    flipped = bytearray(clean)
    flipped[len(clean) // 2] ^= 0x01
    models = LocalModels(zoo, ModelRuntime())
    try:
        for corrupted, says in ((bytes(flipped), "sha256"), (clean[:-1], "bytes")):
            path.write_bytes(corrupted)
            with pytest.raises(TestbedError) as caught:
                models.get("cgan-s")
            assert caught.value.reason is FailureReason.CHECKSUM_MISMATCH
            assert says in caught.value.detail
        path.write_bytes(clean)
        model = models.get("cgan-s")
        assert models.get("cgan-s") is model  # loaded once, then kept
    finally:
        models.close()


def test_a_missing_file_fails_to_load(tiny_zoo: Path, tmp_path: Path) -> None:
    zoo = tmp_path / "tiny"
    shutil.copytree(tiny_zoo, zoo)
    Catalog.load(zoo).get("ae-s").path(zoo).unlink()
    models = LocalModels(zoo, ModelRuntime())
    with pytest.raises(TestbedError) as caught:
        models.get("ae-s")
    assert caught.value.reason is FailureReason.LOAD_FAILED
