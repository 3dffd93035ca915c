"""A §B scheduler's observation of one task on the live bench: exactly the twin's
features (coordinator/envs/coedge_twin.py `CoedgeTwin.observe`), so an actor trained
in the twin sees on the board what it saw there.

For the scheduler of station b over B edges, 3B + 3 float32: the task's D / D_max and
D·C / (D·C)_max, every edge's queued work in slots (its queue seconds / Δ), the
station's own links' transfer backlogs in slots, the station one-hot, and the tasks it
has left in the slot (this one included) over `coedge.max_tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from testbed.config.coedge import CoedgeConfig

Array = np.ndarray[Any, Any]


def obs_dim(num_stations: int) -> int:
    """Features per observation over `num_stations` edges (the twin's `obs_dim`)."""
    return 3 * num_stations + 3


def task_observation(
    cfg: CoedgeConfig,
    *,
    size_mbit: float,
    density_cycles_per_bit: float,
    queue_s: Sequence[float] | Array,
    link_s: Sequence[float] | Array,
    station: int,
    tasks_left: int,
) -> Array:
    """(3B + 3,) float32 for station `station`'s task of D = `size_mbit`, C =
    `density_cycles_per_bit`; `queue_s` (B,) each edge's queued work in seconds,
    `link_s` (B,) this station's link backlogs in seconds, `tasks_left` this task and
    those after it in the slot."""
    queue = np.asarray(queue_s, dtype=np.float64)
    links = np.asarray(link_s, dtype=np.float64)
    b = queue.shape[0]
    if links.shape != (b,) or not 0 <= station < b:
        raise ValueError(f"expected {b} link backlogs and a station in [0, {b}), got "
                         f"{links.shape} and {station}")  # fmt: skip
    size_max = cfg.size_mbit[1]
    cycles_max_g = size_max * cfg.density_cycles_per_bit[1] / 1e3
    cycles_g = size_mbit * density_cycles_per_bit / 1e3
    obs = np.empty(obs_dim(b), dtype=np.float32)
    obs[0] = size_mbit / size_max
    obs[1] = cycles_g / cycles_max_g
    obs[2 : 2 + b] = queue / cfg.slot_s
    obs[2 + b : 2 + 2 * b] = links / cfg.slot_s
    obs[2 + 2 * b : 2 + 3 * b] = np.eye(b, dtype=np.float32)[station]
    obs[2 + 3 * b] = max(tasks_left, 0) / cfg.max_tasks
    return obs
