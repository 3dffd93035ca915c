"""Compute emulation: on one machine every node computes at the host's speed, so a
node configured slower than the host is stretched to its clock (links are paced the
same way, by testbed.links.Pacer). Real boards run with emulation off.
"""

from __future__ import annotations

import time

from testbed.config import EmulationConfig


def stretch_factor(node_ghz: float, cfg: EmulationConfig) -> float:
    """How much longer the node takes than the host: host_ghz / node_ghz, at least 1."""
    if not cfg.compute or node_ghz <= 0:
        return 1.0
    return max(1.0, cfg.host_ghz / node_ghz)


def stretch(measured_s: float, node_ghz: float, cfg: EmulationConfig) -> float:
    """Sleep so that work measured at `measured_s` on the host takes as long as on the
    node; returns the seconds slept (0 when the node is as fast as the host or faster)."""
    extra = measured_s * (stretch_factor(node_ghz, cfg) - 1.0)
    if extra > 0:
        time.sleep(extra)
    return extra
