"""The PettingZoo `ParallelEnv` over one environment of the §B twin
(coordinator/envs/coedge_twin.py), one agent per base station (docs/coedge.md), for
other MARL libraries — as coordinator/envs/parallel.py is for the first paper's twin.

Agents `bs-0` … observe a Box(float32, 3B + 3) in the twin's layout and act with a
Discrete(A) in its action mode. An agent without a task in a step may send any action
(or none): it is ignored and its reward is 0. An episode ends by truncation after
`coedge.episode_slots` slots. Infos carry `has_decision`, the task's `delay_s`, the
split's `planned_s`, `late` and `servers_used`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from coordinator.envs.coedge_twin import CoedgeTwin
from coordinator.envs.discrete import DiscreteStep

Array = np.ndarray[Any, Any]


class CoedgeParallelEnv(ParallelEnv[str, Array, int]):
    """One environment of `twin` (num_envs = 1) as a PettingZoo ParallelEnv."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "aigc_coedge_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, twin: CoedgeTwin) -> None:
        if twin.num_envs != 1:
            raise ValueError(f"a ParallelEnv wraps one environment, got num_envs={twin.num_envs}")
        self.twin = twin
        self.possible_agents = list(twin.agent_ids)
        self.agents: list[str] = []
        self.render_mode = None
        self._obs_space = spaces.Box(0.0, np.inf, shape=(twin.obs_dim,), dtype=np.float32)
        self._act_space = spaces.Discrete(twin.num_actions)
        self._after_reset: Array | None = None  # the next episode's first observation

    @classmethod
    def from_config(cls, cfg: Any, seed: int | None = None) -> CoedgeParallelEnv:
        """From a `TestbedConfig` (its `coedge:` section and master seed)."""
        return cls(CoedgeTwin.from_config(cfg, 1, seed))

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
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
        if seed is None and self._after_reset is not None:
            obs = self._after_reset  # the twin began it when the last one ended
        else:
            obs = self.twin.reset(seed)
        self._after_reset = None
        if seed is not None:
            self._act_space.seed(seed)
        self.agents = list(self.possible_agents)
        has = self.twin.current_task()[2][0]
        return (
            {a: obs[0, i] for i, a in enumerate(self.possible_agents)},
            {a: {"has_decision": bool(has[i])} for i, a in enumerate(self.possible_agents)},
        )

    def step(
        self, actions: dict[str, int]
    ) -> tuple[
        dict[str, Array],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise RuntimeError("the episode has ended: reset() the env")
        raw = np.zeros((1, len(self.possible_agents)), dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            if actions.get(agent) is not None:
                raw[0, i] = int(actions[agent])
        out = self.twin.step(raw)
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
        self.twin.close()

    def render(self) -> None:
        return None


def _info(out: DiscreteStep, i: int) -> dict[str, Any]:
    return {
        "has_decision": bool(out.has_decision[0, i]),
        "delay_s": float(out.info["delay_s"][0, i]),
        "planned_s": float(out.info["planned_s"][0, i]),
        "late": bool(out.info["late"][0, i]),
        "servers_used": int(out.info["servers_used"][0, i]),
    }
