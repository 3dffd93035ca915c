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

from coordinator.envs.coedge_twin import CoedgeTwin
from coordinator.envs.discrete import DiscreteStep
from coordinator.envs.parallel import Array, OneEnvParallel


class CoedgeParallelEnv(OneEnvParallel):
    """One environment of `twin` (num_envs = 1) as a PettingZoo ParallelEnv."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "aigc_coedge_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, twin: CoedgeTwin) -> None:
        obs_space = spaces.Box(0.0, np.inf, shape=(twin.obs_dim,), dtype=np.float32)
        super().__init__(twin, obs_space, spaces.Discrete(twin.num_actions))
        self.twin = twin

    @classmethod
    def from_config(cls, cfg: Any, seed: int | None = None) -> CoedgeParallelEnv:
        """From a `TestbedConfig` (its `coedge:` section and master seed)."""
        return cls(CoedgeTwin.from_config(cfg, 1, seed))

    def _reset_infos(self) -> dict[str, dict[str, Any]]:
        has = self.twin.current_task()[2][0]
        return {a: {"has_decision": bool(has[i])} for i, a in enumerate(self.possible_agents)}

    def _raw(self, actions: dict[str, Any]) -> Array:
        raw = np.zeros((1, len(self.possible_agents)), dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            if actions.get(agent) is not None:
                raw[0, i] = int(actions[agent])
        return raw

    def _info(self, out: DiscreteStep, i: int) -> dict[str, Any]:
        return _info(out, i)


def _info(out: DiscreteStep, i: int) -> dict[str, Any]:
    return {
        "has_decision": bool(out.has_decision[0, i]),
        "delay_s": float(out.info["delay_s"][0, i]),
        "planned_s": float(out.info["planned_s"][0, i]),
        "late": bool(out.info["late"][0, i]),
        "servers_used": int(out.info["servers_used"][0, i]),
    }
