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


Step5 = tuple[
    dict[str, Array], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
]
"""PettingZoo's step result: observations, rewards, terminations, truncations, infos."""


class OneEnvParallel(ParallelEnv[str, Array, Any]):
    """What every ParallelEnv over one environment of a vectorised env shares: the agents,
    the spaces, an episode that the vectorised env began when the last one ended, and
    the per-agent dictionaries of a step. A subclass says how actions become the env's
    array (`_raw`), what a reset's infos are (`_reset_infos`) and a step's (`_info`)."""

    def __init__(
        self, env: Any, obs_space: spaces.Space[Any], act_space: spaces.Space[Any]
    ) -> None:
        if env.num_envs != 1:
            raise ValueError(f"a ParallelEnv wraps one environment, got num_envs={env.num_envs}")
        self._env = env
        self.possible_agents = list(env.agent_ids)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_space, self._act_space = obs_space, act_space
        self._after_reset: Array | None = None  # the next episode's first observation

    def observation_space(self, agent: str) -> Any:
        return self._obs_space

    def action_space(self, agent: str) -> Any:
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
            obs = self._env.reset(seed)
        self._after_reset = None
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = list(self.possible_agents)
        infos = self._reset_infos()
        return {a: obs[0, i] for i, a in enumerate(self.possible_agents)}, infos

    def step(self, actions: dict[str, Any]) -> Step5:
        if not self.agents:
            raise RuntimeError("the episode has ended: reset() the env")
        out = self._env.step(self._raw(actions))
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
            {a: self._info(out, i) for i, a in enumerate(agents)},
        )
        if done:
            self.agents = []
        return result

    def close(self) -> None:
        self._env.close()

    def render(self) -> None:
        return None

    def _raw(self, actions: dict[str, Any]) -> Array:
        raise NotImplementedError

    def _reset_infos(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def _info(self, out: Any, i: int) -> dict[str, Any]:
        raise NotImplementedError


class TestbedParallelEnv(OneEnvParallel):
    """One environment of `vec` (num_envs = 1) as a PettingZoo ParallelEnv."""

    __test__ = False  # not a pytest class
    metadata: ClassVar[dict[str, Any]] = {
        "name": "aigc_testbed_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, vec: VecEnv, backend: str, description: str = "") -> None:
        super().__init__(
            vec, observation_space(vec.spec.obs_dim), action_space(vec.spec.action_dim)
        )
        self.vec = vec
        self.backend = backend
        self.description = description
        m = vec.spec.num_edges
        self._local = encode_actions(m, np.array(-1), np.array(0.0), False).astype(np.float32)

    def _reset_infos(self) -> dict[str, dict[str, Any]]:
        info = {"backend": self.backend, "model": self.description}
        return {a: dict(info) for a in self.possible_agents}

    def _raw(self, actions: dict[str, Any]) -> Array:
        raw = np.empty((1, len(self.possible_agents), self.vec.spec.action_dim), np.float32)
        for i, agent in enumerate(self.possible_agents):
            action = actions.get(agent)
            raw[0, i] = self._local if action is None else np.asarray(action, np.float32)
        return raw

    def _info(self, out: StepOut, i: int) -> dict[str, Any]:
        return _info(out, i)


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
