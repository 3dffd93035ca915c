"""The meter interface, spans, and the power poller the sampled meters share.

Every meter reports cumulative energy in joules since it was opened, labelled with
the `EnergyMethod` that produced it. A `Span` is the energy between two readings of
one meter; nodes wrap each part of a task in one (docs/energy.md).
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from testbed.config import MeterKind
from testbed.types import EnergyMethod, EnergyPart

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""A monotonic clock in seconds (e.g. `time.monotonic`)."""


class MeterError(Exception):
    """A meter that opened fine can no longer read (a sensor went away)."""


class MeterUnavailable(MeterError):
    """A meter cannot read on this host; `reason` says why, for the operator.

    `method` is the meter kind that was tried (the config's `energy.meter` value).
    """

    def __init__(self, method: MeterKind, reason: str) -> None:
        super().__init__(f"{method.value} energy meter unavailable: {reason}")
        self.method = method
        self.reason = reason


class Span:
    """The energy one meter counted between entering and leaving a `with` block.

    After the block, `part` is the `EnergyPart(part, energy_j, method)`, `energy_j`
    the joules and `seconds` the wall time (monotonic clock). The energy is recorded
    also when the block raises: the work consumed it either way.
    """

    __slots__ = ("_end_j", "_end_s", "_meter", "_name", "_start_j", "_start_s")

    def __init__(self, meter: EnergyMeter, part: str) -> None:
        self._meter = meter
        self._name = part
        self._start_j: float | None = None
        self._start_s = 0.0
        self._end_j: float | None = None
        self._end_s = 0.0

    def __enter__(self) -> Self:
        if self._start_j is not None:
            raise RuntimeError(f"span {self._name!r} was already entered")
        self._start_s = time.monotonic()
        self._start_j = self._meter.energy_j()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end_j = self._meter.energy_j()
        self._end_s = time.monotonic()

    @property
    def method(self) -> EnergyMethod:
        return self._meter.method

    @property
    def energy_j(self) -> float:
        """Joules counted inside the block (≥ 0)."""
        if self._start_j is None or self._end_j is None:
            raise RuntimeError(f"span {self._name!r} has not finished")
        return max(0.0, self._end_j - self._start_j)

    @property
    def seconds(self) -> float:
        """Wall seconds the block took."""
        if self._end_j is None:
            raise RuntimeError(f"span {self._name!r} has not finished")
        return self._end_s - self._start_s

    @property
    def part(self) -> EnergyPart:
        return EnergyPart(self._name, self.energy_j, self._meter.method)

    def __repr__(self) -> str:
        done = self._end_j is not None
        tail = f"{self.energy_j:.6g} J in {self.seconds:.6g} s" if done else "open"
        return f"Span({self._name!r}, {self._meter.method.value}, {tail})"


class EnergyMeter(abc.ABC):
    """Cumulative energy of one source, in joules since the meter was opened.

    Implementations are thread-safe and monotonic: several executor threads read
    one meter at once, and a later reading is never below an earlier one.
    """

    method: EnergyMethod

    @abc.abstractmethod
    def energy_j(self) -> float:
        """Joules since the meter was opened (monotonic, thread-safe).

        Raises `MeterError` when a meter that opened fine can no longer read.
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs and manifests: the method and what it covers."""

    def close(self) -> None:  # noqa: B027 - meters without resources need no close
        """Stop background threads and release the device (idempotent)."""

    def measure(self, part: str) -> Span:
        """A context manager measuring the energy of one part of a task."""
        return Span(self, part)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def modeled(part: str, power_w: float, seconds: float) -> EnergyPart:
    """Energy p·t in joules of a part no sensor sees (radio transmission), `modeled`.

    `power_w` in watts, `seconds` in seconds; both finite and ≥ 0.
    """
    for name, value in (("power_w", power_w), ("seconds", seconds)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and ≥ 0, got {value!r}")
    return EnergyPart(part, power_w * seconds, EnergyMethod.MODELED)


class Periodic:
    """Calls `fn` every `interval_s` seconds in a daemon thread until `stop()`.

    Exceptions from `fn` are logged and do not end the thread.
    """

    def __init__(self, fn: Callable[[], object], interval_s: float, name: str) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._fn = fn
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._fn()
            except Exception:
                log.exception("%s: periodic call failed", self._thread.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=max(1.0, 2 * self._interval_s))


class Poller:
    """Integrates a power source (watts) over time with the trapezoid rule.

    A daemon thread samples `read_power_w` every `interval_s` seconds; `energy_j()`
    also takes a sample, so a reading covers the time up to the call itself rather
    than up to the last tick. Samples are taken under one lock, so their times are
    ordered and the integral is monotonic (negative powers count as 0 W).

    A failed read holds the last good power and is logged; once reads have failed
    for longer than `stale_after_s` seconds, `energy_j()` raises `MeterError`
    instead of returning a figure nobody measured. The first read happens in the
    constructor and its exception propagates, so a source that cannot read at all
    never produces a meter.

    `clock` is injectable for tests; `start=False` runs no thread (tests call
    `sample()` themselves).
    """

    def __init__(
        self,
        read_power_w: Callable[[], float],
        interval_s: float,
        *,
        clock: Clock = time.monotonic,
        start: bool = True,
        stale_after_s: float = 1.0,
        name: str = "energy-poller",
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._read = read_power_w
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._stale_after_s = max(stale_after_s, 3 * interval_s)
        self._energy_j = 0.0
        self._last_w = max(0.0, float(read_power_w()))
        self._last_t = clock()
        self._good_t = self._last_t  # time of the last successful read
        self._failing = False
        self._last_error: BaseException | None = None
        self.samples = 1
        self.read_errors = 0
        self._ticker = Periodic(self.sample, interval_s, name) if start else None

    @property
    def last_power_w(self) -> float:
        """The most recent power sample in watts."""
        return self._last_w

    def sample(self) -> float:
        """Take one sample now and return the joules integrated so far."""
        return self._sample()[0]

    def _sample(self) -> tuple[float, float]:
        """(joules so far, seconds since the last successful read)."""
        with self._lock:
            try:
                power_w = max(0.0, float(self._read()))
            except Exception as exc:
                power_w = self._last_w  # hold: the best guess, and never a zero
                self.read_errors += 1
                self._last_error = exc
                if not self._failing:
                    self._failing = True
                    log.warning("%s: read failed (%s); holding %.3f W", self._name, exc, power_w)
                ok = False
            else:
                if self._failing:
                    self._failing = False
                    log.info("%s: reading again after %d errors", self._name, self.read_errors)
                ok = True
            now = self._clock()
            dt = now - self._last_t
            if dt > 0:
                self._energy_j += 0.5 * (self._last_w + power_w) * dt
                self._last_t = now
            self._last_w = power_w
            self.samples += 1
            if ok:
                self._good_t = now
            return self._energy_j, now - self._good_t

    def energy_j(self) -> float:
        """Joules integrated from the first sample up to now.

        Raises MeterError once reads have failed for more than `stale_after_s`.
        """
        energy, stale_s = self._sample()
        if stale_s > self._stale_after_s:
            raise MeterError(
                f"{self._name}: power unreadable for {stale_s:.1f} s: {self._last_error}"
            )
        return energy

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
