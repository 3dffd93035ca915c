"""The digital twin: the live bench's slot as array arithmetic over E environments × N
agents (docs/twin.md). Implements `VecEnv`.

One `step` mirrors one slot of the live loop (agent_node/agent.py `_serve`, edge_node/
node.py and model_cache.py): every edge starts the slot idle; each agent's task is
split into units exactly as the board splits it (testbed/zoo/workload.py); the local
share and the paced upload run in parallel; each edge serves its uploads FIFO in the
order they complete, on `parallel_slots` servers, fetching a missing model (d = 1) into
its byte-capacity LRU cache — evicting the least recently used models not in use — or
failing it at once (d = 0: `model_missing`); the task's latency is the later of the
two parts, its reward (18) is testbed/costs.py's. The prices come from a calibration
file (`testbed calibrate`) or, without one, from the paper's model (twin_params.py);
on a bench whose nodes share one host, a calibrated slot's compute is priced at the
slot's own contention for the host's cores (twin_contention.py), or each computation at
what overlaps it within the slot (`processor_sharing`, twin_ps.py).

This module draws the tasks, splits and prices them and writes the observations
(twin_obs.py); the edges' FIFO and caches are twin_edges.py. Loops run only over the
arrival ranks of the N agents and over the ≤ U evictions of an admission; everything
else is vectorised over the environments.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.envs.twin_edges import (
    EdgeService,
    SlotUploads,
    preload_caches,
    serve_uploads,
    server_free_template,
)
from coordinator.envs.twin_obs import ObservationWriter
from coordinator.envs.twin_params import CostModel, TwinParams
from coordinator.envs.twin_ps import UploadJobs, share_cores, slot_lanes
from coordinator.envs.vector import StepOut
from testbed import costs
from testbed.observation import ObservationSpec
from testbed.tasks import TaskGenerator
from testbed.types import FailureReason

Array = np.ndarray[Any, Any]

REASONS: tuple[FailureReason, ...] = tuple(FailureReason)
"""`StepOut.info["reason"]` holds indices into this tuple (0: none)."""
_DEADLINE = np.int16(REASONS.index(FailureReason.DEADLINE))


@dataclass(frozen=True)
class _UnitSplit:
    """(E, N) a slot's tasks in units of work: the target (−1: none, also where the
    edge share rounds to no unit), all units, the edge's and the local share's, and
    the edge's share of the units."""

    target: Array
    units: Array
    edge_units: Array
    local_units: Array
    share: Array


class TaskSource(enum.StrEnum):
    CRN = "crn"
    """Common random numbers: env e draws `TaskGenerator(agent, types, p, seed + e).next(slot)`,
    the very tasks the live bench draws with master seed `seed + e` (evaluation)."""
    SAMPLED = "sampled"
    """A numpy sampler with the same distributions (fast; training)."""


class TwinEnv:
    """E environments of the twin stepped in lock-step (the `VecEnv` protocol).

    `seed` seeds the task streams (default: the config's master seed); the bench's
    geometry (positions, clocks, rates) is the config's — unless `seed_moves_agents`,
    where a seed given to `reset` is the bench's master seed as on the live bench
    (agents' positions and clocks are drawn from it too; the PettingZoo env uses that).
    In `TaskSource.CRN` mode, episode k of env e covers the slots k·T … k·T + T − 1 of
    master seed `seed + e`, so env 0's first episode sees the live bench's first T slots.
    """

    def __init__(
        self,
        params: TwinParams,
        num_envs: int = 1,
        *,
        tasks: TaskSource | str = TaskSource.SAMPLED,
        seed: int | None = None,
        episode_slots: int | None = None,
        model_aware: bool = True,
        seed_moves_agents: bool = False,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        self.num_envs = num_envs
        self.episode_slots = episode_slots or params.cfg.twin.episode_slots
        self.tasks = TaskSource(tasks)
        self.model_aware = model_aware
        self.seed_moves_agents = seed_moves_agents
        self._seed = params.cfg.seed if seed is None else seed
        self._rng = np.random.default_rng(self._seed)
        self._generators: dict[tuple[int, int], TaskGenerator] = {}
        self._started = False
        self._bind(params)

    def _bind(self, params: TwinParams) -> None:
        """Take the bench of `params` (at construction, and when a seed moves the agents)."""
        self.params = p = params
        self.spec: ObservationSpec = (
            p.spec if self.model_aware else ObservationSpec.from_config(p.cfg, model_aware=False)
        )
        self.num_agents = p.num_agents
        self.agent_ids = list(p.agent_ids)
        self.source = p.source
        e, n, m, u = self.num_envs, self.num_agents, p.num_edges, p.num_models
        self._shape = (e, n)
        self._type_index = {name: i for i, name in enumerate(self.spec.task_types)}
        self._writer = ObservationWriter(
            self.spec, self_position_m=p.agent_position_m, self_ghz=p.agent_ghz,
            edge_position_m=p.edge_position_m, edge_ghz=p.edge_ghz, rate_mbps=p.rate_mbps,
        )  # fmt: skip
        self._pre_cached, self._pre_last = preload_caches(p)
        # LRU ticks of the slots' cache uses come after every preload's (1 … P)
        self._tick = int(self._pre_last.max(initial=0))
        self.cached = np.zeros((e, m, u), dtype=bool)
        """(E, M, U) whether edge j holds model u (U: `params.models`)."""
        self.last_used = np.zeros((e, m, u), dtype=np.int64)
        """(E, M, U) LRU order: larger is more recent."""
        self.slot = np.zeros(e, dtype=np.int64)
        """(E,) slot within the episode."""
        self.episode = np.zeros(e, dtype=np.int64)
        self.has_task = np.zeros((e, n), dtype=bool)
        self.task_type = np.zeros((e, n), dtype=np.int64)
        self.size_mbit = np.zeros((e, n), dtype=np.float64)
        self._server_free = server_free_template(p)

    # ------------------------------------------------------------------ state

    @property
    def task_model(self) -> Array:
        """(E, N) index into `params.models` of each agent's task model."""
        return self.params.type_model[self.task_type]

    def global_slot(self) -> Array:
        """(E,) the slot number the task streams are at (episode · T + slot)."""
        return self.episode * self.episode_slots + self.slot

    # ------------------------------------------------------------------ VecEnv

    def reset(self, seed: int | None = None) -> Array:
        """Every environment afresh (caches as preloaded, slot 0); observations (E, N, D).

        With a seed the task streams restart from it (CRN: episode 0); without one they
        go on (CRN: the next episode's slots)."""
        if seed is not None:
            if self.seed_moves_agents and seed != self.params.cfg.seed:
                self._bind(self.params.with_seed(seed))
            self._seed = seed
            self._rng = np.random.default_rng(seed)
            self._generators.clear()
            self.episode[:] = 0
        elif self._started:
            self.episode += 1
        self._started = True
        self.slot[:] = 0
        self._reset_caches(np.arange(self.num_envs))
        self._draw()
        return self._observe()

    def step(self, actions: Array) -> StepOut:
        """Serve every agent's task with `actions` (E, N, M + 3); auto-reset at episode end."""
        if not self._started:
            raise RuntimeError("reset() the twin before stepping it")
        target, ratio, download = self.decode(actions)
        out = self.serve(target, ratio, download)
        self.slot += 1
        done = self.slot >= self.episode_slots
        self._draw()
        obs = self._observe()
        final_obs = obs
        if done.any():
            final_obs = obs.copy()
            idx = np.flatnonzero(done)
            self.slot[idx] = 0
            self.episode[idx] += 1
            self._reset_caches(idx)
            obs[idx] = self._observe(idx)
        out.obs, out.final_obs, out.done = obs, final_obs, done
        return out

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ actions

    def decode(self, actions: Array) -> tuple[Array, Array, Array]:
        """(target, ratio, download) as the board decodes an action vector
        (testbed.observation.decode): float32 unless given float64 (exact heuristics)."""
        raw = np.asarray(actions)
        if raw.dtype != np.float64:
            raw = raw.astype(np.float32)
        m = self.params.num_edges
        if raw.shape != (*self._shape, m + 3):
            raise ValueError(f"actions must have shape {(*self._shape, m + 3)}, got {raw.shape}")
        target = np.argmax(raw[..., : m + 1], axis=-1) - 1
        ratio = np.nan_to_num(np.clip(raw[..., m + 1], 0.0, 1.0), nan=0.0).astype(np.float64)
        ratio = np.where(target < 0, 0.0, ratio)
        target = np.where(ratio <= 0.0, -1, target)
        if self.spec.download_action:
            download = raw[..., m + 2] > 0.5
        else:
            download = np.ones(self._shape, dtype=bool)
        return target, ratio, download

    # ------------------------------------------------------------------ one slot

    def serve(self, target: Array, ratio: Array, download: Array) -> StepOut:
        """The slot's tasks served with decoded decisions (E, N); updates the caches.

        Returns a StepOut whose obs/final_obs/done the caller fills in."""
        p = self.params
        has = self.has_task
        k = self.task_type
        u = p.type_model[k]
        size = np.where(has, self.size_mbit, 0.0)
        density = p.type_density[k]
        split = self._split_units(target, ratio, size, density)
        off = split.target >= 0
        tj = np.where(off, split.target, 0)
        t_loc, e_loc, comp_s, comp_j = self._compute_costs(split, size, density, u, tj)
        if p.mixed is not None:
            t_loc, e_loc, comp_s, comp_j = self._mixed(split, t_loc, e_loc, comp_s, comp_j)
        ps = p.sharing is not None and p.sharing.processor_sharing
        if p.sharing is not None and not ps:
            t_loc, e_loc, comp_s, comp_j = self._contended(split, t_loc, e_loc, comp_s, comp_j)
        agent = np.broadcast_to(np.arange(self.num_agents), self._shape)
        t_tx = costs.upload_latency_s(split.share, size, p.pace_rate_mbps[agent, tj])
        t_tx = np.where(off, t_tx + p.upload_overhead_s, 0.0)
        e_tx = costs.upload_energy_j(p.agent_transmit_w, t_tx)

        if ps:
            priced = (t_loc, e_loc, comp_s, comp_j)
            t_loc, e_loc, comp_s, comp_j, edge = self._shared_cores(
                split, SlotUploads(split.target, u, t_tx, comp_s, download), priced
            )
        else:
            uploads = SlotUploads(split.target, u, t_tx, comp_s, download)
            edge, self._tick = serve_uploads(
                p, self.cached, self.last_used, self._tick, uploads, self._server_free
            )
        ran = off & (edge.reason == 0)
        t_es = np.where(off, edge.end_s + p.reply_overhead_s, 0.0)
        latency = np.where(has, np.maximum(t_loc, t_es), 0.0)
        energy = np.where(has, e_loc + e_tx + edge.switch_j + np.where(ran, comp_j, 0.0), 0.0)
        deadline = p.type_deadline_s[k]
        failed = edge.reason > 0
        on_time = costs.completed(latency, deadline)
        completed = has & ~failed & on_time
        reason = np.where(has & ~failed & ~on_time, _DEADLINE, edge.reason)
        charged = costs.charged_latency_s(latency, deadline, completed, p.cfg.reward)
        reward = costs.reward(charged, energy, p.type_weight[k], p.cfg.reward, violated=~completed)
        reward = np.where(has, reward, 0.0)
        f32 = np.float32
        info = {
            "reason": np.where(has, reason, 0).astype(np.int16),
            "target": split.target,
            "units": np.where(has, split.units, 0).astype(np.int64),
            "edge_units": split.edge_units.astype(np.int64),
            "download": download & off,
            "cache_hit": edge.hit,
            "t_local_s": t_loc.astype(f32),
            "t_tx_s": t_tx.astype(f32),
            "t_edge_queue_s": edge.queue_s.astype(f32),
            "t_switch_s": edge.switch_s.astype(f32),
            "t_edge_compute_s": np.where(ran, comp_s, 0.0).astype(f32),
            "e_local_j": np.where(has, e_loc, 0.0).astype(f32),
            "e_edge_compute_j": np.where(ran, comp_j, 0.0).astype(f32),
            "slot": self.global_slot().copy(),
        }
        empty = np.empty((0,), dtype=np.float32)
        return StepOut(
            obs=empty, reward=reward.astype(f32), done=np.zeros(self.num_envs, bool),
            final_obs=empty, has_task=has.copy(), latency_s=latency.astype(f32),
            energy_j=energy.astype(f32), completed=completed, info=info,
        )  # fmt: skip

    def _split_units(self, target: Array, ratio: Array, size: Array, density: Array) -> _UnitSplit:
        """Units and split exactly as testbed/zoo/workload.py (round half up, ≥ 1 unit);
        a share that rounds to no unit runs locally."""
        p = self.params
        has, k = self.has_task, self.task_type
        work = size * 1e6 * density * p.cfg.tasks.flops_per_cycle
        units = np.maximum(1.0, np.floor(work / p.type_unit_flops[k] + 0.5))
        tgt = np.where(has & (target >= 0) & (target < p.num_edges), target, -1)
        edge_units = np.floor(np.where(tgt >= 0, ratio, 0.0) * units + 0.5)
        tgt = np.where(edge_units > 0, tgt, -1)
        edge_units = np.where(tgt >= 0, edge_units, 0.0)
        local_units = np.where(has, units - edge_units, 0.0)
        return _UnitSplit(tgt, units, edge_units, local_units, edge_units / units)

    def _compute_costs(
        self, split: _UnitSplit, size: Array, density: Array, u: Array, tj: Array
    ) -> tuple[Array, Array, Array, Array]:
        """(E, N) the local share's time and energy, and the edge share's compute time and
        energy at edge `tj` (where offloaded): calibrated per unit (`u`: the tasks'
        models), or the paper model (`density`: C)."""
        p = self.params
        stepf = p.type_step_factor[self.task_type]
        local_units, edge_units = split.local_units, split.edge_units
        if p.cost_model is CostModel.CALIBRATED:
            t_loc = local_units * p.local_ghz_s_per_unit[u] * stepf / p.agent_ghz
            t_loc = np.where(local_units > 0, t_loc + p.local_overhead_s, 0.0)
            e_loc = local_units * p.local_j_per_unit[u] * stepf
            comp_s = edge_units * p.edge_s_per_unit[tj, u] * stepf
            comp_j = edge_units * p.edge_j_per_unit[u] * stepf
            return t_loc, e_loc, comp_s, comp_j
        share = split.share
        t_loc = costs.local_latency_s(share, size, density, p.agent_ghz) * stepf
        e_loc = costs.local_energy_j(share, size, density, p.agent_ghz, p.agent_kappa) * stepf
        comp_s = costs.edge_compute_latency_s(share, size, density, p.edge_ghz[tj]) * stepf
        comp_j = (
            costs.edge_compute_energy_j(share, size, density, p.edge_ghz[tj], p.edge_kappa[tj])
            * stepf
        )
        return t_loc, e_loc, comp_s, comp_j

    def _mixed(
        self, split: _UnitSplit, t_loc: Array, e_loc: Array, comp_s: Array, comp_j: Array,
        *, every_slot: bool = False,
    ) -> tuple[Array, Array, Array, Array]:  # fmt: skip
        """The compute time and energy of a mixed slot (one in which a board and an edge
        both compute) × the calibration's factors (docs/twin.md, "Mixed slots"); the
        local overhead unchanged. `every_slot`: price every slot as mixed (the slot
        optimum's bound, docs/optimum.md)."""
        m = self.params.mixed
        assert m is not None
        has_local = split.local_units > 0
        mixed = np.logical_and(has_local.any(axis=1), (split.edge_units > 0).any(axis=1))[:, None]
        mixed = mixed | every_slot
        over = self.params.local_overhead_s
        t_loc = np.where(has_local, (t_loc - over) * np.where(mixed, m.local_time, 1.0) + over, 0.0)
        return (
            t_loc,
            e_loc * np.where(mixed, m.local_energy, 1.0),
            comp_s * np.where(mixed, m.edge_time, 1.0),
            comp_j * np.where(mixed, m.edge_energy, 1.0),
        )

    def _contended(
        self, split: _UnitSplit, t_loc: Array, e_loc: Array, comp_s: Array, comp_j: Array
    ) -> tuple[Array, Array, Array, Array]:
        """The calibrated costs at each slot's contention for the host's cores
        (twin_contention.py): local and edge compute time × the slot's slowdown over the
        calibration run's (the local overhead unchanged), their energy's wall-time share
        likewise."""
        p = self.params
        assert p.sharing is not None
        has_local = split.local_units > 0
        f_loc, f_edge = p.sharing.factors(has_local, split.target)
        j_loc, j_edge = p.sharing.energy_factors(f_loc, f_edge)
        t_loc = np.where(has_local, (t_loc - p.local_overhead_s) * f_loc + p.local_overhead_s, 0.0)
        return t_loc, e_loc * j_loc, comp_s * f_edge, comp_j * j_edge

    def _shared_cores(
        self, split: _UnitSplit, uploads: SlotUploads, priced: tuple[Array, Array, Array, Array]
    ) -> tuple[Array, Array, Array, Array, EdgeService]:
        """The slot with the host's cores shared among the computations running at each
        instant (twin_ps.py): the edges serve the uploads with their work alone (the
        calibrated figures over the calibration run's slowdown) for the order, switches
        and failures, then every board's local share and every edge server's FIFO run
        on the shared cores. Returns the local time and energy, the edge compute time
        and energy, and the edges' service with the contended end and queue times."""
        p = self.params
        s = p.sharing
        assert s is not None
        t_loc, e_loc, comp_s, comp_j = priced
        has_local = split.local_units > 0
        fig_loc = np.where(has_local, t_loc - p.local_overhead_s, 0.0)
        work = comp_s / s.edge_ps_slowdown
        alone = dataclasses.replace(uploads, compute_s=work)
        edge, self._tick = serve_uploads(
            p, self.cached, self.last_used, self._tick, alone, self._server_free
        )
        ok = (uploads.target >= 0) & (edge.reason == 0)
        start = uploads.arrive_s + edge.queue_s
        switch = np.where(ok, edge.switch_s, edge.end_s - start)
        jobs = UploadJobs(uploads.target, edge.server, uploads.arrive_s, switch,
                          np.where(ok, work, 0.0))  # fmt: skip
        lanes = slot_lanes(fig_loc / s.local_ps_slowdown, jobs, s.agent_demand, s.edge_demand,
                           p.max_servers)  # fmt: skip
        times = share_cores(lanes.jobs, s.host)
        off = uploads.target >= 0
        began, ended = lanes.of_uploads(times.start_s), lanes.of_uploads(times.finish_s)
        local_s = times.finish_s[:, : self.num_agents, 0]
        edge_s = np.where(ok, ended - began - switch, 0.0)
        f_loc = np.where(fig_loc > 0, local_s / np.where(fig_loc > 0, fig_loc, 1.0), 1.0)
        f_edge = np.where(ok & (comp_s > 0), edge_s / np.where(comp_s > 0, comp_s, 1.0), 1.0)
        j_loc, j_edge = s.energy_factors(f_loc, f_edge)
        edge = dataclasses.replace(
            edge,
            end_s=np.where(off, ended, 0.0),
            queue_s=np.where(off, began - uploads.arrive_s, 0.0),
        )
        t_loc = np.where(has_local, local_s + p.local_overhead_s, 0.0)
        return t_loc, e_loc * j_loc, np.where(ok, edge_s, comp_s), comp_j * j_edge, edge

    # ------------------------------------------------------------------ tasks, caches

    def _reset_caches(self, envs: Array) -> None:
        self.cached[envs] = self._pre_cached
        self.last_used[envs] = self._pre_last

    def _draw(self) -> None:
        """Every agent's task of the next slot."""
        p = self.params
        cfg = p.cfg
        if self.tasks is TaskSource.SAMPLED:
            draws = self._rng.random((3, *self._shape))
            k = len(self.spec.task_types)
            self.has_task = draws[0] < cfg.tasks.arrival_prob
            self.task_type = np.minimum((draws[1] * k).astype(np.int64), k - 1)
            lo, hi = p.type_size_lo_mbit[self.task_type], p.type_size_hi_mbit[self.task_type]
            self.size_mbit = lo + (hi - lo) * draws[2]
            return
        slots = self.global_slot()
        has = np.zeros(self._shape, dtype=bool)
        ttype = np.zeros(self._shape, dtype=np.int64)
        size = np.zeros(self._shape)
        for e in range(self.num_envs):
            for n, agent_id in enumerate(self.agent_ids):
                gen = self._generators.get((e, n))
                if gen is None:
                    gen = TaskGenerator(
                        agent_id, cfg.tasks.active_types, cfg.tasks.arrival_prob, self._seed + e
                    )
                    self._generators[(e, n)] = gen
                task = gen.next(int(slots[e]))
                if task is not None:
                    has[e, n] = True
                    ttype[e, n] = self._type_index[task.task_type]
                    size[e, n] = task.size_mbit
        self.has_task, self.task_type, self.size_mbit = has, ttype, size

    def _observe(self, envs: Array | None = None) -> Array:
        """Observations (E, N, D) (or of `envs` only) at the slot's start: queues 0,
        every edge alive, caches as they stand (`observe`'s numbers, twin_obs.py)."""
        p = self.params
        sel = slice(None) if envs is None else envs
        cached = self.cached[sel]
        k = self.task_type[sel]
        free = 1.0 - (cached @ p.model_size_bytes) / np.maximum(1.0, p.edge_capacity_bytes)
        return self._writer.write(
            has_task=self.has_task[sel],
            task_type=k,
            size_mbit=self.size_mbit[sel],
            density_cycles_per_bit=p.type_density[k],
            deadline_s=p.type_deadline_s[k],
            cache_free=free,
            cached=cached[..., : len(self.spec.models)],
        )
