"""The twin of docs/papers.md §B (docs/coedge.md): B base stations, each with one edge
server, scheduling AIGC tasks over all the servers in clocked slots; E environments in
numpy, stepped in lock-step. Implements `DiscreteVecEnv` (coordinator/envs/discrete.py).

A slot of Δ seconds: every station b draws its tasks (each of `max_tasks` arrives with
probability p; size D and density C uniform); its scheduler (agent b) decides them one
per env step, in order — the slot lasts as many steps as its busiest station has tasks
(an agent with none left has `has_decision` False) and a slot where no task arrived
anywhere is skipped. A decision is a set of servers (one, a k-subset or any subset, by
`coedge.action_mode`); the task is split over it by the finish-together rule
(testbed/coedge/split.py) planned on the state the agent observes. The shares join the
servers' FIFO queues (work in Gcycles) and the links' transfer backlogs (seconds); the
decisions of one step are simultaneous, so where several stations send to one server
in the same step their shares queue in station order and a later one waits for the
earlier ones — its "finish together" then holds only as planned, as on a real bench.
A share at server j finishes at L_bj + x·D/r_bj + (work queued ahead)/f_j + x·D·C/f_j
(the additive model of the sibling simulations); the task's delay is its latest share's
finish, counted from the slot's start, and its reward −delay, or
−deadline_penalty·deadline when the delay passes the deadline. Backlogs carry over:
at each slot's end Q_j ← max(Q_j − f_j·Δ, 0) and L_bj ← max(L_bj − Δ, 0).

With `coedge.calibration` (a §B calibration.json, coordinator/coedge_calibration_file.py)
f_j and r_bj are the bench's effective ones and every share pays a fixed cost o_bj
on top (transfer setup, the edge's per-invocation compute, reply) and a cost per
other share of its task (one board serves them at once), of which the edge's fixed
compute also occupies its queue; a task split n ways ends later than its shares'
common finish by what the latest of n noisy shares adds on the bench (docs/coedge.md,
"Calibration and the twin's gap"); without one, o_bj = 0 and the additive model is as
above.

The hot path is vectorised over environments and agents; the only loops run over the
≤ B rounds of the split rule and over skipped empty slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.coedge_calibration_file import CoedgeCalibration, CoedgeCalibrationError
from coordinator.envs.discrete import DiscreteStep
from testbed.coedge.split import max_last, split_task
from testbed.coedge.subsets import action_masks
from testbed.config.coedge import CoedgeActionMode, CoedgeConfig

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class CoedgeParams:
    """The system's constants, from `coedge:` (testbed/config/coedge.py)."""

    edge_ghz: Array  # (B,) f_j
    rate_mbps: Array  # (B, B) r_bj, inf on the diagonal (home server: no transfer)
    masks: Array  # (A, B) bool: the servers of each action
    slot_s: float
    arrival_prob: float
    max_tasks: int
    size_mbit: tuple[float, float]
    density_cycles_per_bit: tuple[float, float]
    deadline_s: float
    deadline_penalty: float
    episode_slots: int
    action_mode: CoedgeActionMode
    share_overhead_s: Array | None = None
    """(B, B) [station, server] o_bj, the fixed cost of one share; None: none."""
    share_fixed_gcycles: Array | None = None
    """(B,) the work one share adds to server j's queue beyond its Gcycles."""
    per_sibling_s: float = 0.0
    """What each other share of the same task adds to a share's finish."""
    split_excess_s: Array | None = None
    """(B + 1,) [n]: what a task split over n servers adds to its delay (0 at n ≤ 1)."""

    @classmethod
    def from_config(cls, cfg: CoedgeConfig, seed: int = 0) -> CoedgeParams:
        """`seed`: the master seed (draws the core-network rates when not given);
        `cfg.calibration` replaces f_j and r_bj and adds the fixed costs."""
        b = cfg.num_stations
        k = cfg.top_k if cfg.action_mode is CoedgeActionMode.TOPK else 1
        ghz, rates = cfg.edge_ghz, cfg.rate_matrix_mbps(seed)
        overhead = fixed = None
        per_sibling, excess = 0.0, None
        if cfg.calibration:
            cal = CoedgeCalibration.load(cfg.calibration)
            if cal.num_edges != b:
                raise CoedgeCalibrationError(
                    f"{cfg.calibration}: measured {cal.num_edges} edges, coedge.edge_ghz has {b}"
                )
            ghz, rates = cal.edge_ghz(), cal.rate_matrix_mbps()
            overhead = np.array(cal.share_overhead_s(), dtype=np.float64)
            fixed = np.array([e.compute_fixed_s * e.effective_ghz for e in cal.edges])
            per_sibling = cal.per_sibling_s
            excess = np.array([0.0, *cal.split_excess()])
        return cls(
            edge_ghz=np.array(ghz, dtype=np.float64),
            rate_mbps=np.array(rates, dtype=np.float64),
            masks=action_masks(cfg.action_mode, b, k),
            slot_s=cfg.slot_s, arrival_prob=cfg.arrival_prob, max_tasks=cfg.max_tasks,
            size_mbit=cfg.size_mbit, density_cycles_per_bit=cfg.density_cycles_per_bit,
            deadline_s=cfg.deadline_s, deadline_penalty=cfg.deadline_penalty,
            episode_slots=cfg.episode_slots, action_mode=cfg.action_mode,
            share_overhead_s=overhead, share_fixed_gcycles=fixed, per_sibling_s=per_sibling,
            split_excess_s=excess,
        )  # fmt: skip

    @property
    def num_stations(self) -> int:
        return int(self.edge_ghz.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.masks.shape[0])

    @property
    def obs_dim(self) -> int:
        return 3 * self.num_stations + 3

    @property
    def late_reward(self) -> float:
        return -self.deadline_penalty * self.deadline_s


@dataclass(frozen=True)
class Decisions:
    """What one env step's decisions did (…, N) — or (…, N, B) per server."""

    shares: Array  # (…, N, B) x_j, 0 without a decision
    delay_s: Array  # (…, N) the task's delay (latest share's finish), 0 without one
    planned_s: Array  # (…, N) the finish the split planned (= delay_s without contention)
    reward: Array  # (…, N)
    queue_gcycles: Array  # (…, B) the servers' queues after the step
    link_s: Array  # (…, N, B) the links' transfer backlogs after the step


def decide(
    p: CoedgeParams,
    queue_gcycles: Array,
    link_s: Array,
    task: tuple[Array, Array, Array],
    chosen: Array,
) -> Decisions:
    """Apply one step's decisions, vectorised over any leading axes.

    `queue_gcycles` (…, B) the servers' queued work, `link_s` (…, N, B) each station's
    links' backlogs, `task` = (size_mbit, cycles_g, has) each (…, N), `chosen` (…, N, B)
    the servers of each decision."""
    size, cycles, has = task
    f = p.edge_ghz
    whole = size[..., None] / p.rate_mbps + cycles[..., None] / f  # a_j (…, N, B)
    whole = np.where(has[..., None], whole, 1.0)  # no task: any a_j > 0, its shares are 0
    planned_wait = queue_gcycles[..., None, :] / f + link_s  # w_j as the agent sees it
    split = split_task(whole, planned_wait, chosen | ~has[..., None])
    shares = split.shares * has[..., None]
    work = shares * cycles[..., None]  # Gcycles per server
    if p.share_fixed_gcycles is not None:  # calibrated: each share's fixed compute queues too
        work = work + (shares > 0) * p.share_fixed_gcycles
    n = work.shape[-2]
    earlier = np.tri(n, n, -1)  # [i, i'] = 1 where station i' < i: it queues first
    ahead = earlier @ work  # the same step's earlier stations' work, FIFO
    finish = shares * whole + planned_wait + ahead / f
    if p.share_overhead_s is not None:
        siblings = (shares > 0).sum(axis=-1, keepdims=True) - 1
        finish = finish + p.share_overhead_s + p.per_sibling_s * siblings
    delay = max_last(finish * (shares > 0))
    if p.split_excess_s is not None:  # calibrated: the latest of n noisy shares
        delay = delay + p.split_excess_s[(shares > 0).sum(axis=-1)]
    late = delay > p.deadline_s
    reward = (p.late_reward * late - delay * ~late) * has
    return Decisions(
        shares=shares,
        delay_s=delay,
        planned_s=split.finish_s * has,
        reward=reward,
        queue_gcycles=queue_gcycles + ahead[..., -1, :] + work[..., -1, :],
        link_s=link_s + shares * (size[..., None] / p.rate_mbps),
    )


def end_slot(p: CoedgeParams, queue_gcycles: Array, link_s: Array) -> tuple[Array, Array]:
    """The backlogs carried into the next slot: each server drains f_j·Δ, each link Δ."""
    drained = np.maximum(queue_gcycles - p.edge_ghz * p.slot_s, 0.0)
    return drained, np.maximum(link_s - p.slot_s, 0.0)


class CoedgeTwin:
    """E environments of the §B system in lock-step (the `DiscreteVecEnv` protocol).

    State, all public so tests can set a hand-made instance: `queue_gcycles` (E, B),
    `link_s` (E, B, B) [station, server], the slot's tasks `slot_size_mbit` and
    `slot_cycles_g` (E, max_tasks, B) and their counts `slot_count` (E, B), the step
    within the slot `cursor` (E,) and the slot within the episode `slot` (E,)."""

    def __init__(self, params: CoedgeParams, num_envs: int = 1, seed: int | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        self.params = p = params
        self.num_envs = num_envs
        self.num_agents = b = p.num_stations
        self.obs_dim = p.obs_dim
        self.num_actions = p.num_actions
        self.agent_ids = [f"bs-{i}" for i in range(b)]
        self._rng = np.random.default_rng(seed)
        self._started = False
        e, t = num_envs, p.max_tasks
        self.queue_gcycles = np.zeros((e, b))
        self.link_s = np.zeros((e, b, b))
        self.slot_size_mbit = np.zeros((e, t, b))
        self.slot_cycles_g = np.zeros((e, t, b))
        self.slot_count = np.zeros((e, b), dtype=np.int64)
        self.cursor = np.zeros(e, dtype=np.int64)
        self.slot = np.zeros(e, dtype=np.int64)
        self._envs = np.arange(e)
        self._one_hot = np.eye(b, dtype=np.float32)
        self._size_scale = p.size_mbit[1]
        self._cycles_scale = p.size_mbit[1] * p.density_cycles_per_bit[1] / 1e3

    @classmethod
    def from_config(cls, cfg: Any, num_envs: int = 1, seed: int | None = None) -> CoedgeTwin:
        """From a `TestbedConfig`; `seed` (default: the master seed) seeds the tasks."""
        params = CoedgeParams.from_config(cfg.coedge, cfg.seed)
        return cls(params, num_envs, cfg.seed if seed is None else seed)

    # ------------------------------------------------------------------ tasks

    def current_task(self) -> tuple[Array, Array, Array]:
        """Each agent's task now: size_mbit, cycles_g and has_decision, each (E, N)."""
        k = np.minimum(self.cursor, self.params.max_tasks - 1)
        size = self.slot_size_mbit[self._envs, k]
        cycles = self.slot_cycles_g[self._envs, k]
        return size, cycles, self.cursor[:, None] < self.slot_count

    def _draw(self, idx: Array) -> None:
        """New slot tasks for the environments `idx` (cursor back to 0)."""
        p, rng = self.params, self._rng
        shape = (len(idx), p.max_tasks, self.num_agents)
        size = rng.uniform(*p.size_mbit, size=shape)
        density = rng.uniform(*p.density_cycles_per_bit, size=shape)
        self.slot_size_mbit[idx] = size
        self.slot_cycles_g[idx] = size * density / 1e3
        self.slot_count[idx] = rng.binomial(p.max_tasks, p.arrival_prob, size=(len(idx), shape[2]))
        self.cursor[idx] = 0

    def _skip_empty(self, idx: Array) -> None:
        """Slots where no task arrived pass at once (their backlogs drain), up to the
        episode's last slot, which stays even if empty (it ends the episode)."""
        last = self.params.episode_slots - 1
        for _ in range(self.params.episode_slots):
            empty = idx[(self.slot_count[idx].max(axis=1) == 0) & (self.slot[idx] < last)]
            if not len(empty):
                return
            self._next_slot(empty)
            self._draw(empty)

    def _next_slot(self, idx: Array) -> None:
        q, links = end_slot(self.params, self.queue_gcycles[idx], self.link_s[idx])
        self.queue_gcycles[idx], self.link_s[idx] = q, links
        self.slot[idx] += 1

    def _restart(self, idx: Array) -> None:
        """A new episode for the environments `idx`: empty queues, slot 0, its tasks."""
        self.queue_gcycles[idx] = 0.0
        self.link_s[idx] = 0.0
        self.slot[idx] = 0
        self._draw(idx)
        self._skip_empty(idx)

    # ------------------------------------------------------------------ DiscreteVecEnv

    def reset(self, seed: int | None = None) -> Array:
        """Every environment afresh; observations (E, N, obs_dim)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._started = True
        self._restart(np.arange(self.num_envs))
        return self.observe()

    def step(self, actions: Array) -> DiscreteStep:
        """Every agent's decision (E, N) int64 (ignored without a task); auto-reset."""
        if not self._started:
            raise RuntimeError("reset() the twin before stepping it")
        acts = np.asarray(actions, dtype=np.int64)
        if acts.shape != (self.num_envs, self.num_agents):
            raise ValueError(
                f"expected actions {(self.num_envs, self.num_agents)}, got {acts.shape}"
            )
        size, cycles, has = self.current_task()
        if (has & ((acts < 0) | (acts >= self.num_actions))).any():
            raise ValueError(f"actions must lie in [0, {self.num_actions})")
        chosen = self.params.masks[np.where(has, acts, 0)]
        out = decide(self.params, self.queue_gcycles, self.link_s, (size, cycles, has), chosen)
        self.queue_gcycles, self.link_s = out.queue_gcycles, out.link_s
        self.cursor += 1
        slot_over = np.flatnonzero(self.cursor >= self.slot_count.max(axis=1))
        self._next_slot(slot_over)
        done = np.zeros(self.num_envs, dtype=bool)
        done[slot_over] = self.slot[slot_over] >= self.params.episode_slots
        going_on = slot_over[~done[slot_over]]
        self._draw(going_on)
        self._skip_empty(going_on)
        obs = final_obs = self.observe()
        if done.any():
            ended = np.flatnonzero(done)
            self.cursor[ended] = self.params.max_tasks  # the old episode has no task left
            final_obs = self.observe()
            self._restart(ended)
            obs = self.observe()
        info = {
            "delay_s": out.delay_s,  # (E, N) the task's delay, s (0: no decision)
            "planned_s": out.planned_s,  # (E, N) the finish its split planned
            "shares": out.shares,  # (E, N, B) x_j per server
            "late": has & (out.delay_s > self.params.deadline_s),
            "servers_used": (out.shares > 0).sum(axis=-1),
            "slot": self.slot.copy(),  # (E,) the slot after the step
        }
        return DiscreteStep(
            obs=obs, reward=out.reward.astype(np.float32), done=done,
            terminated=np.zeros(self.num_envs, dtype=bool), final_obs=final_obs,
            has_decision=has, info=info,
        )  # fmt: skip

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ observation

    def observe(self) -> Array:
        """(E, N, obs_dim) float32: the agent's task (D / D_max, D·C / (D·C)_max; 0
        without one), every server's queued work as its wait in slots Q_j / (f_j·Δ),
        its own links' backlogs in slots, its station one-hot, and the tasks it has
        left in the slot (this one included) over max_tasks."""
        p = self.params
        e, b = self.num_envs, self.num_agents
        size, cycles, has = self.current_task()
        obs = np.empty((e, b, p.obs_dim), dtype=np.float32)
        obs[..., 0] = np.where(has, size / self._size_scale, 0.0)
        obs[..., 1] = np.where(has, cycles / self._cycles_scale, 0.0)
        obs[..., 2 : 2 + b] = (self.queue_gcycles / (p.edge_ghz * p.slot_s))[:, None, :]
        obs[..., 2 + b : 2 + 2 * b] = self.link_s / p.slot_s
        obs[..., 2 + 2 * b : 2 + 3 * b] = self._one_hot
        left = np.maximum(self.slot_count - self.cursor[:, None], 0)
        obs[..., 2 + 3 * b] = left / p.max_tasks
        return obs
