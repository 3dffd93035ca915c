"""The digital twin: the live bench's slot as array arithmetic over E environments × N
agents (ARCHITECTURE.md §5, docs/twin.md). Implements `VecEnv`.

One `step` mirrors one slot of the live loop (agent_node/agent.py `_serve`, edge_node/
node.py and model_cache.py): every edge starts the slot idle; each agent's task is
split into units exactly as the board splits it (testbed/zoo/workload.py); the local
share and the paced upload run in parallel; each edge serves its uploads FIFO in the
order they complete, on `parallel_slots` servers, fetching a missing model (d = 1) into
its byte-capacity LRU cache — evicting the least recently used models not in use — or
failing it at once (d = 0: `model_missing`); the task's latency is the later of the
two parts, its reward (18) is testbed/costs.py's. The prices come from a calibration
file (`testbed calibrate`) or, without one, from the paper's model (twin_params.py).

Loops run only over the arrival ranks of the N agents and over the ≤ U evictions of an
admission; everything else is vectorised over the environments.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from coordinator.envs.twin_obs import ObservationWriter
from coordinator.envs.twin_params import CostModel, TwinParams
from coordinator.envs.vector import StepOut
from testbed import costs
from testbed.observation import ObservationSpec
from testbed.tasks import TaskGenerator
from testbed.types import FailureReason

Array = np.ndarray[Any, Any]

REASONS: tuple[FailureReason, ...] = tuple(FailureReason)
"""`StepOut.info["reason"]` holds indices into this tuple (0: none)."""
_CODE = {r: np.int16(i) for i, r in enumerate(REASONS)}
_INF = np.inf


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
        self._pre_cached, self._pre_last = self._preload_template()
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
        # servers beyond an edge's parallel_slots are never free
        s = p.max_servers
        self._server_mask = np.where(np.arange(s)[None, :] < p.edge_servers[:, None], 0.0, _INF)

    # ------------------------------------------------------------------ state

    @property
    def task_model(self) -> Array:
        """(E, N) index into `params.models` of each agent's task model."""
        return self.params.type_model[self.task_type]

    def global_slot(self) -> Array:
        """(E,) the slot number the task streams are at (episode · T + slot)."""
        return self.episode * self.episode_slots + self.slot

    def _preload_template(self) -> tuple[Array, Array]:
        """Each edge's cache after its `preload` list, admitted in order as the edge
        does at start (a model larger than the cache is skipped, like a failed preload)."""
        p = self.params
        cached = np.zeros((p.num_edges, p.num_models), dtype=bool)
        last = np.zeros((p.num_edges, p.num_models), dtype=np.int64)
        size, cap = p.model_size_bytes, p.edge_capacity_bytes
        for j, models in enumerate(p.preload):
            for seq, u in enumerate(models, start=1):
                if not cached[j, u]:
                    if size[u] > cap[j]:
                        continue
                    while size[cached[j]].sum() + size[u] > cap[j]:
                        victims = np.flatnonzero(cached[j])
                        cached[j, victims[np.argmin(last[j, victims])]] = False
                    cached[j, u] = True
                last[j, u] = seq
        return cached, last

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
        e_n = self._shape
        has = self.has_task
        k = self.task_type
        u = p.type_model[k]
        size = np.where(has, self.size_mbit, 0.0)
        density = p.type_density[k]
        stepf = p.type_step_factor[k]
        # units and split exactly as testbed/zoo/workload.py (round half up, ≥ 1 unit)
        work = size * 1e6 * density * p.cfg.tasks.flops_per_cycle
        units = np.maximum(1.0, np.floor(work / p.type_unit_flops[k] + 0.5))
        tgt = np.where(has & (target >= 0) & (target < p.num_edges), target, -1)
        edge_units = np.floor(np.where(tgt >= 0, ratio, 0.0) * units + 0.5)
        tgt = np.where(edge_units > 0, tgt, -1)
        off = tgt >= 0
        edge_units = np.where(off, edge_units, 0.0)
        local_units = np.where(has, units - edge_units, 0.0)
        share = edge_units / units
        tj = np.where(off, tgt, 0)
        agent = np.broadcast_to(np.arange(self.num_agents), e_n)

        if p.cost_model is CostModel.CALIBRATED:
            t_loc = local_units * p.local_ghz_s_per_unit[u] * stepf / p.agent_ghz
            t_loc = np.where(local_units > 0, t_loc + p.local_overhead_s, 0.0)
            e_loc = local_units * p.local_j_per_unit[u] * stepf
            comp_s = edge_units * p.edge_s_per_unit[tj, u] * stepf
            comp_j = edge_units * p.edge_j_per_unit[u] * stepf
        else:
            t_loc = costs.local_latency_s(share, size, density, p.agent_ghz) * stepf
            e_loc = costs.local_energy_j(share, size, density, p.agent_ghz, p.agent_kappa) * stepf
            comp_s = costs.edge_compute_latency_s(share, size, density, p.edge_ghz[tj]) * stepf
            comp_j = (
                costs.edge_compute_energy_j(share, size, density, p.edge_ghz[tj], p.edge_kappa[tj])
                * stepf
            )
        t_tx = costs.upload_latency_s(share, size, p.pace_rate_mbps[agent, tj])
        t_tx = np.where(off, t_tx + p.upload_overhead_s, 0.0)
        e_tx = costs.upload_energy_j(p.agent_transmit_w, t_tx)

        edge = self._edges(tgt, u, t_tx, comp_s, download)
        ran = off & (edge["reason"] == 0)
        t_es = np.where(off, edge["end"] + p.reply_overhead_s, 0.0)
        latency = np.where(has, np.maximum(t_loc, t_es), 0.0)
        energy = np.where(has, e_loc + e_tx + edge["switch_j"] + np.where(ran, comp_j, 0.0), 0.0)
        deadline = p.type_deadline_s[k]
        failed = edge["reason"] > 0
        on_time = costs.completed(latency, deadline)
        completed = has & ~failed & on_time
        reason = np.where(has & ~failed & ~on_time, _CODE[FailureReason.DEADLINE], edge["reason"])
        charged = np.where(latency > 0, latency, deadline)  # never served: the whole deadline
        reward = costs.reward(charged, energy, p.type_weight[k], p.cfg.reward, violated=~completed)
        reward = np.where(has, reward, 0.0)
        f32 = np.float32
        info = {
            "reason": np.where(has, reason, 0).astype(np.int16),
            "target": tgt,
            "units": np.where(has, units, 0).astype(np.int64),
            "edge_units": edge_units.astype(np.int64),
            "download": download & off,
            "cache_hit": edge["hit"],
            "t_local_s": t_loc.astype(f32),
            "t_tx_s": t_tx.astype(f32),
            "t_edge_queue_s": edge["queue"].astype(f32),
            "t_switch_s": edge["switch_s"].astype(f32),
            "t_edge_compute_s": np.where(ran, comp_s, 0.0).astype(f32),
            "slot": self.global_slot().copy(),
        }
        empty = np.empty((0,), dtype=np.float32)
        return StepOut(
            obs=empty, reward=reward.astype(f32), done=np.zeros(self.num_envs, bool),
            final_obs=empty, has_task=has.copy(), latency_s=latency.astype(f32),
            energy_j=energy.astype(f32), completed=completed, info=info,
        )  # fmt: skip

    def _edges(
        self, tgt: Array, model: Array, arrive_s: Array, compute_s: Array, download: Array
    ) -> dict[str, Array]:
        """Every edge's FIFO over this slot's uploads, in order of upload completion.

        Returns (E, N) arrays: end (the edge's part done, s from the slot's start),
        queue, switch_s, switch_j, hit, reason (code). Round r serves the r-th upload
        to complete in every environment at once; an environment with fewer uploads
        writes its round into a spare cell (index `trash`) instead of being left out.
        """
        p = self.params
        num_e, _ = self._shape
        num_m, num_u, num_s = p.num_edges, p.num_models, p.max_servers
        off = tgt >= 0
        n_off = off.sum(axis=1)
        rounds = int(n_off.max()) if num_e else 0
        names = ("end", "queue", "switch_s", "switch_j")
        cols: dict[str, Array] = {name: np.zeros(self._shape) for name in names}
        cols["hit"] = np.zeros(self._shape, dtype=bool)
        cols["reason"] = np.zeros(self._shape, dtype=np.int16)
        if rounds == 0:
            return cols
        arrive = np.where(off, arrive_s, _INF)
        order = np.argsort(arrive, axis=1, kind="stable")[:, :rounds]
        # (R, E): round r of every environment, as flat indices into the (E, N) arrays
        flat = (order + (np.arange(num_e) * self._shape[1])[:, None]).T.copy()
        valid = np.arange(rounds)[:, None] < n_off[None, :]

        def by_rank(a: Array) -> Array:
            return a.reshape(-1)[flat]

        j_r = np.where(valid, by_rank(tgt), 0)
        u_r = np.where(valid, by_rank(model), 0)
        a_r = np.where(valid, by_rank(arrive), 0.0)
        want_r, comp_r = by_rank(download), by_rank(compute_s)
        edge_r = (np.arange(num_e) * num_m)[None, :] + j_r  # (R, E) index of (env, edge)
        cells = num_e * num_m * num_u
        trash_cell, trash_server = cells, num_e * num_m * num_s
        cell_r = np.where(valid, edge_r * num_u + u_r, trash_cell)
        server_base = np.where(valid, edge_r * num_s, trash_server)
        free = np.concatenate(  # every server's next free time; then the trash servers
            [np.broadcast_to(self._server_mask, (num_e, num_m, num_s)).reshape(-1), np.zeros(num_s)]
        )
        busy = np.zeros(cells + 1)  # a model is in use until then
        ready = np.zeros(cells + 1)  # being admitted until then
        cached = np.append(self.cached.reshape(-1), False)
        last = np.append(self.last_used.reshape(-1), 0)
        size, cap = p.model_size_bytes, p.edge_capacity_bytes
        rows = np.arange(num_e)
        # what does not depend on the cache's state, for every round at once
        big_r = size[u_r] > cap[j_r]
        admissible_r = want_r & ~big_r & valid
        switch_r = p.switch_s[j_r, u_r]
        refused_r = np.where(want_r & big_r, p.too_large_s[u_r], 0.0)  # until the refusal
        start_r, begin_r, finish_r = (np.zeros((rounds, num_e)) for _ in range(3))
        was_r, admit_r, full_r = (np.zeros((rounds, num_e), dtype=bool) for _ in range(3))
        # one server per edge (the default): a task starts when the one before it ended,
        # so no model is in use by another task and none is still being admitted
        shared = num_s > 1
        for r in range(rounds):
            cell = cell_r[r]
            if not shared:
                server = server_base[r]
                start = np.maximum(a_r[r], free[server])
            else:
                slots = free[server_base[r, :, None] + np.arange(num_s)]
                pick = np.argmin(slots, axis=1)
                server = server_base[r] + pick
                start = np.maximum(a_r[r], slots[rows, pick])
            was = cached[cell]
            admit = ~was & admissible_r[r]
            self._tick += 1
            fail_s = refused_r[r]
            if admit.any():
                at = np.flatnonzero(admit)
                fits = self._make_room(
                    cached, last, at, j_r[r, at], u_r[r, at], start[at], busy if shared else None
                )
                if not fits.all():
                    full_r[r, at] = ~fits
                    admit[at] = fits
                    fail_s = np.where(full_r[r], switch_r[r], fail_s)
            # a model another server is still admitting: wait for it (single flight)
            begin = np.where(was, np.maximum(start, ready[cell]), start) if shared else start
            switch = np.where(admit, switch_r[r], 0.0)
            failed = ~was & ~admit  # missing (d = 0), too large, or no room
            finish = begin + np.where(failed, fail_s, switch + comp_r[r])
            free[server] = finish
            ok_cell = np.where(failed, trash_cell, cell)
            last[ok_cell] = self._tick
            admit_cell = np.where(admit, cell, trash_cell)
            cached[admit_cell] = True
            if shared:
                busy[ok_cell] = np.maximum(busy[ok_cell], finish)
                ready[admit_cell] = begin + switch
            start_r[r], begin_r[r], finish_r[r] = start, begin, finish
            was_r[r], admit_r[r] = was, admit
        self.cached.reshape(-1)[:] = cached[:-1]
        self.last_used.reshape(-1)[:] = last[:-1]
        code_r = np.where(
            was_r, 0,
            np.where(~want_r, _CODE[FailureReason.MODEL_MISSING],
                     np.where(big_r, _CODE[FailureReason.MODEL_TOO_LARGE],
                              np.where(full_r, _CODE[FailureReason.CACHE_FULL], 0))),
        ).astype(np.int16)  # fmt: skip
        res = {
            "end": finish_r,
            "queue": start_r - a_r,
            "switch_s": np.where(admit_r, switch_r, 0.0) + (begin_r - start_r),
            "switch_j": np.where(admit_r, p.switch_j[j_r, u_r], 0.0),
        }
        at_rank = flat[valid]
        for name in names:
            cols[name].reshape(-1)[at_rank] = res[name][valid]
        hit_r = was_r & (begin_r <= start_r)  # a task that waited for an admission: a miss
        cols["hit"].reshape(-1)[at_rank] = hit_r[valid]
        cols["reason"].reshape(-1)[at_rank] = code_r[valid]
        return cols

    def _make_room(
        self,
        cached: Array,
        last: Array,
        envs: Array,
        j: Array,
        u: Array,
        at_s: Array,
        busy: Array | None,
    ) -> Array:
        """Evict least-recently-used models not in use at `at_s` (None: none is) until
        model u fits edge j (edge_node/model_cache.py `_make_room`) in the flat cache
        arrays; returns whether it fits."""
        p = self.params
        num_u = p.num_models
        size = p.model_size_bytes
        base = ((envs * p.num_edges + j) * num_u)[:, None] + np.arange(num_u)  # (n, U)
        held = cached[base]
        order = last[base]
        need = held @ size + size[u] - p.edge_capacity_bytes[j]
        if not (need > 0).any():
            return np.ones(len(envs), dtype=bool)
        evictable = held & (busy[base] <= at_s[:, None]) if busy is not None else held.copy()
        rows = np.arange(len(envs))
        for _ in range(num_u):
            todo = need > 0
            if not todo.any():
                break
            victim = np.argmin(np.where(evictable, order, np.iinfo(np.int64).max), axis=1)
            evict = todo & evictable[rows, victim]
            if not evict.any():
                break
            held[rows[evict], victim[evict]] = False
            evictable[rows[evict], victim[evict]] = False
            need[evict] -= size[victim[evict]]
        cached[base] = held
        return need <= 0

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
