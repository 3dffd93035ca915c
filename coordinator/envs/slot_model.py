"""One slot of the twin, decision by decision: the prices of every agent's options and
the service of one upload at a one-server edge, in float64, as coordinator/envs/twin.py
and twin_edges.py compute them (docs/optimum.md).

The exact per-slot optimum (coordinator/envs/slot_optimum.py) searches joint decisions
one upload at a time, so it needs the slot's arithmetic per task rather than per batch
of environments: `SlotModel` prices every (agent, option) once with the twin's own
unit split and cost functions, and `SlotModel.serve` serves one upload given when its
edge's server is free and which models the edge holds in LRU order. The edges of a
slot are independent of each other (an upload touches only its edge's FIFO and cache),
and in an edge's FIFO a task's outcome depends only on the uploads before it: that is
what makes the optimum's dynamic programme exact. Tests compare `evaluate` with the
twin's `serve` on random joint decisions.

Only one-server edges (`parallel_slots: 1`, the default) are modelled here: with more
servers a model in use cannot be evicted and a task waits for another server's
admission, state this model does not carry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.envs.twin import TaskSource, TwinEnv
from testbed import costs

Array = np.ndarray[Any, Any]

Held = tuple[int, ...]
"""An edge's cached models, least recently used first."""


OFFLOAD_ONLY_LOCAL = -1e6
"""An agent's reward for running locally when `Pricing.OFFLOAD_ONLY` forbids it: below
any slot's (rewards per task are O(1–10)), finite so that the programmes' sums stay
exact."""


class Pricing(enum.Enum):
    """How `SlotModel` prices a slot when the twin has mixed-slot factors (docs/twin.md,
    "Mixed slots"): the factors apply to a whole slot once a board and an edge both
    compute in it, which no per-upload programme sees, so the optimum solves under
    `MIXED` and `OFFLOAD_ONLY` and also tries everything local (slot_optimum.py)."""

    PLAIN = "plain"
    """As the twin prices a slot without mixed-slot factors: exact for every decision
    when the bench has none."""
    MIXED = "mixed"
    """Every slot priced as mixed: exact for the decisions that mix."""
    OFFLOAD_ONLY = "offload_only"
    """Plain prices, and only the options that leave no unit on the board (running
    locally earns `OFFLOAD_ONLY_LOCAL`): exact for the decisions that offload every
    task whole."""


class UnsupportedSlot(ValueError):
    """The slot's bench is outside what the per-upload model covers (several servers)."""


@dataclass(frozen=True)
class Upload:
    """One agent's share sent to one edge under one option: everything its service
    needs, from the twin's prices (s, J)."""

    agent: int
    option: int
    edge: int
    arrive_s: float
    compute_s: float
    local_s: float
    device_j: float
    """Local compute + upload energy (e_loc + e_tx)."""
    compute_j: float
    model: int
    too_big: bool
    switch_s: float
    switch_j: float
    refused_s: float
    weight: float
    deadline_s: float


@dataclass(frozen=True)
class Decision:
    """One agent's decision: an option (0: local, else `SlotModel.options[o]`) and d."""

    option: int
    download: bool


class SlotModel:
    """The slot an environment of a `TwinEnv` (one environment) holds now, priced."""

    def __init__(
        self, env: TwinEnv, ratios: tuple[float, ...], pricing: Pricing = Pricing.PLAIN
    ) -> None:
        if env.num_envs != 1:
            raise ValueError("the slot model takes one environment at a time")
        p = env.params
        if p.num_edges and int(p.edge_servers.max()) > 1:
            raise UnsupportedSlot(
                "the exact optimum models one-server edges (edges.parallel_slots: 1)"
            )
        if pricing is not Pricing.PLAIN and p.mixed is None:
            raise ValueError(f"{pricing.value} pricing needs a twin with mixed-slot factors")
        self.params = p
        self.pricing = pricing
        self.num_agents = env.num_agents
        self.active = tuple(int(i) for i in np.flatnonzero(env.has_task[0]))
        self.downloads = (False, True) if env.spec.download_action else (True,)
        edge_options = [(j, float(r)) for j in range(p.num_edges) for r in ratios]
        self.options: tuple[tuple[int, float], ...] = ((-1, 0.0), *edge_options)
        self.initial_held = tuple(_lru_order(env, j) for j in range(p.num_edges))
        self._reward = p.cfg.reward
        self._reply_s = float(p.reply_overhead_s)
        self._local = np.zeros(self.num_agents)
        self.uploads: list[Upload] = []
        """The distinct uploads of the slot (options with the same split: the first)."""
        self._option_upload: dict[tuple[int, int], Upload] = {}
        self._price(env)
        self._admitted: dict[tuple[int, Held, int], Held] = {}

    # ------------------------------------------------------------------ prices

    def _price(self, env: TwinEnv) -> None:
        """Every option of every agent priced at once: a probe of O environments (one
        per option) holding copies of the slot's tasks, split and costed as twin.py's
        `serve` does before the edges."""
        p, n, num_o = self.params, self.num_agents, len(self.options)
        probe = TwinEnv(p, num_o, tasks=TaskSource.SAMPLED, model_aware=env.model_aware,
                        episode_slots=env.episode_slots)  # fmt: skip
        probe.has_task = np.broadcast_to(env.has_task[0], (num_o, n)).copy()
        probe.task_type = np.broadcast_to(env.task_type[0], (num_o, n)).copy()
        probe.size_mbit = np.broadcast_to(env.size_mbit[0], (num_o, n)).copy()
        target = np.repeat(np.array([o[0] for o in self.options])[:, None], n, axis=1)
        ratio = np.repeat(np.array([o[1] for o in self.options])[:, None], n, axis=1)
        k = probe.task_type
        u = p.type_model[k]
        size = np.where(probe.has_task, probe.size_mbit, 0.0)
        density = p.type_density[k]
        split = probe._split_units(target, ratio, size, density)
        off = split.target >= 0
        tj = np.where(off, split.target, 0)
        t_loc, e_loc, comp_s, comp_j = probe._compute_costs(split, size, density, u, tj)
        if self.pricing is Pricing.MIXED:
            t_loc, e_loc, comp_s, comp_j = probe._mixed(
                split, t_loc, e_loc, comp_s, comp_j, every_slot=True
            )
        offload_only = self.pricing is Pricing.OFFLOAD_ONLY
        agent = np.broadcast_to(np.arange(n), (num_o, n))
        t_tx = costs.upload_latency_s(split.share, size, p.pace_rate_mbps[agent, tj])
        t_tx = np.where(off, t_tx + p.upload_overhead_s, 0.0)
        e_tx = costs.upload_energy_j(p.agent_transmit_w, t_tx)
        device_j = e_loc + e_tx
        weight, deadline = p.type_weight[k[0]], p.type_deadline_s[k[0]]
        first: dict[tuple[int, int, float], Upload] = {}
        for i in self.active:
            self._local[i] = OFFLOAD_ONLY_LOCAL if offload_only else self._task_reward(
                float(t_loc[0, i]), float(device_j[0, i]), False, float(weight[i]),
                float(deadline[i]),
            )  # fmt: skip
            for o in range(1, num_o):
                j = int(split.target[o, i])
                if j < 0:  # no unit offloaded: the whole task runs on the board
                    continue
                if offload_only and split.local_units[o, i] > 0:
                    continue
                key = (i, j, float(split.edge_units[o, i]))
                if key in first:  # the same split as an earlier option: served as that one
                    self._option_upload[i, o] = first[key]
                    continue
                m = int(u[o, i])
                up = first[key] = self._option_upload[i, o] = Upload(
                    agent=i, option=o, edge=j, arrive_s=float(t_tx[o, i]),
                    compute_s=float(comp_s[o, i]), local_s=float(t_loc[o, i]),
                    device_j=float(device_j[o, i]), compute_j=float(comp_j[o, i]), model=m,
                    too_big=bool(p.model_size_bytes[m] > p.edge_capacity_bytes[j]),
                    switch_s=float(p.switch_s[j, m]), switch_j=float(p.switch_j[j, m]),
                    refused_s=float(p.too_large_s[m]), weight=float(weight[i]),
                    deadline_s=float(deadline[i]),
                )  # fmt: skip
                self.uploads.append(up)

    def local_reward(self, agent: int) -> float:
        """The agent's reward running its whole task on the board (0: no task)."""
        return float(self._local[agent])

    def uploads_to(self, edge: int) -> list[Upload]:
        """The distinct uploads to `edge`, in the FIFO order of their arrival (ties:
        lowest agent first, as the twin's stable sort)."""
        ups = [up for up in self.uploads if up.edge == edge]
        return sorted(ups, key=lambda up: (up.arrive_s, up.agent))

    # ------------------------------------------------------------------ one upload

    def _task_reward(
        self, latency_s: float, energy_j: float, failed: bool, weight: float, deadline_s: float
    ) -> float:
        """testbed/costs.py `reward` (18) in Python floats, as twin.py charges a task."""
        rc = self._reward
        completed = (not failed) and latency_s <= deadline_s
        charged = float(costs.charged_latency_s(latency_s, deadline_s, completed, rc))
        cost = (
            rc.omega_latency * charged / rc.latency_scale_s
            + rc.omega_energy * energy_j / rc.energy_scale_j
        )
        return -weight * cost - rc.penalty * float(not completed)

    def serve(
        self, up: Upload, free_s: float, held: Held, download: bool
    ) -> tuple[float, float, Held]:
        """(reward, when the server is free after it, the models held after it) of `up`
        served by its edge's one server, free from `free_s`, holding `held`
        (twin_edges.py `_serve_rounds` for one round, `make_room` for an admission)."""
        start = max(up.arrive_s, free_s)
        failed = False
        if up.model in held:  # a hit: the model becomes the most recently used
            finish = start + (0.0 + up.compute_s)
            energy = up.device_j + 0.0 + up.compute_j
            held = (*(m for m in held if m != up.model), up.model)
        elif download and not up.too_big:  # fetched and admitted (all evictable: 1 server)
            finish = start + (up.switch_s + up.compute_s)
            energy = up.device_j + up.switch_j + up.compute_j
            held = self._admit(up.edge, held, up.model)
        else:  # model_too_large after the manifest's refusal, or model_missing at once
            finish = start + (up.refused_s if download else 0.0)
            energy = up.device_j + 0.0
            failed = True
        latency = max(up.local_s, finish + self._reply_s)
        reward = self._task_reward(latency, energy, failed, up.weight, up.deadline_s)
        return reward, finish, held

    def upper_bound(self, up: Upload) -> float:
        """No better reward than this for `up` whatever else the slot holds: served on
        arrival, as a hit or as a failure at once (a wait, a switch or a later failure
        only cost more)."""
        hit, _, _ = self.serve(up, 0.0, (up.model,), True)
        missing, _, _ = self.serve(up, 0.0, (), False)
        return max(hit, missing)

    def _admit(self, edge: int, held: Held, model: int) -> Held:
        """The held models after admitting `model`: least recently used evicted until it
        fits (twin_edges.py `make_room`: its byte sums, all models evictable)."""
        key = (edge, held, model)
        out = self._admitted.get(key)
        if out is None:
            size, cap = self.params.model_size_bytes, self.params.edge_capacity_bytes[edge]
            keep = list(held)
            need = float(size[keep].sum()) + float(size[model]) - float(cap)
            while need > 0 and keep:
                need -= float(size[keep.pop(0)])
            out = self._admitted[key] = (*keep, model)
        return out

    # ------------------------------------------------------------------ a joint decision

    def evaluate(self, decisions: dict[int, Decision]) -> float:
        """The slot's total reward (float64) under `decisions` by agent (absent or
        option 0: local; an option whose share rounds to no unit runs locally too)."""
        total = 0.0
        by_edge: dict[int, list[tuple[Upload, bool]]] = {}
        for i in self.active:
            d = decisions.get(i)
            up = self.upload_for(i, d.option) if d is not None else None
            if up is None or d is None:
                total += self.local_reward(i)
            else:
                by_edge.setdefault(up.edge, []).append((up, d.download))
        for j, jobs in by_edge.items():
            free, held = 0.0, self.initial_held[j]
            for up, download in sorted(jobs, key=lambda jd: (jd[0].arrive_s, jd[0].agent)):
                reward, free, held = self.serve(up, free, held, download)
                total += reward
        return total

    def upload_for(self, agent: int, option: int) -> Upload | None:
        """The upload of `agent` under `option` (None: it runs locally)."""
        return self._option_upload.get((agent, option)) if option > 0 else None


def _lru_order(env: TwinEnv, edge: int) -> Held:
    """The models `edge` holds, least recently used first (ties: lower index first, as
    `make_room`'s argmin)."""
    held = np.flatnonzero(env.cached[0, edge])
    last = env.last_used[0, edge, held]
    return tuple(int(m) for m in held[np.lexsort((held, last))])
