"""The algorithms of docs/papers.md §A by name, and what each supports, so commands and
tests can run every one of them the same way.

    mato     MADDPG-MATO: centralised critics, model-aware           (maddpg.py)
    nomodel  MADDPG-NoModel: centralised critics, no model features  (maddpg.py)
    saddpg   SADDPG: independent DDPG per agent, model-aware          (maddpg.py)
    mappo    MAPPO: shared stochastic actor, centralised value (PPO)  (mappo.py; not in the paper)
    random   Random target and ratio, d = 1 (not trained)
    greedy   Nearest edge holding the model, else local (not trained)
    local    Everything on the device (not trained; not in the paper, a floor to beat)

torch is imported only when a trained algorithm runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from testbed.config import TestbedConfig

if TYPE_CHECKING:
    from coordinator.algorithms.rollout import EpisodeStats, Hooks, Policy
    from coordinator.envs.vector import VecEnv


class Learner(enum.StrEnum):
    """The module that trains an algorithm."""

    MADDPG = "maddpg"
    MAPPO = "mappo"


@dataclass(frozen=True)
class Algorithm:
    name: str
    title: str
    """The paper's name."""
    trained: bool
    model_aware: bool
    """Sees model features (c_jk, cached models) and may ask for a download."""
    centralised_critic: bool = False
    flags: dict[str, bool] = field(default_factory=dict)
    learner: Learner = Learner.MADDPG
    """Which module trains it (trained algorithms only)."""

    def train(
        self, cfg: TestbedConfig, env: VecEnv, *, eval_env: VecEnv | None = None,
        hooks: Hooks | None = None, resume: dict[str, Any] | None = None,
    ) -> tuple[Any, EpisodeStats | None]:  # fmt: skip
        """Train on `env` for cfg.train.steps; returns (the trained agent, its last
        evaluation on `eval_env`)."""
        if not self.trained:
            raise ValueError(f"{self.name} is not trained")
        if self.learner is Learner.MAPPO:
            from coordinator.algorithms import mappo

            ppo_args = mappo.MappoArgs.from_config(cfg, **self.flags)
            return mappo.train(ppo_args, env, eval_env=eval_env, hooks=hooks, resume=resume)
        from coordinator.algorithms import maddpg

        args = maddpg.MaddpgArgs.from_config(cfg, **self.flags)
        return maddpg.train(args, env, eval_env=eval_env, hooks=hooks, resume=resume)

    def deployable_actors(self, agent: Any) -> list[Any]:
        """Every agent's actor of the trained `agent` (what `train` returned) as the
        module export.py writes to ONNX."""
        if self.learner is Learner.MAPPO:
            from coordinator.algorithms import mappo

            return mappo.deployable_actors(agent)
        from coordinator.algorithms import maddpg

        return maddpg.deployable_actors(agent)

    def heuristic(self, env: VecEnv, seed: int = 0) -> Policy:
        """The untrained policy as a `VecEnv` policy on the twin `env`."""
        if self.trained:
            raise ValueError(f"{self.name} is trained: use train()")
        from coordinator.envs.heuristics import make_heuristic

        policy = make_heuristic(self.name, seed=seed)
        return lambda _obs: policy.act(env)  # type: ignore[arg-type]


def _maddpg(name: str, title: str, *, centralised: bool, aware: bool) -> Algorithm:
    flags = {"centralised_critic": centralised, "model_aware": aware}
    return Algorithm(name, title, True, aware, centralised, flags=flags)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        _maddpg("mato", "MADDPG-MATO", centralised=True, aware=True),
        _maddpg("nomodel", "MADDPG-NoModel", centralised=True, aware=False),
        _maddpg("saddpg", "SADDPG", centralised=False, aware=True),
        Algorithm("mappo", "MAPPO", True, True, True, learner=Learner.MAPPO),
        Algorithm("random", "Random", False, False),
        Algorithm("greedy", "Greedy", False, True),
        Algorithm("local", "Local-only", False, False),
    )
}
TRAINED = tuple(name for name, a in ALGORITHMS.items() if a.trained)


def get(name: str) -> Algorithm:
    """The algorithm called `name`; KeyError naming the choices otherwise."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}") from None


__all__ = ["ALGORITHMS", "TRAINED", "Algorithm", "Learner", "get"]
