"""Task generation and the agent's FIFO queue."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from testbed.config import TaskTypeConfig
from testbed.tasks import Task, TaskGenerator, TaskQueue

TYPES = [
    TaskTypeConfig("health", "diffusion-s", (1.0, 3.0), 60.0, 2.0, 1.0, steps=8),
    TaskTypeConfig("process", "cgan-s", (0.5, 0.5), 40.0, 2.5, 1.5),
    TaskTypeConfig("safety", "ae-s", (2.0, 4.0), 30.0, 1.5, 1.2),
]


def draw(agent_id: str, slots: int, *, p: float = 0.7, seed: int = 3) -> list[Task | None]:
    gen = TaskGenerator(agent_id, TYPES, p, seed)
    return [gen.next(t) for t in range(slots)]


def test_same_seed_and_agent_give_the_same_tasks() -> None:
    assert draw("agent-3", 200) == draw("agent-3", 200)


def test_different_seed_or_agent_give_different_tasks() -> None:
    base = draw("agent-3", 100)
    assert draw("agent-3", 100, seed=4) != base
    assert draw("agent-4", 100) != base


def test_agents_are_independent_of_each_other() -> None:
    alone = draw("agent-1", 100)
    # interleave with other agents drawing, more of them and in another order
    gens = {a: TaskGenerator(a, TYPES, 0.7, 3) for a in ("agent-0", "agent-1", "agent-2")}
    crowd = []
    for t in range(100):
        for a in ("agent-2", "agent-0", "agent-1"):
            task = gens[a].next(t)
            if a == "agent-1":
                crowd.append(task)
    assert crowd == alone


def test_a_slot_draws_the_same_task_whatever_came_before() -> None:
    full = draw("agent-5", 50)
    gen = TaskGenerator("agent-5", TYPES, 0.7, 3)
    late = gen.next(40)  # an agent that restarts mid-run sees the same task in slot 40
    assert full[40] is not None and late is not None
    assert dataclasses.asdict(late) == dataclasses.asdict(full[40])


def test_stable_across_processes() -> None:
    # Python's str hash is salted per process; the generator must not depend on it
    code = (
        "from testbed.tasks import TaskGenerator; from testbed.config import TasksConfig;"
        "g = TaskGenerator('agent-9', TasksConfig().types, 1.0, 11);"
        "print(repr(g.next(0).size_mbit))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(salt)},
        ).stdout
        for salt in (1, 2)
    }
    assert len(outs) == 1


def test_arrival_probability() -> None:
    slots = 4000
    tasks = draw("agent-0", slots, p=0.3)
    rate = sum(t is not None for t in tasks) / slots
    # binomial: σ = √(0.3·0.7/4000) ≈ 0.0072; 5σ ≈ 0.036
    assert abs(rate - 0.3) < 0.036
    assert all(t is None for t in draw("agent-0", 100, p=0.0))
    assert all(t is not None for t in draw("agent-0", 100, p=1.0))


def test_types_uniform_and_ranges_respected() -> None:
    tasks = [t for t in draw("agent-0", 3000, p=1.0) if t is not None]
    by_type = {tt.name: tt for tt in TYPES}
    counts = {name: 0 for name in by_type}
    for task in tasks:
        tt = by_type[task.task_type]
        counts[tt.name] += 1
        lo, hi = tt.size_mbit
        assert lo <= task.size_mbit <= hi
        assert task.model_id == tt.model
        assert task.density_cycles_per_bit == tt.density_cycles_per_bit
        assert task.deadline_s == tt.deadline_s
        assert task.weight == tt.weight
        assert task.steps == tt.steps
    # each type ≈ 1000 of 3000 (σ ≈ 26)
    assert all(850 < n < 1150 for n in counts.values()), counts
    sizes = [t.size_mbit for t in tasks if t.task_type == "health"]
    assert min(sizes) < 1.1 and max(sizes) > 2.9  # the whole range is used


def test_task_ids_and_slots() -> None:
    gen = TaskGenerator("agent-3", TYPES, 1.0, 0)
    tasks = [gen.next(t) for t in range(3)]
    assert [t.task_id for t in tasks if t] == [
        "agent-3/s000000",
        "agent-3/s000001",
        "agent-3/s000002",
    ]
    assert [t.slot for t in tasks if t] == [0, 1, 2]
    assert all(t is not None and t.agent_id == "agent-3" for t in tasks)
    assert gen.generated == 3


def test_invalid_generator_arguments() -> None:
    with pytest.raises(ValueError):
        TaskGenerator("a", [], 0.5, 0)
    with pytest.raises(ValueError):
        TaskGenerator("a", TYPES, 1.5, 0)
    with pytest.raises(ValueError):
        TaskGenerator("a", TYPES, 0.5, 0).next(-1)


def test_queue_is_fifo_and_returns_the_overflowing_task() -> None:
    gen = TaskGenerator("agent-0", TYPES, 1.0, 0)
    tasks = [gen.next(t) for t in range(4)]
    queue = TaskQueue(capacity=3)
    results = [queue.push(t) for t in tasks if t is not None]
    assert results[:3] == [None, None, None]
    assert results[3] is tasks[3]  # rejected: handed back for its queue_full outcome
    assert len(queue) == 3 and queue.full
    assert queue.peek() is tasks[0]
    assert queue.pop() is tasks[0]
    assert queue.push(tasks[3]) is None  # room again
    assert queue.drain() == [tasks[1], tasks[2], tasks[3]]
    assert queue.pop() is None and len(queue) == 0
