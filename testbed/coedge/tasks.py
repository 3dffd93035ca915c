"""The tasks of one base station's slot on the live §B bench (docs/live-loop.md,
"Clocked slots and the §B scheduler"), as a pure function of (master seed, agent id,
slot): the board draws them, and the coordinator draws the very same ones to know
which tasks each board owes.

Each of `coedge.max_tasks` tasks arrives with probability `coedge.arrival_prob`; its
size D is uniform in `coedge.size_mbit` and its density C uniform in
`coedge.density_cycles_per_bit` (the twin's draws, coordinator/envs/coedge_twin.py);
its task type, and so its model, is uniform over the config's active task types (as
testbed/tasks.py picks them); its deadline is `coedge.deadline_s`.
"""

from __future__ import annotations

import numpy as np

from testbed.config import TestbedConfig
from testbed.tasks import Task, agent_seed_words

STREAM_TAG = 0xC0ED6E
"""Keys the §B draws apart from the MATO generator's (testbed/tasks.py), which uses
the same (seed, agent, slot) words."""


def slot_task_id(agent_id: str, slot: int, k: int) -> str:
    """`<agent id>/s<6-digit slot>/k<3-digit index>`: unique within a run."""
    return f"{agent_id}/s{slot:06d}/k{k:03d}"


def slot_tasks(cfg: TestbedConfig, seed: int, agent_id: str, slot: int) -> list[Task]:
    """The tasks arriving at `agent_id`'s base station in `slot` (≥ 0), in order.

    Four draws per possible task, whether it arrives or not, from a generator keyed by
    (seed, agent, slot) alone: the tasks of a slot do not depend on any other slot."""
    if slot < 0:
        raise ValueError(f"slot must be ≥ 0, got {slot}")
    coedge, types = cfg.coedge, cfg.tasks.active_types
    rng = np.random.default_rng([*agent_seed_words(seed, agent_id), slot, STREAM_TAG])
    draws = rng.random((coedge.max_tasks, 4))
    (d_lo, d_hi), (c_lo, c_hi) = coedge.size_mbit, coedge.density_cycles_per_bit
    tasks = []
    for k, (arrives, type_u, size_u, density_u) in enumerate(draws.tolist()):
        if arrives >= coedge.arrival_prob:
            continue
        ttype = types[min(int(type_u * len(types)), len(types) - 1)]
        tasks.append(
            Task(
                task_id=slot_task_id(agent_id, slot, k),
                agent_id=agent_id,
                slot=slot,
                task_type=ttype.name,
                model_id=ttype.model,
                size_mbit=float(d_lo + (d_hi - d_lo) * size_u),
                density_cycles_per_bit=float(c_lo + (c_hi - c_lo) * density_u),
                deadline_s=float(coedge.deadline_s),
                weight=float(ttype.weight),
                steps=ttype.steps,
            )
        )
    return tasks
