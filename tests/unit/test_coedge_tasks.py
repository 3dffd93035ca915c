"""The tasks of a §B base station's slot on the live bench (testbed/coedge/tasks.py):
a pure function of (seed, agent, slot), with the config's arrival law and ranges."""

from __future__ import annotations

import numpy as np
from scipy import stats

from testbed.coedge.tasks import slot_task_id, slot_tasks
from testbed.config import config_from_dict

CFG = config_from_dict(
    {
        "coedge": {"max_tasks": 8, "arrival_prob": 0.3, "size_mbit": [2.0, 5.0],
                   "density_cycles_per_bit": [100.0, 300.0], "deadline_s": 0.7},
        "tasks": {"num_types": 3},
    }
)  # fmt: skip


def test_the_tasks_of_a_slot_depend_only_on_seed_agent_and_slot() -> None:
    first = slot_tasks(CFG, 7, "agent-1", 12)
    # asking about other slots and agents in between changes nothing
    for slot in range(30):
        slot_tasks(CFG, 7, "agent-2", slot)
    assert slot_tasks(CFG, 7, "agent-1", 12) == first
    other_seed = [slot_tasks(CFG, 8, "agent-1", s) for s in range(20)]
    same_seed = [slot_tasks(CFG, 7, "agent-1", s) for s in range(20)]
    assert other_seed != same_seed
    assert slot_tasks(CFG, 7, "agent-2", 12) != first or not first


def test_arrival_counts_are_binomial_and_draws_lie_in_their_ranges() -> None:
    counts, sizes, densities, types = [], [], [], set()
    for slot in range(3000):
        tasks = slot_tasks(CFG, 3, "agent-0", slot)
        counts.append(len(tasks))
        for t in tasks:
            sizes.append(t.size_mbit)
            densities.append(t.density_cycles_per_bit)
            types.add((t.task_type, t.model_id))
            assert t.deadline_s == 0.7 and t.slot == slot and t.agent_id == "agent-0"
    observed = np.bincount(counts, minlength=9)
    expected = stats.binom.pmf(np.arange(9), 8, 0.3) * len(counts)
    keep = expected > 5  # chi-square needs enough per cell
    rest = observed[~keep].sum(), expected[~keep].sum()
    chi = stats.chisquare(
        [*observed[keep], rest[0]], [*expected[keep], rest[1]]
    )  # fmt: skip
    assert chi.pvalue > 1e-3, (observed, expected.round(1))
    assert min(sizes) >= 2.0 and max(sizes) <= 5.0 and abs(np.mean(sizes) - 3.5) < 0.05
    assert min(densities) >= 100.0 and max(densities) <= 300.0
    assert types == {(t.name, t.model) for t in CFG.tasks.active_types}


def test_task_ids_are_unique_and_name_agent_slot_and_index() -> None:
    ids = [t.task_id for a in ("agent-0", "agent-1") for s in range(200)
           for t in slot_tasks(CFG, 0, a, s)]  # fmt: skip
    assert len(ids) == len(set(ids)) > 0
    assert slot_task_id("agent-3", 42, 7) == "agent-3/s000042/k007"
    every = config_from_dict({"coedge": {"max_tasks": 5, "arrival_prob": 1.0}})
    assert [t.task_id for t in slot_tasks(every, 0, "agent-0", 1)] == [
        f"agent-0/s000001/k{k:03d}" for k in range(5)
    ]
