"""The baselines of docs/papers.md §A, vectorised over the twin's environments and agents.

Each acts on the twin's state (tasks, caches) and returns action arrays (E, N, M + 3)
in the layout of testbed/observation.py, deciding as the board's heuristic of the same
name does (testbed/policies/heuristics.py): Local (everything on the board), Offload
(the nearest live edge, x = 1, d = 1), Greedy (the nearest live edge holding the task's
model, all of the task, d = 0; none: local) and Random (a target or none and a ratio
uniformly, d = 1). Every edge of the twin is alive. Actions are float64, so a ratio
reaches the twin as exactly as a board's heuristic uses it.

`RandomHeuristic(crn=True)` draws from the very generators the boards use (seeded by
master seed and agent id, testbed/policies and agent_node/agent.py), in the same order,
so a twin evaluation with CRN tasks makes the live run's random decisions.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from coordinator.envs.twin import TwinEnv
from testbed.policies import HEURISTICS, PolicyKind
from testbed.tasks import agent_seed_words

Array = np.ndarray[Any, Any]


class VecPolicy(Protocol):
    kind: PolicyKind

    def act(self, env: TwinEnv) -> Array:
        """Actions (E, N, M + 3) for the tasks the twin's agents hold now."""
        ...


def encode_actions(num_edges: int, target: Any, ratio: Any, download: Any) -> Array:
    """Action vectors (…, M + 3), float64: a one-hot target (index 0: none), x, d.

    Like testbed.observation.encode: a target of none or a ratio ≤ 0 is local only."""
    target = np.asarray(target)
    ratio = np.asarray(ratio, dtype=np.float64)
    local = (target < 0) | (ratio <= 0)
    target = np.where(local, -1, target)
    ratio = np.where(local, 0.0, ratio)
    raw = np.zeros((*target.shape, num_edges + 3), dtype=np.float64)
    np.put_along_axis(raw, (target + 1)[..., None], 1.0, axis=-1)
    raw[..., num_edges + 1] = ratio
    raw[..., num_edges + 2] = np.asarray(download, dtype=np.float64)
    return raw


class LocalHeuristic:
    kind = PolicyKind.LOCAL

    def act(self, env: TwinEnv) -> Array:
        shape = env.has_task.shape
        return encode_actions(env.params.num_edges, np.full(shape, -1), np.zeros(shape), False)


class OffloadHeuristic:
    kind = PolicyKind.OFFLOAD

    def act(self, env: TwinEnv) -> Array:
        p = env.params
        shape = env.has_task.shape
        if p.num_edges == 0:
            return LocalHeuristic().act(env)
        nearest = np.broadcast_to(np.argmin(p.distance_m, axis=1), shape)
        return encode_actions(p.num_edges, nearest, np.ones(shape), True)


class GreedyHeuristic:
    kind = PolicyKind.GREEDY

    def act(self, env: TwinEnv) -> Array:
        p = env.params
        shape = env.has_task.shape
        if p.num_edges == 0:
            return LocalHeuristic().act(env)
        model = env.task_model  # (E, N)
        # holds[e, n, j]: edge j holds agent n's task model
        holds = np.take_along_axis(
            env.cached[:, None, :, :],
            np.broadcast_to(model[:, :, None, None], (*shape, p.num_edges, 1)),
            axis=-1,
        )[..., 0]
        dist = np.where(holds, p.distance_m[None, :, :], np.inf)
        target = np.where(holds.any(axis=-1), np.argmin(dist, axis=-1), -1)
        return encode_actions(p.num_edges, target, np.where(target >= 0, 1.0, 0.0), False)


class RandomHeuristic:
    """Uniform target in {none, 0 … M−1} and ratio in [0, 1), d = 1.

    `crn=False`: one numpy generator (`seed`). `crn=True`: per environment e and agent,
    the board's generator for master seed `seed + e`, drawn once per task served."""

    kind = PolicyKind.RANDOM

    def __init__(self, seed: int = 0, *, crn: bool = False) -> None:
        self.seed = seed
        self.crn = crn
        self._rng = np.random.default_rng(seed)
        self._boards: dict[tuple[int, str], np.random.Generator] = {}

    def act(self, env: TwinEnv) -> Array:
        m = env.params.num_edges
        shape = env.has_task.shape
        if not self.crn:
            target = self._rng.integers(-1, m, size=shape)
            ratio = self._rng.uniform(0.0, 1.0, size=shape)
            return encode_actions(m, target, ratio, True)
        target = np.full(shape, -1)
        ratio = np.zeros(shape)
        for e, n in zip(*np.nonzero(env.has_task), strict=True):
            rng = self._board_rng(int(e), env.agent_ids[n])
            target[e, n] = int(rng.integers(-1, m))
            ratio[e, n] = float(rng.uniform(0.0, 1.0))
        return encode_actions(m, target, ratio, True)

    def _board_rng(self, env_index: int, agent_id: str) -> np.random.Generator:
        key = (env_index, agent_id)
        if key not in self._boards:
            words = agent_seed_words(self.seed + env_index, agent_id)
            self._boards[key] = np.random.default_rng([*words, 7])  # as agent_node/agent.py
        return self._boards[key]


def make_heuristic(kind: PolicyKind | str, *, seed: int = 0, crn: bool = False) -> VecPolicy:
    """A vectorised heuristic by name (one of `testbed.policies.HEURISTICS`)."""
    kind = PolicyKind(kind)
    if kind not in HEURISTICS:
        raise ValueError(f"{kind.value} is not a heuristic ({', '.join(HEURISTICS)})")
    if kind is PolicyKind.RANDOM:
        return RandomHeuristic(seed, crn=crn)
    policies: dict[PolicyKind, type[LocalHeuristic | OffloadHeuristic | GreedyHeuristic]] = {
        PolicyKind.LOCAL: LocalHeuristic,
        PolicyKind.OFFLOAD: OffloadHeuristic,
        PolicyKind.GREEDY: GreedyHeuristic,
    }
    return policies[kind]()
