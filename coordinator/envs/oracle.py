"""The per-slot oracle: the best joint decision of a slot in the twin, by exhaustive
search on small benches and by an exact programme beyond them.

For small instances (a few agents) every agent's decision is drawn from a grid — run
locally, or offload a share in `ratios` to edge j with d ∈ {0, 1} (d only where the
policy space has a download flag) — and every joint decision of the slot's agents is
served at once by a twin of K environments holding copies of the slot's state (caches,
LRU order, tasks). The joint decision with the largest total reward (18) is the slot's
optimum over that grid: the best achievable cost of the slot, against which a policy's
optimality gap is measured (docs/twin.md). It is myopic — it does not trade this slot's
cost for a better cache later — and its ratios are discrete, so a policy with a
continuous ratio or foresight can come out slightly ahead; the report shows the sign.

Agents without a task have one option; the joint space is the product of the others'
options and must stay ≤ `max_joint` (default 500,000).

Beyond that — the paper's 10 devices and more — the same optimum over the same grid
comes from coordinator/envs/slot_optimum.py: per-edge dynamic programmes over the FIFO,
joined over the split of the agents among the edges, exact for one-server edges
(`parallel_slots: 1`, the default; docs/optimum.md). `OracleMethod.AUTO` (the default)
uses it wherever it applies and the exhaustive search elsewhere.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any

import numpy as np

from coordinator.envs.heuristics import encode_actions
from coordinator.envs.slot_optimum import SlotOptimum, SlotSolution
from coordinator.envs.twin import TaskSource, TwinEnv

Array = np.ndarray[Any, Any]

DEFAULT_RATIOS = (0.25, 0.5, 0.75, 1.0)
MAX_JOINT = 500_000


class OracleTooLarge(ValueError):
    """The joint decision space of a slot exceeds the solver's limit."""


class OracleMethod(enum.StrEnum):
    AUTO = "auto"
    """The dynamic programme where the edges have one server each, else exhaustive."""
    EXHAUSTIVE = "exhaustive"
    """Every joint decision served at once (≤ `max_joint`)."""
    PROGRAMME = "programme"
    """coordinator/envs/slot_optimum.py (one-server edges; any number of agents)."""


class SlotOracle:
    """`act(env)` for a `TwinEnv` of one environment: the action vectors (1, N, M + 3)
    of the slot's best joint decision (float64, decoded exactly)."""

    def __init__(
        self, ratios: tuple[float, ...] = DEFAULT_RATIOS, max_joint: int = MAX_JOINT,
        method: OracleMethod | str = OracleMethod.AUTO,
    ):  # fmt: skip
        if not ratios or any(not 0.0 < r <= 1.0 for r in ratios):
            raise ValueError(f"ratios must lie in (0, 1], got {ratios}")
        self.ratios = tuple(float(r) for r in ratios)
        self.max_joint = max_joint
        self.method = OracleMethod(method)
        self._probe: TwinEnv | None = None  # K copies of the slot, reused while K holds
        self._programme = SlotOptimum(self.ratios)
        self.last_solution: SlotSolution | None = None
        """The programme's last solution (its bound and time), when it solved the slot."""

    def options(self, env: TwinEnv) -> list[tuple[int, float, bool]]:
        """One agent's decisions (target or -1, ratio, download)."""
        downloads = (False, True) if env.spec.download_action else (True,)
        out = [(-1, 0.0, True)]
        for j in range(env.params.num_edges):
            for r in self.ratios:
                out += [(j, r, d) for d in downloads]
        return out

    def _probe_for(self, env: TwinEnv, k: int) -> TwinEnv:
        probe = self._probe
        if probe is None or probe.num_envs != k or probe.params is not env.params:
            probe = TwinEnv(env.params, k, tasks=TaskSource.SAMPLED, model_aware=env.model_aware,
                            episode_slots=env.episode_slots)  # fmt: skip
            self._probe = probe
        return probe

    def solve(self, env: TwinEnv) -> tuple[Array, Array, Array, float]:
        """(target, ratio, download) of shape (N,) and the slot's best total reward."""
        if env.num_envs != 1:
            raise ValueError("the oracle solves one environment at a time")
        one_server = env.params.num_edges == 0 or int(env.params.edge_servers.max()) == 1
        # The programme prices each edge's uploads on their own; with the host's
        # contention modelled (twin_contention.py) a task's cost depends on the whole
        # slot's mix, which only the exhaustive search replays.
        separable = env.params.sharing is None
        auto = self.method is OracleMethod.AUTO
        if self.method is OracleMethod.PROGRAMME and not separable:
            raise ValueError("the programme cannot price contention for a shared host: "
                             "use the exhaustive search or twin.shared_host: off")  # fmt: skip
        if self.method is OracleMethod.PROGRAMME or (auto and one_server and separable):
            s = self.last_solution = self._programme.solve(env)
            return s.target, s.ratio, s.download, s.reward
        n = env.num_agents
        has = env.has_task[0]
        opts = self.options(env)
        active = np.flatnonzero(has)
        k = len(opts) ** len(active)
        if k > self.max_joint:
            raise OracleTooLarge(
                f"{len(active)} tasks × {len(opts)} decisions each = {k:,} joint decisions "
                f"> {self.max_joint:,}: the oracle is for small instances (fewer agents, "
                "edges or ratios)"
            )
        combos = np.array(list(itertools.product(range(len(opts)), repeat=len(active))))
        combos = combos.reshape(k, len(active))
        target = np.full((k, n), -1, dtype=np.int64)
        ratio = np.zeros((k, n))
        download = np.ones((k, n), dtype=bool)
        if len(active):
            target[:, active] = np.array([o[0] for o in opts])[combos]
            ratio[:, active] = np.array([o[1] for o in opts])[combos]
            download[:, active] = np.array([o[2] for o in opts], dtype=bool)[combos]
        probe = self._probe_for(env, k)
        probe.cached[:] = env.cached[0]
        probe.last_used[:] = env.last_used[0]
        probe._tick = env._tick
        probe.slot[:], probe.episode[:] = env.slot[0], env.episode[0]
        probe.has_task = np.broadcast_to(env.has_task[0], (k, n)).copy()
        probe.task_type = np.broadcast_to(env.task_type[0], (k, n)).copy()
        probe.size_mbit = np.broadcast_to(env.size_mbit[0], (k, n)).copy()
        total = probe.serve(target, ratio, download).reward.astype(np.float64).sum(axis=1)
        best = int(np.argmax(total))  # ties: the first in grid order (local first)
        return target[best], ratio[best], download[best], float(total[best])

    def act(self, env: TwinEnv) -> Array:
        target, ratio, download, _ = self.solve(env)
        return encode_actions(env.params.num_edges, target[None], ratio[None], download[None])
