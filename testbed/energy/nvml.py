"""NVIDIA GPU energy through NVML (`method: nvml_counter` or `nvml_power`).

Preferred: the GPU's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`,
millijoules since the driver loaded; Volta and later) → `nvml_counter`. Otherwise the
board power (`nvmlDeviceGetPowerUsage`, milliwatts) sampled every
`energy.poll_interval_ms` and integrated → `nvml_power`. Both cover the whole GPU
board, so every process on that GPU. On Ampere and later the power reading is itself
an average over about one second, so short spans are smoothed; the counter is not.

Jetson's NVML answers NOT_SUPPORTED to both; the meter is then unavailable and
automatic detection moves on to the Jetson rails.

`pynvml` (from the `nvidia-ml-py` package, the `gpu` extra) is imported only when an
NVML meter is opened.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import ModuleType
from typing import Any

from testbed.config import MeterKind
from testbed.energy.base import Clock, EnergyMeter, MeterError, MeterUnavailable, Poller
from testbed.types import EnergyMethod

# A module-wide lock around nvmlInit/nvmlShutdown: NVML counts them, and two meters
# opening and closing at once must not interleave the count.
_INIT_LOCK = threading.Lock()


def import_pynvml() -> ModuleType:
    """The `pynvml` module, or MeterUnavailable naming the package to install."""
    try:
        import pynvml
    except ImportError:
        raise MeterUnavailable(
            MeterKind.NVML,
            "the nvidia-ml-py package is not installed (pip install 'aigc-testbed[gpu]')",
        ) from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _not_supported(nvml: ModuleType, exc: Exception) -> bool:
    return getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED


class NvmlMeter(EnergyMeter):
    """Energy of one NVIDIA GPU (whole board, every process on it).

    `gpu_index` is NVML's index (which follows PCI bus order, not necessarily
    CUDA_VISIBLE_DEVICES). `interval_s` is the power polling period when there is no
    counter. `prefer_counter=False` forces power polling (for comparisons and tests).
    """

    def __init__(
        self,
        gpu_index: int = 0,
        interval_s: float = 0.02,
        *,
        prefer_counter: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self._nvml = nvml = import_pynvml()
        self.gpu_index = gpu_index
        self.interval_s = interval_s
        self._poller: Poller | None = None
        self._open = False
        with _INIT_LOCK:
            try:
                nvml.nvmlInit()
            except nvml.NVMLError as exc:
                raise MeterUnavailable(
                    MeterKind.NVML, f"NVML did not start: {exc} (no NVIDIA driver or GPU?)"
                ) from None
            self._open = True
        try:
            self._setup(prefer_counter, clock)
        except BaseException:
            self.close()
            raise

    def _setup(self, prefer_counter: bool, clock: Clock) -> None:
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            if not 0 <= self.gpu_index < count:
                raise MeterUnavailable(
                    MeterKind.NVML, f"no GPU with index {self.gpu_index} (NVML sees {count})"
                )
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
            self.gpu_name = _text(nvml.nvmlDeviceGetName(self._handle))
        except nvml.NVMLError as exc:
            raise MeterUnavailable(MeterKind.NVML, f"GPU {self.gpu_index}: {exc}") from None
        where = f"GPU {self.gpu_index} ({self.gpu_name})"
        if prefer_counter:
            try:
                self._start_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            except nvml.NVMLError as exc:
                if not _not_supported(nvml, exc):
                    raise MeterUnavailable(MeterKind.NVML, f"{where}: {exc}") from None
            else:
                self.method = EnergyMethod.NVML_COUNTER
                return
        try:
            self._poller = Poller(
                self._read_power_w, self.interval_s, clock=clock, name="nvml-power"
            )
        except nvml.NVMLError as exc:
            reason = (
                "supports neither the energy counter nor power readings (as on Jetson)"
                if _not_supported(nvml, exc)
                else str(exc)
            )
            raise MeterUnavailable(MeterKind.NVML, f"{where} {reason}") from None
        self.method = EnergyMethod.NVML_POWER

    def _read_power_w(self) -> float:
        return int(self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1e3

    def energy_j(self) -> float:
        if self._poller is not None:
            return self._poller.energy_j()
        try:
            now_mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError as exc:
            raise MeterError(f"nvml: GPU {self.gpu_index}: {exc}") from exc
        return max(0, now_mj - self._start_mj) / 1e3

    def describe(self) -> str:
        if self.method is EnergyMethod.NVML_COUNTER:
            how = "total-energy counter"
        else:
            how = f"power polled every {self.interval_s * 1e3:g} ms"
        return f"{self.method.value}: GPU {self.gpu_index} ({self.gpu_name}), {how}"

    def close(self) -> None:
        if self._poller is not None:
            self._poller.close()
        with _INIT_LOCK:
            if self._open:
                self._open = False
                with contextlib.suppress(self._nvml.NVMLError):
                    self._nvml.nvmlShutdown()
