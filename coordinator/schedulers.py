"""The schedulers of docs/papers.md §B by name (docs/coedge.md, "Schedulers"): what each
one learns with, which actions it takes, and how it is trained on the §B twin
(coordinator/envs/coedge_twin.py) and turned into a policy `act(env) -> actions (E, N)`.

| name | learner | actor | actions (`coedge.action_mode`) |
|---|---|---|---|
| `ddrl-amsa` | DSAC | diffusion | `subset` (`topk` beyond 6 servers), split |
| `ddrl-amsa-mlp` | discrete SAC | one-step MLP | as `ddrl-amsa` (its ablation) |
| `ddrl-ats` | DSAC | diffusion | `one` |
| `ddrl-ats-mlp` | discrete SAC | one-step MLP | `one` (its ablation) |
| `drlcoedge` | double DQN | — | `one` |
| `smcoedge` | double DQN | — | `topk` (k = `coedge.top_k`), split |
| `random` | — | — | the config's mode: an action uniformly |
| `least-queue` | — | — | the config's mode: the least queued work |
| `home` | — | — | `one`: the station's own server (no transfer) |
| `split-all` | — | — | `subset`: every server, split |
| `optimum` | — | — | the config's mode: exact per task (myopic) |
| `slot-optimum` | — | — | the config's mode: exact per slot (small instances) |

SMCoEdge's "top-k DQN" is this project's reconstruction: a DQN whose actions are the
k-subsets themselves (C(B, k) of them), so that its Q values rate the set the split
rule then uses; the sibling code's network that scores single servers and keeps the
k best is not rebuilt (docs/coedge.md, "Schedulers").

Every learned scheduler trains with the shared loop (coordinator/algorithms/
discrete_loop.py) on `num_envs` twin environments seeded by the run's seed; its
hyper-parameters are the config's `coedge_learners:` section (testbed/config/
coedge_learners.py: this project's choice for a short budget on 2 cores), overridable
per run.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coordinator.envs.coedge_heuristics import (
    CoedgeScheduler,
    LeastQueueScheduler,
    RandomScheduler,
    SlotOptimum,
    TaskOptimum,
)
from coordinator.envs.coedge_twin import CoedgeTwin
from testbed.config.coedge import CoedgeActionMode
from testbed.config.coedge_learners import CoedgeLearnersConfig

Array = np.ndarray[Any, Any]

MAX_SUBSET_SERVERS_AMSA = 6
"""DDRL-AMSA chooses any subset up to this many servers (63 actions), k-subsets beyond
(issue 12: "a subset of edges (or top-k beyond 6 edges)")."""


class LearnerKind(enum.StrEnum):
    DSAC = "dsac"
    """coordinator/algorithms/dsac.py (diffusion actor, or its MLP ablation)."""
    DQN = "dqn"
    """coordinator/algorithms/dqn.py (double DQN)."""
    NONE = "none"
    """A heuristic of coordinator/envs/coedge_heuristics.py: nothing to train."""


class ModeChoice(enum.StrEnum):
    """Which action mode a scheduler decides in."""

    ONE = "one"
    SUBSET_OR_TOPK = "subset-or-topk"
    """Any subset up to MAX_SUBSET_SERVERS_AMSA servers, k-subsets beyond."""
    TOPK = "topk"
    SUBSET = "subset"
    """Any non-empty subset (`split-all`: the set of every server)."""
    CONFIG = "config"
    """The config's `coedge.action_mode`."""


@dataclass(frozen=True)
class SchedulerInfo:
    name: str
    learner: LearnerKind
    mode: ModeChoice
    diffusion: bool = False
    summary: str = ""

    @property
    def learned(self) -> bool:
        return self.learner is not LearnerKind.NONE


SCHEDULERS: dict[str, SchedulerInfo] = {
    s.name: s
    for s in (
        SchedulerInfo("ddrl-amsa", LearnerKind.DSAC, ModeChoice.SUBSET_OR_TOPK, True,
                      "DSAC (diffusion actor) choosing a set of servers, split"),
        SchedulerInfo("ddrl-amsa-mlp", LearnerKind.DSAC, ModeChoice.SUBSET_OR_TOPK, False,
                      "DDRL-AMSA with a one-step MLP actor (discrete SAC)"),
        SchedulerInfo("ddrl-ats", LearnerKind.DSAC, ModeChoice.ONE, True,
                      "DSAC (diffusion actor) choosing one server"),
        SchedulerInfo("ddrl-ats-mlp", LearnerKind.DSAC, ModeChoice.ONE, False,
                      "DDRL-ATS with a one-step MLP actor (discrete SAC)"),
        SchedulerInfo("drlcoedge", LearnerKind.DQN, ModeChoice.ONE, False,
                      "double DQN choosing one server"),
        SchedulerInfo("smcoedge", LearnerKind.DQN, ModeChoice.TOPK, False,
                      "double DQN choosing k servers, split"),
        SchedulerInfo("random", LearnerKind.NONE, ModeChoice.CONFIG, False,
                      "an action uniformly at random"),
        SchedulerInfo("least-queue", LearnerKind.NONE, ModeChoice.CONFIG, False,
                      "the server(s) with the least queued work"),
        SchedulerInfo("home", LearnerKind.NONE, ModeChoice.ONE, False,
                      "the station's own server, no transfer"),
        SchedulerInfo("split-all", LearnerKind.NONE, ModeChoice.SUBSET, False,
                      "every server, split by the rule"),
        SchedulerInfo("optimum", LearnerKind.NONE, ModeChoice.CONFIG, False,
                      "exact per task on the observed state (myopic)"),
        SchedulerInfo("slot-optimum", LearnerKind.NONE, ModeChoice.CONFIG, False,
                      "exact per slot, exhaustive (small instances)"),
    )
}  # fmt: skip

COEDGE_TRAIN: dict[str, Any] = CoedgeLearnersConfig().learner_settings()
"""The default `coedge_learners:` settings as DsacArgs / DqnArgs keys, for readers
without a config (benchmarks). Why these values (docs/coedge.md, "Schedulers"): 128-wide
networks, batch 256 and a quarter of a gradient update per environment step keep a run
within seconds to minutes on two shared cores; the actor's rate is CartPole's 3e-4
(coordinator/cartpole.py), not §B's 1e-4, for the same reason. The entropy temperature
starts at 0.01 and is tuned ten times faster than DsacArgs' default (3e-3): the
delays' differences between actions are hundredths of a second, and from 0.05 at the
default rate α stayed so large for a run of this length that both SAC actors remained
almost uniform over the 31 subsets. A run's own settings: `learner_settings(cfg)`."""


def learner_settings(cfg: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The learners' settings of config `cfg` (its `coedge_learners:` section) with
    `overrides` (an experiment's `train.overrides`) over them."""
    return {**cfg.coedge_learners.learner_settings(), **(overrides or {})}


TRAIN_ENVS = 8
"""Twin environments stepped together while training (each env step: B decisions)."""


def unknown(name: str) -> str:
    return f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}"


def action_mode(name: str, cfg: Any) -> CoedgeActionMode:
    """The action mode scheduler `name` decides in on the testbed config `cfg`."""
    info = SCHEDULERS[name]
    if info.mode is ModeChoice.ONE:
        return CoedgeActionMode.ONE
    if info.mode is ModeChoice.TOPK:
        return CoedgeActionMode.TOPK
    if info.mode is ModeChoice.SUBSET:
        return CoedgeActionMode.SUBSET
    if info.mode is ModeChoice.SUBSET_OR_TOPK:
        small = cfg.coedge.num_stations <= MAX_SUBSET_SERVERS_AMSA
        return CoedgeActionMode.SUBSET if small else CoedgeActionMode.TOPK
    return CoedgeActionMode(cfg.coedge.action_mode)


def scheduler_config(name: str, cfg: Any) -> Any:
    """`cfg` with `coedge.action_mode` set to the one scheduler `name` decides in."""
    if name not in SCHEDULERS:
        raise ValueError(unknown(name))
    coedge = dataclasses.replace(cfg.coedge, action_mode=action_mode(name, cfg))
    return dataclasses.replace(cfg, coedge=coedge)


class LearnedPolicy:
    """A trained learner as a `CoedgeScheduler` on each agent's observation: greedy
    (the learner's argmax), or with `explore` its exploring choice (DSAC: a draw from
    π; DQN: ε-greedy)."""

    def __init__(self, learner: Any, *, explore: bool = False) -> None:
        self.learner = learner
        self.explore = explore

    def act(self, env: CoedgeTwin) -> Array:
        from coordinator.algorithms.discrete_loop import learner_inputs

        picks = self.learner.act(learner_inputs(env.observe()), explore=self.explore)
        return np.asarray(picks, dtype=np.int64).reshape(env.num_envs, env.num_agents)


class CurveRecorder:
    """A twin seen by the training loop through this wrapper, which keeps the training
    curve: the mean delay and reward of the decisions made (exploring) in each window of
    `window_steps` environment steps — independent of episode boundaries, which a short
    run may not reach."""

    def __init__(self, env: CoedgeTwin, window_steps: int) -> None:
        self.env = env
        self.num_envs, self.num_agents = env.num_envs, env.num_agents
        self.obs_dim, self.num_actions, self.agent_ids = env.obs_dim, env.num_actions, env.agent_ids
        self.window_steps = max(1, window_steps)
        self.steps: list[int] = []
        self.delay_s: list[float] = []
        self.reward: list[float] = []
        self._done_steps = 0
        self._sums = np.zeros(3)  # delay, reward, decisions of the open window

    def reset(self, seed: int | None = None) -> Array:
        return self.env.reset(seed)

    def step(self, actions: Array) -> Any:
        out = self.env.step(actions)
        has = out.has_decision
        self._sums += (out.info["delay_s"][has].sum(), out.reward[has].sum(), has.sum())
        self._done_steps += self.num_envs
        if self._done_steps % self.window_steps < self.num_envs and self._sums[2] > 0:
            self.steps.append(self._done_steps)
            self.delay_s.append(float(self._sums[0] / self._sums[2]))
            self.reward.append(float(self._sums[1] / self._sums[2]))
            self._sums[:] = 0.0
        return out

    def close(self) -> None:
        self.env.close()


CURVE_POINTS = 10
"""Windows of a training curve (CurveRecorder) per run."""


@dataclass
class TrainedScheduler:
    """A scheduler ready to evaluate, and what its training did (empty if none)."""

    name: str
    policy: CoedgeScheduler
    cfg: Any
    """The config it decides on (its action mode set)."""
    curve_steps: list[int] = field(default_factory=list)
    """The environment step at which each window of the training curve closed."""
    curve_delay_s: list[float] = field(default_factory=list)
    """The mean delay of the window's decisions (exploring; random in the warm-up)."""
    curve_reward: list[float] = field(default_factory=list)
    """Their mean reward."""
    train_s: float = 0.0
    updates: int = 0
    last_losses: dict[str, float] = field(default_factory=dict)


def _learner_args(cls: type, seed: int, env_steps: int, settings: dict[str, Any]) -> Any:
    keys = {f.name for f in dataclasses.fields(cls)}
    given = {**settings, "env_steps": env_steps, "seed": seed}
    return cls(**{k: v for k, v in given.items() if k in keys})


def train_scheduler(
    name: str, cfg: Any, seed: int, env_steps: int, *,
    num_envs: int = TRAIN_ENVS, overrides: dict[str, Any] | None = None,
) -> TrainedScheduler:  # fmt: skip
    """Train scheduler `name` (if it learns) on the twin of `cfg` for `env_steps`
    environment steps from `seed`, with `cfg`'s `coedge_learners:` settings and
    `overrides` over them; heuristics are returned as they are."""
    info = SCHEDULERS.get(name)
    if info is None:
        raise ValueError(unknown(name))
    mode_cfg = scheduler_config(name, cfg)
    if not info.learned:
        return TrainedScheduler(name, heuristic(name, seed), mode_cfg)
    env = CurveRecorder(CoedgeTwin.from_config(mode_cfg, num_envs, seed),
                        env_steps // CURVE_POINTS)  # fmt: skip
    learner: Any
    settings = learner_settings(cfg, overrides)
    if info.learner is LearnerKind.DSAC:
        from coordinator.algorithms import dsac

        args = _learner_args(dsac.DsacArgs, seed, env_steps, settings)
        learner, stats = dsac.train(dataclasses.replace(args, diffusion=info.diffusion), env)
    else:
        from coordinator.algorithms import dqn

        learner, stats = dqn.train(_learner_args(dqn.DqnArgs, seed, env_steps, settings), env)
    return TrainedScheduler(
        name, LearnedPolicy(learner), mode_cfg, env.steps, env.delay_s, env.reward,
        stats.wall_s, stats.updates, dict(stats.last_losses),
    )  # fmt: skip


def heuristic(name: str, seed: int) -> CoedgeScheduler:
    """The scheduler of a heuristic's name."""
    if name == "random":
        return RandomScheduler(seed)
    if name == "least-queue":
        return LeastQueueScheduler()
    if name == "home":
        return HomeScheduler()
    if name == "split-all":
        return SplitAllScheduler()
    if name == "optimum":
        return TaskOptimum()
    if name == "slot-optimum":
        return SlotOptimum()
    raise ValueError(f"{name!r} is not a heuristic scheduler")


class HomeScheduler:
    """Station n's task on server n (the board's `home` policy, agent_node/
    coedge_policy.py): the twin in `one` mode, where action n is server n."""

    def act(self, env: CoedgeTwin) -> Array:
        return np.broadcast_to(np.arange(env.num_agents, dtype=np.int64),
                               (env.num_envs, env.num_agents)).copy()  # fmt: skip


class SplitAllScheduler:
    """Every task over every server, split by the rule (the board's `split-all`): the
    twin in `subset` mode, whose last action is the set of all servers."""

    def act(self, env: CoedgeTwin) -> Array:
        return np.full((env.num_envs, env.num_agents), env.num_actions - 1, dtype=np.int64)


def evaluate_scheduler(
    trained: TrainedScheduler, seed: int, *, num_envs: int, steps: int, sampled: bool = False
) -> dict[str, float]:
    """Mean delay (s), completion (the share of tasks within the deadline), mean reward
    and decisions of `steps` greedy steps of `num_envs` twin environments from
    `reset(seed)`: the same tasks for every scheduler at one seed (the tasks do not
    depend on the actions, docs/coedge.md). `sampled`: a learned policy decides as it
    explores (DSAC: an action drawn from π) instead of greedily."""
    from coordinator.envs.coedge_heuristics import evaluate

    policy = trained.policy
    if sampled and isinstance(policy, LearnedPolicy):
        policy = LearnedPolicy(policy.learner, explore=True)
    env = CoedgeTwin.from_config(trained.cfg, num_envs, seed)
    metrics = evaluate(env, policy, steps, seed)
    return {
        "delay_s": metrics["delay_s"],
        "completion": 1.0 - metrics["late"],
        "reward": metrics["reward"],
        "decisions": metrics["decisions"],
    }
