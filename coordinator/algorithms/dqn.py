"""DQN (docs/papers.md §B's baseline, the seed's CartPole comparison and the basis of
DRLCoEdge and SMCoEdge): a Q network over every action, a target copy by soft update τ,
ε-greedy exploration with ε decayed linearly, optionally double DQN.

    target  y = r + γ·(1 − terminal)·Q'(s', argmax_a' Q(s', a'))   (double: online picks)
            y = r + γ·(1 − terminal)·max_a' Q'(s', a')              (plain)
    loss    Huber(Q(s, a) − y)                                       (mean over the batch)

The Q network is the same two-hidden-layer Mish MLP as DSAC's critics
(diffusion_actor.py's `mlp`), so the CartPole comparison differs in the algorithm, not
the network. The training loop, replay and parameter sharing across agents are
discrete_loop.py's. `q_values` is what a top-k selection (SMCoEdge) ranks.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coordinator.algorithms.diffusion_actor import mlp
from coordinator.algorithms.discrete_loop import (
    LoopSettings,
    TrainStats,
    input_dim,
    train_loop,
)
from coordinator.algorithms.discrete_replay import DecisionBatch
from coordinator.algorithms.dsac import soft_update
from coordinator.envs.discrete import DiscreteVecEnv


@dataclass(frozen=True)
class DqnArgs:
    """Hyper-parameters (defaults as DSAC's where shared; CartPole's own in
    coordinator/cartpole.py)."""

    double: bool = True
    """Double DQN: the online network picks the next action, the target rates it."""
    hidden: int = 256
    """Width of the Q network's two hidden layers."""
    lr: float = 1e-3
    """Adam learning rate."""
    gamma: float = 0.95
    """Discount factor per decision."""
    tau: float = 0.005
    """Soft target update: θ' ← (1 − τ)·θ' + τ·θ after every update."""
    eps_start: float = 1.0
    """ε of ε-greedy at the first learning step."""
    eps_end: float = 0.05
    """... decayed linearly to this ..."""
    eps_decay_fraction: float = 0.5
    """... over this fraction of the environment steps, then held."""
    grad_clip_norm: float = 10.0
    """Largest gradient norm per update (0: off)."""
    batch_size: int = 512
    """Decisions per minibatch."""
    buffer_size: int = 100_000
    """Replay capacity in decisions."""
    env_steps: int = 50_000
    """Environment steps of training."""
    warmup_steps: int = 1_000
    """Environment steps of uniformly random actions before learning."""
    updates_per_step: float = 1.0
    """Gradient updates per environment step."""
    threads: int = 1
    """torch intra-op threads."""
    seed: int = 0
    """Seed of initialisation, exploration, replay sampling and the env."""

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            self.env_steps, self.warmup_steps, self.batch_size, self.buffer_size,
            self.updates_per_step, self.seed,
        )  # fmt: skip


class Dqn:
    """The learner: Q network, its target, ε."""

    def __init__(self, args: DqnArgs, in_dim: int, num_actions: int) -> None:
        self.args = args
        self.num_actions = num_actions
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed + 1)
        self.q = mlp(in_dim, args.hidden, num_actions)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=args.lr)
        self.epsilon = args.eps_start

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Q of every action (K, |A|) for inputs (K, in_dim)."""
        with torch.no_grad():
            return self.q(torch.from_numpy(states)).numpy()  # type: ignore[no-any-return]

    def act(self, states: np.ndarray, *, explore: bool) -> np.ndarray:
        greedy = self.q_values(states).argmax(axis=-1).astype(np.int64)
        if not explore:
            return greedy
        random = self.rng.integers(0, self.num_actions, len(states))
        return np.where(self.rng.random(len(states)) < self.epsilon, random, greedy)

    def on_env_step(self, env_step: int, total_env_steps: int) -> None:
        """ε decays linearly over `eps_decay_fraction` of the steps after the warm-up."""
        a = self.args
        span = max(1.0, a.eps_decay_fraction * total_env_steps - a.warmup_steps)
        progress = min(1.0, max(0.0, env_step - a.warmup_steps) / span)
        self.epsilon = a.eps_start + (a.eps_end - a.eps_start) * progress

    def update(self, batch: DecisionBatch) -> dict[str, float]:
        states = torch.from_numpy(batch.states)
        with torch.no_grad():
            next_states = torch.from_numpy(batch.next_states)
            q_next = self.q_target(next_states)
            if self.args.double:
                picks = self.q(next_states).argmax(dim=-1, keepdim=True)
                best = q_next.gather(1, picks)[:, 0]
            else:
                best = q_next.max(dim=-1).values
            not_terminal = 1.0 - torch.from_numpy(batch.terminal)
            target = torch.from_numpy(batch.rewards) + self.args.gamma * not_terminal * best
        chosen = self.q(states).gather(1, torch.from_numpy(batch.actions)[:, None])[:, 0]
        loss = F.smooth_l1_loss(chosen, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.args.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(self.q.parameters(), self.args.grad_clip_norm)
        self.opt.step()
        soft_update(self.q_target, self.q, self.args.tau)
        return {"q_loss": loss.item(), "epsilon": self.epsilon, "q_mean": chosen.mean().item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "args": dataclasses.asdict(self.args),
        }


def train(args: DqnArgs, env: DiscreteVecEnv) -> tuple[Dqn, TrainStats]:
    """Train DQN on `env` for `args.env_steps` environment steps."""
    torch.set_num_threads(args.threads)
    learner = Dqn(args, input_dim(env), env.num_actions)
    return learner, train_loop(learner, env, args.loop_settings())
