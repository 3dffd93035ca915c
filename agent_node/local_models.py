"""The board's own copy of the zoo: models for the local share of tasks.

A board holds the zoo it was deployed with (docs/zoo.md); models are loaded on
first use and kept, so local execution has no model-switch cost (as in the paper).
"""

from __future__ import annotations

import threading
from pathlib import Path

from testbed.runtime import LoadedModel, ModelRuntime
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import Catalog, ModelEntry, UnknownModel


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
                model = self._runtime.load(entry.path(self.zoo_dir), entry)
                model.warmup()
                self._loaded[model_id] = model
            return model

    def close(self) -> None:
        with self._lock:
            for model in self._loaded.values():
                model.close()
            self._loaded.clear()
