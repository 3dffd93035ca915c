"""The PettingZoo `ParallelEnv` over one environment of a `VecEnv` (twin or live), so
other MARL libraries can be pointed at the testbed (docs/twin.md).

Agents are the bench's agent ids; every agent observes a Box(float32, obs_dim) in the
layout of testbed/observation.py and acts with a Box([0, 1], M + 3) (target scores,
ratio, download probability). An episode ends by truncation after `episode_slots`
slots (no agent terminates on its own). Infos carry the served task's measured or
modelled `latency_s`, `energy_j`, `completed`, and its `outcome` and `reason`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from coordinator.envs.heuristics import encode_actions
from coordinator.envs.twin import REASONS
from coordinator.envs.vector import StepOut, VecEnv

Array = np.ndarray[Any, Any]


def observation_space(obs_dim: int) -> spaces.Box:
    """Every agent's observation space (features are normalised but not bounded)."""
    return spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)


def action_space(action_dim: int) -> spaces.Box:
    """Every agent's action space: M + 3 numbers in [0, 1] (docs/observation.md)."""
    return spaces.Box(0.0, 1.0, shape=(action_dim,), dtype=np.float32)


class TestbedParallelEnv(ParallelEnv[str, Array, Array]):
    """One environment of `vec` (num_envs = 1) as a PettingZoo ParallelEnv."""

    __test__ = False  # not a pytest class
    metadata: ClassVar[dict[str, Any]] = {
        "name": "aigc_testbed_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, vec: VecEnv, backend: str, description: str = "") -> None:
        if vec.num_envs != 1:
            raise ValueError(f"a ParallelEnv wraps one environment, got num_envs={vec.num_envs}")
        self.vec = vec
        self.backend = backend
        self.description = description
        self.possible_agents = list(vec.agent_ids)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_space = observation_space(vec.spec.obs_dim)
        self._act_space = action_space(vec.spec.action_dim)
        m = vec.spec.num_edges
        self._local = encode_actions(m, np.array(-1), np.array(0.0), False).astype(np.float32)
        self._after_reset: Array | None = None  # the next episode's first observation

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_space

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Array], dict[str, dict[str, Any]]]:
        """A new episode; `seed` is the bench's master seed (tasks, positions, clocks)."""
        if seed is None and self._after_reset is not None:
            obs = self._after_reset  # the env already began it when the last one ended
        else:
            obs = self.vec.reset(seed)
        self._after_reset = None
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = list(self.possible_agents)
        info = {"backend": self.backend, "model": self.description}
        return (
            {a: obs[0, i] for i, a in enumerate(self.possible_agents)},
            {a: dict(info) for a in self.possible_agents},
        )

    def step(
        self, actions: dict[str, Array]
    ) -> tuple[
        dict[str, Array],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise RuntimeError("the episode has ended: reset() the env")
        raw = np.empty((1, len(self.possible_agents), self.vec.spec.action_dim), np.float32)
        for i, agent in enumerate(self.possible_agents):
            action = actions.get(agent)
            raw[0, i] = self._local if action is None else np.asarray(action, np.float32)
        out = self.vec.step(raw)
        done = bool(out.done[0])
        obs = out.final_obs if done else out.obs
        if done:
            self._after_reset = out.obs
        agents = self.possible_agents
        result = (
            {a: obs[0, i] for i, a in enumerate(agents)},
            {a: float(out.reward[0, i]) for i, a in enumerate(agents)},
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, done),
            {a: _info(out, i) for i, a in enumerate(agents)},
        )
        if done:
            self.agents = []
        return result

    def close(self) -> None:
        self.vec.close()

    def render(self) -> None:
        return None


def _info(out: StepOut, i: int) -> dict[str, Any]:
    has = bool(out.has_task[0, i])
    reason = REASONS[int(out.info["reason"][0, i])] if "reason" in out.info else None
    completed = bool(out.completed[0, i])
    return {
        "has_task": has,
        "latency_s": float(out.latency_s[0, i]),
        "energy_j": float(out.energy_j[0, i]),
        "completed": completed,
        "outcome": "no_task" if not has else ("completed" if completed else "failed"),
        "reason": reason.value if reason is not None else "",
        "target": int(out.info["target"][0, i]) if "target" in out.info else -1,
    }
