"""An ESTIMATE of this process's energy from its CPU time (`method: estimated`).

No sensor is read. For hosts without one (CI, laptops, VMs):

    energy_j = idle_w · wall_s + active_w_per_core · cpu_s

with `wall_s` the seconds since the meter was opened, `cpu_s` the CPU seconds this
process spent since then (user + system, all its threads, from
`time.process_time()`, which has nanosecond resolution where `os.times()` counts
10 ms ticks), and the two powers from the node's `energy.power.idle_w` and
`energy.power.active_w_per_core`. Child processes and other processes on the host
are not counted. The figure is only as good as the configured power model:
reports label it `estimated` and must not mix it with measured figures unmarked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from testbed.config import PowerModelConfig
from testbed.energy.base import Clock, EnergyMeter
from testbed.types import EnergyMethod


class EstimatedMeter(EnergyMeter):
    """Energy of this process from wall time and CPU time × a power model (an estimate).

    `clock` (wall seconds) and `cpu_clock` (process CPU seconds) are injectable for
    tests. Thread-safe: it keeps no state beyond the two starting readings.
    """

    method = EnergyMethod.ESTIMATED

    def __init__(
        self,
        power: PowerModelConfig,
        *,
        clock: Clock = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.idle_w = power.idle_w
        self.active_w_per_core = power.active_w_per_core
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._start_wall_s = clock()
        self._start_cpu_s = cpu_clock()

    def energy_j(self) -> float:
        wall_s = max(0.0, self._clock() - self._start_wall_s)
        cpu_s = max(0.0, self._cpu_clock() - self._start_cpu_s)
        return self.idle_w * wall_s + self.active_w_per_core * cpu_s

    def describe(self) -> str:
        return (
            f"estimated: {self.idle_w:g} W idle × wall time + {self.active_w_per_core:g} W "
            f"per busy core × CPU time of process {os.getpid()} (a model, not a measurement)"
        )
