"""The board's own copy of the zoo: models for the local share of tasks.

A board holds the zoo it was deployed with (docs/zoo.md); models are loaded on
first use and kept, so local execution has no model-switch cost (as in the paper).
Before a model is loaded its file is checked against the catalog (size, then sha256),
as an edge checks what it fetches (edge_node/model_cache.py): a file corrupted on
the board fails the task's local share with `checksum_mismatch` and is never loaded;
the next task that needs the model checks the file again, so a repaired copy loads.
"""

from __future__ import annotations

import threading
from pathlib import Path

from testbed.runtime import LoadedModel, ModelRuntime
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import Catalog, ModelEntry, UnknownModel, file_sha256


def verify_model_file(path: Path, entry: ModelEntry) -> None:
    """Raise `TestbedError(CHECKSUM_MISMATCH)` if the file at `path` is not the one the
    catalog describes; a missing file is left to the runtime (`load_failed`)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size != entry.size_bytes:
        raise TestbedError(
            FailureReason.CHECKSUM_MISMATCH,
            f"{entry.id}: {path.name} is {size} bytes, the catalog says {entry.size_bytes}",
        )
    if file_sha256(path) != entry.sha256:
        detail = f"{entry.id}: {path.name}'s sha256 differs from the catalog's"
        raise TestbedError(FailureReason.CHECKSUM_MISMATCH, detail)


class LocalModels:
    def __init__(self, zoo_dir: Path, runtime: ModelRuntime) -> None:
        self.catalog = Catalog.load(zoo_dir)
        self.zoo_dir = zoo_dir
        self._runtime = runtime
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self.catalog.get(model_id)
        except UnknownModel as exc:
            raise TestbedError(FailureReason.MODEL_UNKNOWN, str(exc)) from None

    def get(self, model_id: str) -> LoadedModel:
        with self._lock:
            model = self._loaded.get(model_id)
            if model is None:
                entry = self.entry(model_id)
                path = entry.path(self.zoo_dir)
                verify_model_file(path, entry)
                model = self._runtime.load(path, entry)
                model.warmup()
                self._loaded[model_id] = model
            return model

    def close(self) -> None:
        with self._lock:
            for model in self._loaded.values():
                model.close()
            self._loaded.clear()
