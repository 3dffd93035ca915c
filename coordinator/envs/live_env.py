"""`LiveVecEnv`: the `VecEnv` protocol over the real bench (E = 1), one slot per step.

A step is the two phases of a trainer's slot (coordinator/live.py): `observe` — every
board draws and queues its task and answers with its observation — happened at the end
of the previous step (or at reset); `act` serves each board's task with the trainer's
action. Rewards are LiveBench's (18) of the measured latency and energy.

The bench is started on the first `reset` (broker, cloud, edges, boards: seconds) and
torn down by `close`; only one live env may run at a time. At each episode's start the
edges' caches are brought back to their preload (as the twin's episodes start), unless
`restore_caches=False`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from coordinator.boards import SlotResult
from coordinator.envs import bench_ops
from coordinator.envs.twin import REASONS
from coordinator.envs.vector import StepOut
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.links import distance_m, shannon_rate_mbps
from testbed.messages import TaskRecord
from testbed.observation import ObservationSpec, observe

Array = np.ndarray[Any, Any]

_ACTIVE_LOCK = threading.Lock()
_active: LiveVecEnv | None = None
_CODE = {r: i for i, r in enumerate(REASONS)}


class LiveEnvBusy(RuntimeError):
    """A second live env while one runs (the bench's ports, boards and caches are one)."""


class LiveVecEnv:
    """One live bench as a vectorised env with one environment."""

    num_envs = 1

    def __init__(
        self,
        cfg: TestbedConfig,
        *,
        episode_slots: int | None = None,
        restore_caches: bool = True,
        label: str = "live-env",
    ) -> None:
        self.cfg = cfg
        self.spec = ObservationSpec.from_config(cfg)
        self.agent_ids = [a.id for a in cfg.agent_specs()]
        self.num_agents = len(self.agent_ids)
        self.episode_slots = episode_slots or cfg.twin.episode_slots
        self.restore_caches = restore_caches
        self.label = label
        self.bench: LiveBench | None = None
        self.slot = 0
        """The next slot the boards draw (slots run on across episodes)."""
        self.records: list[TaskRecord] = []
        """Every task record of the env's life, in order."""
        self._episode_slot = 0
        self._has = np.zeros(self.num_agents, dtype=bool)
        self._pending: list[TaskRecord] = []

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> LiveBench:
        global _active
        with _ACTIVE_LOCK:
            if _active is not None and _active is not self:
                raise LiveEnvBusy("a live env is already running: close() it first")
            _active = self
        try:
            bench = bench_ops.new_bench(self.cfg, self.label)
            bench.start(PolicySource("local"))  # the boards' own policy is never asked
        except BaseException:
            self._release()
            raise
        self.bench = bench
        return bench

    def _release(self) -> None:
        global _active
        with _ACTIVE_LOCK:
            if _active is self:
                _active = None

    def close(self) -> None:
        if self.bench is not None:
            self.bench.close()
            self.bench = None
        self._release()

    @property
    def run_dir(self) -> str:
        return str(self.bench.run_dir) if self.bench else ""

    # ------------------------------------------------------------------ VecEnv

    def reset(self, seed: int | None = None) -> Array:
        """Start the bench (first call) or bring its caches back to the preload; a seed
        is the boards' master seed (task streams, positions, clocks), and restarts the
        slots at 0."""
        if self.bench is not None:
            self._drain()
        if seed is not None and seed != self.cfg.seed:
            self.cfg = _with_seed(self.cfg, seed)
            if self.bench is not None:
                self.records.extend(bench_ops.reseed(self.bench, seed))
        if seed is not None:
            self.slot = 0
        if self.bench is None:
            self._start()
        elif self.restore_caches:
            self._restore()
        self._episode_slot = 0
        self._pending = []
        return self._observe()

    def step(self, actions: Array) -> StepOut:
        bench = self._require()
        raw = np.asarray(actions, dtype=np.float32)
        if raw.shape != (1, self.num_agents, self.spec.action_dim):
            raise ValueError(
                f"actions must have shape {(1, self.num_agents, self.spec.action_dim)}, "
                f"got {raw.shape}"
            )
        served = {a: raw[0, i] for i, a in enumerate(self.agent_ids) if self._has[i]}
        result = bench.act(self.slot, served) if served else None
        records = [*self._pending, *(result.records if result else [])]
        self.records.extend(records)
        out = self._outcome(records)
        self.slot += 1
        self._episode_slot += 1
        done = self._episode_slot >= self.episode_slots
        if done:
            self._episode_slot = 0
            if self.restore_caches:
                self._restore()
        obs = self._observe()
        # the terminal observation is taken after the caches were restored (the board
        # serves a task on the observation it made when it queued it)
        out.obs, out.final_obs, out.done = obs, obs, np.array([done])
        return out

    # ------------------------------------------------------------------ helpers

    def _require(self) -> LiveBench:
        if self.bench is None:
            raise RuntimeError("reset() the live env before stepping it")
        return self.bench

    def _drain(self) -> None:
        """Serve the tasks the boards queued for an observation nobody acted on (a reset
        in mid-episode, or after an episode's end): locally, recorded like any task."""
        bench = self._require()
        local = np.zeros(self.spec.action_dim, dtype=np.float32)
        local[0] = 1.0  # target none
        held = {a: local for i, a in enumerate(self.agent_ids) if self._has[i]}
        if held:
            self.records.extend(bench.act(self.slot, held).records)
            self.slot += 1
        self.records.extend(self._pending)
        self._pending = []
        self._has[:] = False

    def _restore(self) -> None:
        bench = self._require()
        if bench_ops.restore_caches(bench):
            bench_ops.wait_settled()

    def _observe(self) -> Array:
        bench = self._require()
        result: SlotResult = bench.observe(self.slot)
        self._pending = list(result.records)  # tasks lost before serving (unreachable)
        obs = np.zeros((1, self.num_agents, self.spec.obs_dim), dtype=np.float32)
        idle = []
        for i, agent_id in enumerate(self.agent_ids):
            step = result.steps.get(agent_id)
            self._has[i] = step is not None and step.observation is not None
            if self._has[i]:
                assert step is not None and step.observation is not None
                obs[0, i] = step.observation
            else:
                idle.append(i)
        if idle:
            obs[0, idle] = self._idle_observation(idle)
        return obs

    def _idle_observation(self, agents: list[int]) -> Array:
        """Observations without a task (zeros in the task block) for boards that hold
        none, from the config's facts and the edges' current state."""
        bench = self._require()
        cfg, spec = bench.cfg, self.spec
        specs = cfg.agent_specs()
        edges = cfg.edge_specs()
        free, cached, alive = [], [], []
        for e in edges:
            state = None
            if bench.nodes.alive(e.id):
                with EdgeClient(bench.nodes.address(e.id), e.id, bench.grpc_identity) as client:
                    try:
                        state = client.state(timeout_s=2)
                    except Exception:  # a dead edge: shown as not alive
                        state = None
            alive.append(1.0 if state else 0.0)
            held = {c.model.model_id for c in state.cached} if state else set()
            used = state.cache_used_bytes / max(1, state.cache_capacity_bytes) if state else 0
            free.append(1.0 - used)
            cached.append([float(m in held) for m in spec.models])
        pos = np.array([specs[i].position_m for i in agents], dtype=np.float64)
        epos = np.array([e.position_m for e in edges], dtype=np.float64).reshape(len(edges), 2)
        rate = shannon_rate_mbps(
            cfg.agents.transmit_power_w, distance_m(pos[:, None, :], epos[None]), cfg.links
        )
        n = len(agents)
        return observe(
            spec, has_task=np.zeros(n), task_type=np.zeros(n, dtype=np.int64), size_mbit=0.0,
            density_cycles_per_bit=0.0, deadline_s=0.0, self_position_m=pos,
            self_ghz=[specs[i].cpu_ghz for i in agents], self_queue=0.0, edge_position_m=epos,
            edge_ghz=[e.cpu_ghz for e in edges], rate_mbps=np.reshape(rate, (n, len(edges))),
            edge_queue=0.0, edge_alive=alive, edge_cache_free=free, edge_cached=cached,
        )  # fmt: skip

    def _outcome(self, records: list[TaskRecord]) -> StepOut:
        n = self.num_agents
        index = {a: i for i, a in enumerate(self.agent_ids)}
        reward = np.zeros((1, n), dtype=np.float32)
        latency = np.zeros((1, n), dtype=np.float32)
        energy = np.zeros((1, n), dtype=np.float32)
        completed = np.zeros((1, n), dtype=bool)
        has = np.zeros((1, n), dtype=bool)
        reason = np.zeros((1, n), dtype=np.int16)
        target = np.full((1, n), -1, dtype=np.int64)
        edge_ids = [e.id for e in self.cfg.edge_specs()]
        for r in records:
            i = index.get(r.agent_id)
            if i is None:
                continue
            has[0, i] = True
            reward[0, i] += r.reward
            latency[0, i] = r.latency_ms / 1e3
            energy[0, i] += r.energy_j
            completed[0, i] = r.completed
            reason[0, i] = _CODE[r.reason]
            target[0, i] = edge_ids.index(r.edge_id) if r.edge_id in edge_ids else -1
        empty = np.empty((0,), dtype=np.float32)
        info: dict[str, Array] = {"reason": reason, "target": target, "slot": np.array([self.slot])}
        return StepOut(
            obs=empty, reward=reward, done=np.zeros(1, dtype=bool), final_obs=empty,
            has_task=has, latency_s=latency, energy_j=energy, completed=completed, info=info,
        )  # fmt: skip


def _with_seed(cfg: TestbedConfig, seed: int) -> TestbedConfig:
    return dataclasses.replace(cfg, seed=seed)
