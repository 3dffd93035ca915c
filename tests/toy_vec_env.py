"""A tiny `VecEnv` for trainer unit tests: no twin, no boards, a known best action.

Each slot every agent gets a random observation; its reward is highest when it
targets the option (none, edge 0..M−1) named by the largest of the first M + 1
observation features, with ratio 0.7 and, model-aware, download = 1 exactly when
feature M + 1 is above 0.5.
"""

from __future__ import annotations

import numpy as np

from coordinator.envs.vector import StepOut
from testbed.observation import ObservationSpec, decode


def toy_spec(model_aware: bool = True, num_edges: int = 2) -> ObservationSpec:
    return ObservationSpec(
        task_types=("a", "b"), task_models=("m1", "m2"), num_edges=num_edges,
        model_aware=model_aware, download_action=model_aware,
    )  # fmt: skip


class ToyVecEnv:
    def __init__(
        self, num_envs: int = 4, num_agents: int = 3, *, model_aware: bool = True,
        episode_slots: int = 5, seed: int = 0,
    ) -> None:  # fmt: skip
        self.spec = toy_spec(model_aware)
        self.num_envs, self.num_agents = num_envs, num_agents
        self.agent_ids = [f"agent-{i}" for i in range(num_agents)]
        self.episode_slots = episode_slots
        self._rng = np.random.default_rng(seed)
        self._t = 0
        self._obs = self._draw()

    def _draw(self) -> np.ndarray:
        shape = (self.num_envs, self.num_agents, self.spec.obs_dim)
        return self._rng.uniform(0, 1, shape).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._obs = self._draw()
        return self._obs

    def step(self, actions: np.ndarray) -> StepOut:
        assert actions.shape == (self.num_envs, self.num_agents, self.spec.action_dim)
        assert np.all((actions >= 0) & (actions <= 1))
        m = self.spec.num_edges
        target, ratio, download = decode(self.spec, actions)
        best = np.argmax(self._obs[..., : m + 1], axis=-1) - 1
        reward = -(target != best).astype(np.float32) - np.abs(
            np.where(best >= 0, ratio - 0.7, 0.0)
        )
        if self.spec.download_action:
            reward = reward - 0.5 * (download != (self._obs[..., m + 1] > 0.5))
        self._t += 1
        done = np.full(self.num_envs, self._t >= self.episode_slots)
        final = nxt = self._draw()
        if done.all():
            self._t = 0
            nxt = self._draw()
        self._obs = nxt
        shape = (self.num_envs, self.num_agents)
        return StepOut(
            obs=nxt, reward=reward.astype(np.float32), done=done, final_obs=final,
            has_task=np.ones(shape, bool), latency_s=np.full(shape, 0.5, np.float32),
            energy_j=np.full(shape, 0.1, np.float32), completed=target == best,
        )  # fmt: skip

    def close(self) -> None:
        pass
