"""The model runtime of edges and agents: ONNX Runtime sessions that do a task's work.

`ModelRuntime` picks the execution provider once (TensorRT, CUDA or CPU); `load` opens
a zoo model as a `LoadedModel`, whose `run(units, steps, data)` generates `units`
samples from the task's payload in batches of at most `max_batch` and returns what it
did, how long it took and a digest of everything it produced (docs/workload.md).

ONNX Runtime is imported when a runtime is created, so `testbed` imports without it
(the coordinator does not need it, boards bring their own build).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from testbed.config import RuntimeKind
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import ModelEntry, ModelFamily
from testbed.zoo.drivers import (
    Payload,
    RunState,
    make_driver,
    noise_generator,
    values_per_sample,
)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
TRT_CACHE_DIR = "trt-cache"
"""Folder beside a model file where TensorRT keeps the engines it built (minutes each)."""


class RuntimeUnavailable(RuntimeError):
    """ONNX Runtime, or the execution provider asked for, is not installed here."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one `LoadedModel.run` did."""

    units_done: int
    """Samples generated (the task share's units)."""
    invocations: int
    """Model invocations (ONNX Runtime `run` calls): batches × steps for diffusion."""
    output_sha256: bytes
    """SHA-256 over every output produced, in order (32 bytes)."""
    compute_s: float
    """Wall-clock seconds of the whole run: inputs, invocations, sampler arithmetic."""
    outputs: bytes = b""
    """The bytes `output_sha256` hashes, when `run` was asked to keep them and they fit."""


class _KeptDigest:
    """The run's SHA-256 that also keeps what it hashes, up to `limit` bytes (beyond
    it nothing is kept: a result carries all of its outputs or none)."""

    def __init__(self, limit: int) -> None:
        self.sha = hashlib.sha256()
        self.limit = limit
        self.parts: list[bytes] | None = []
        self.size = 0

    def update(self, data: Any, /) -> None:
        self.sha.update(data)
        if self.parts is None:
            return
        raw = np.ascontiguousarray(data).tobytes()
        self.size += len(raw)
        if self.size > self.limit:
            self.parts = None
        else:
            self.parts.append(raw)

    def digest(self) -> bytes:
        return self.sha.digest()

    def outputs(self) -> bytes:
        return b"".join(self.parts) if self.parts else b""


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeUnavailable(
            "onnxruntime is not installed: pip install 'aigc-testbed[cpu]' "
            "(or [gpu] on CUDA machines; JetPack's wheel on Jetson boards)"
        ) from None
    return onnxruntime


def choose_providers(kind: RuntimeKind, available: list[str]) -> list[str]:
    """Execution providers for `kind`, best first, given ONNX Runtime's `available` list.

    AUTO takes TensorRT if present, else CUDA, else CPU; CPU is always the last
    fallback. Raises `RuntimeUnavailable` if CUDA or TensorRT is asked for and absent.
    """
    wanted = {
        RuntimeKind.CPU: [CPU_PROVIDER],
        RuntimeKind.CUDA: [CUDA_PROVIDER, CPU_PROVIDER],
        RuntimeKind.TENSORRT: [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER],
        RuntimeKind.AUTO: [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER],
    }[kind]
    if kind in (RuntimeKind.CUDA, RuntimeKind.TENSORRT) and wanted[0] not in available:
        raise RuntimeUnavailable(
            f"runtime {kind.value!r} needs {wanted[0]}, but this ONNX Runtime has only "
            f"{', '.join(available)} (install onnxruntime-gpu / TensorRT, or use 'cpu')"
        )
    return [p for p in wanted if p in available or p == CPU_PROVIDER]


class ModelRuntime:
    """Loads models on one execution provider with fixed session options."""

    def __init__(self, kind: RuntimeKind = RuntimeKind.AUTO, intra_op_threads: int = 1) -> None:
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be ≥ 1, got {intra_op_threads}")
        self._ort = _import_ort()
        self.kind = kind
        self.intra_op_threads = intra_op_threads
        self.providers = choose_providers(kind, list(self._ort.get_available_providers()))
        self.provider: str = self.providers[0]
        """The execution provider models run on (fallbacks follow it in `providers`)."""

    def _session_options(self) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT warns about provider fallbacks
        return options

    def _provider_options(self, path: Path) -> list[tuple[str, dict[str, str]]]:
        out = []
        for name in self.providers:
            opts: dict[str, str] = {}
            if name == TENSORRT_PROVIDER:
                opts = {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(path.parent / TRT_CACHE_DIR),
                }
            out.append((name, opts))
        return out

    def load(self, path: Path, entry: ModelEntry) -> LoadedModel:
        """Open the model file `path` described by `entry`.

        Raises `TestbedError(FailureReason.LOAD_FAILED)` if the file is missing, is not
        a valid ONNX model, or does not have the inputs the catalog says it has.
        """
        path = Path(path)
        if not path.is_file():
            raise TestbedError(FailureReason.LOAD_FAILED, f"{entry.id}: no model file at {path}")
        try:
            session = self._ort.InferenceSession(
                str(path),
                sess_options=self._session_options(),
                providers=self._provider_options(path),
            )
        except Exception as exc:  # ORT raises its own (pybind) exception types
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TestbedError(
                FailureReason.LOAD_FAILED, f"{entry.id}: cannot load {path.name}: {detail}"
            ) from None
        have = {i.name for i in session.get_inputs()}
        want = {s.name for s in entry.inputs}
        if have != want:
            raise TestbedError(
                FailureReason.LOAD_FAILED,
                f"{entry.id}: inputs {sorted(have)} do not match the catalog's {sorted(want)}",
            )
        try:
            return LoadedModel(entry, session, path)
        except ValueError as exc:  # a signature the model's driver cannot fill
            raise TestbedError(FailureReason.LOAD_FAILED, f"{entry.id}: {exc}") from None


class LoadedModel:
    """A model ready to run on its runtime's provider; `run` may be called from several
    threads at once (ONNX Runtime sessions are thread-safe, a run's state is its own)."""

    def __init__(self, entry: ModelEntry, session: Any, path: Path) -> None:
        """Wrap an open session; `ValueError` if its inputs lack sizes the driver needs."""
        self.entry = entry
        self.path = path
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        self._per_sample = values_per_sample(entry)
        self._driver = make_driver(entry, self._call)
        self._diffusion = entry.family is ModelFamily.DIFFUSION
        self.provider: str = session.get_providers()[0]
        """The provider the session really got (ORT may fall back to a later one)."""

    def _call(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self._output_names, feeds)  # type: ignore[no-any-return]

    def warmup(self) -> None:
        """One small inference (one sample, one step): allocates buffers, builds kernels."""
        self.run(units=1, steps=1, data=b"", max_batch=1)

    def run(
        self,
        units: int,
        steps: int | None,
        data: bytes,
        max_batch: int = 32,
        should_stop: Callable[[], bool] | None = None,
        keep_output_bytes: int = 0,
    ) -> RunResult:
        """Generate `units` samples from `data` in batches of at most `max_batch`.

        `steps` is the number of denoising steps per sample of a diffusion model (None:
        the model's default) and is ignored for the other families. `should_stop` is
        asked before each batch; when it says so the run ends there with
        `TestbedError(CANCELLED)` (an edge whose caller has gone frees its slot). Raises
        `TestbedError(INVALID_REQUEST)` on bad arguments and `TestbedError(INTERNAL)`
        if ONNX Runtime fails or the model was closed. `keep_output_bytes` > 0: the
        result also carries the outputs if they take at most that many bytes.
        """
        if self._session is None:
            raise TestbedError(FailureReason.INTERNAL, f"{self.entry.id}: model is closed")
        if units < 0 or max_batch < 1 or (steps is not None and steps < 1):
            raise TestbedError(
                FailureReason.INVALID_REQUEST,
                f"expected units ≥ 0, steps ≥ 1, max_batch ≥ 1; got {units}, {steps}, {max_batch}",
            )
        if not self._diffusion:
            steps = 1
        elif steps is None:
            steps = self.entry.default_steps
        start = time.perf_counter()
        digest = _KeptDigest(keep_output_bytes) if keep_output_bytes > 0 else hashlib.sha256()
        invocations = 0
        if units:
            batch_cap = min(max_batch, units)
            payload = Payload(data, units, self._per_sample, batch_cap)
            run = RunState(payload, digest, noise_generator(payload.seed))
            try:
                for first in range(0, units, batch_cap):
                    if should_stop is not None and should_stop():
                        raise TestbedError(
                            FailureReason.CANCELLED,
                            f"{self.entry.id}: stopped after {first} of {units} units",
                        )
                    size = min(batch_cap, units - first)
                    invocations += self._driver.run_batch(run, first, size, steps)
            except TestbedError:
                raise
            except Exception as exc:  # ORT raises its own (pybind) exception types
                raise TestbedError(
                    FailureReason.INTERNAL, f"{self.entry.id}: inference failed: {exc}"
                ) from None
        elapsed = time.perf_counter() - start
        kept = digest.outputs() if isinstance(digest, _KeptDigest) else b""
        return RunResult(units, invocations, digest.digest(), elapsed, kept)

    def close(self) -> None:
        """Release the session (and its memory); `run` fails afterwards."""
        self._session = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
