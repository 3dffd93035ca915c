"""The twin's model of contention for one host's cores (docs/twin.md, "Contention on a
shared host").

On the embedded bench every board and edge is a process of the one host the bench was
calibrated on, so a unit of work costs more the more computations run beside it. A
slot's CPU demand is the cores its computations ask for at once: each task with a local
share 1 / its board's emulation stretch (a board slower than the host sleeps the rest,
testbed/emulation.py), each edge with work 1 / its own stretch. Its slowdown is
max(1, (demand + background) / cores) with the host's cores and background load as the
calibration recorded them (coordinator/calibration/contention.py). The calibrated
per-unit figures hold the calibration run's mean slowdown, so a slot's local and edge
prices are the figures × (the slot's slowdown / the run's).

Vectorised over the environments: one (E, N, M) comparison and two sums per slot.
With `twin.shared_host: processor_sharing` the slot-level count gives way to each
computation's own overlap (twin_ps.py), from figures the fit de-contended the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coordinator.calibration_file import Calibration
from coordinator.envs.twin_ps import CoreShare
from testbed.config import TestbedConfig
from testbed.config.runs import SharedHost
from testbed.emulation import stretch_factor

Array = np.ndarray[Any, Any]


@dataclass(frozen=True, eq=False)
class HostSharing:
    """A calibrated host's contention, resolved for a bench's agents and edges."""

    agent_demand: Array
    """(N,) cores a board's local share asks for (1 / its emulation stretch)."""
    edge_demand: Array
    """(M,) cores an edge with work asks for."""
    cores: float
    background: float
    local_slowdown: float
    """The slowdown the calibrated local figures hold (the `local` run's mean)."""
    edge_slowdown: float
    """The slowdown the calibrated edge figures hold (the `offload` run's mean)."""
    local_wall_share: float
    """The share of a local unit's energy drawn over wall time (grows with the slowdown)."""
    edge_wall_share: float
    processor_sharing: bool = False
    """Price each computation by what overlaps it within the slot (twin_ps.py), not
    the slot by a count of its computations."""
    host: CoreShare = field(default_factory=lambda: CoreShare(1.0, 0.0, 0.0))
    """The cores, background and a switch's load the lanes share (processor sharing)."""
    local_ps_slowdown: float = 1.0
    """Processor sharing: the slowdown the calibrated local figures hold."""
    edge_ps_slowdown: float = 1.0

    def factors(self, local: Array, target: Array) -> tuple[Array, Array]:
        """(E, 1) each slot's time factors for local and edge units, from which of its
        (E, N) tasks have a local share (`local`) and the edge each offloads to
        (`target`, −1: none)."""
        edges = np.arange(self.edge_demand.shape[0])
        busy = (target[:, :, None] == edges).any(axis=1)
        demand = local @ self.agent_demand + busy @ self.edge_demand
        slowdown = np.maximum(1.0, (demand + self.background) / self.cores)[:, None]
        return slowdown / self.local_slowdown, slowdown / self.edge_slowdown

    def energy_factors(self, f_local: Array, f_edge: Array) -> tuple[Array, Array]:
        """The energy factors of `factors`' time factors: only the wall-time share grows."""
        local, edge = self.local_wall_share, self.edge_wall_share
        return 1.0 + local * (f_local - 1.0), 1.0 + edge * (f_edge - 1.0)


def host_sharing(
    cfg: TestbedConfig, calibration: Calibration | None, agent_ghz: Array, edge_ghz: Array
) -> tuple[HostSharing | None, list[str]]:
    """The bench's `HostSharing` where `twin.shared_host` applies to it and the
    calibration recorded its host's contention (else None), and notes saying why not."""
    if calibration is None or not cfg.twin.host_shared(cfg.inventory.remote):
        return None, []
    c = calibration.contention
    if c is None:
        return None, [
            "twin.shared_host is on but the calibration did not record the host's "
            "contention (calibrate again): one price per unit whatever the slot's mix"
        ]
    emu = cfg.emulation
    ps = cfg.twin.shared_host is SharedHost.PROCESSOR_SHARING
    if ps and (c.local_ps_slowdown is None or c.edge_ps_slowdown is None):
        return None, [
            "twin.shared_host is processor_sharing but the calibration has no processor-"
            "sharing fit (`testbed calibrate --from RUN --refit`): one price per unit"
        ]
    return HostSharing(
        agent_demand=np.array([1.0 / stretch_factor(float(f), emu) for f in agent_ghz]),
        edge_demand=np.array([1.0 / stretch_factor(float(f), emu) for f in edge_ghz]),
        cores=float(c.host_cores),
        background=c.background_load,
        local_slowdown=c.local_slowdown,
        edge_slowdown=c.edge_slowdown,
        local_wall_share=c.local_wall_share,
        edge_wall_share=c.edge_wall_share,
        processor_sharing=ps,
        host=CoreShare(float(c.host_cores), c.background_load, c.fetch_cores),
        local_ps_slowdown=c.local_ps_slowdown or 1.0,
        edge_ps_slowdown=c.edge_ps_slowdown or 1.0,
    ), []
