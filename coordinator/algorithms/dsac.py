"""DSAC (docs/papers.md §B): discrete soft actor-critic whose actor is a conditional
diffusion model over the action logits (diffusion_actor.py); with `diffusion=False` the
actor is a one-step MLP, which is plain discrete SAC and DSAC's ablation.

Critics: twin Q networks Q_1, Q_2 (input → Q of every action), target copies updated by
soft update τ after every step. With π(·|s) the actor's softmax (computed from one draw
of the chain's noise per state) and α the entropy temperature:

    critic target  y = r + γ·(1 − terminal)·Σ_a' π(a'|s')·(min_i Q'_i(s', a') − α·log π(a'|s'))
    critic loss    Σ_i (Q_i(s, a) − y)²                                    (mean over the batch)
    actor loss     E_s Σ_a π(a|s)·(α·log π(a|s) − min_i Q_i(s, a))          (Q held fixed)
    α loss         −log α · (H̄ − H(π(·|s)))                                 (if tuned)

(Christodoulou's discrete SAC: the expectations over actions are exact sums, no
sampling). The actor loss's gradient flows through the whole reverse chain. α is tuned
towards the target entropy H̄ = `target_entropy_ratio` · log |A| (this project's choice
of 0.6: the discrete-SAC paper's 0.98 asks for an almost uniform policy; on CartPole's
2 actions it holds the policy at about 58/42, 0.6 at about 85/15), or fixed at `alpha`
with `auto_alpha=False` (the D2SAC reference's 0.05).

Exploration samples from π; the greedy decision is the argmax of π (the diffusion actor
with fresh noise, as on a board). The training loop, replay and parameter sharing
across agents (agent-id one-hot) are discrete_loop.py's.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coordinator.algorithms.diffusion_actor import Actor, DiffusionSpec, build_actor, mlp
from coordinator.algorithms.discrete_loop import (
    LoopSettings,
    TrainStats,
    input_dim,
    train_loop,
)
from coordinator.algorithms.discrete_replay import DecisionBatch
from coordinator.envs.discrete import DiscreteVecEnv


@dataclass(frozen=True)
class DsacArgs:
    """Hyper-parameters (defaults: docs/papers.md §B's typical values; CartPole's own
    in coordinator/cartpole.py)."""

    diffusion: bool = True
    """Diffusion actor (DSAC); False: one-step MLP actor (discrete SAC, the ablation)."""
    diffusion_steps: int = 5
    """Reverse-diffusion steps T of the actor."""
    beta_min: float = 0.1
    """β_min of the VP noise schedule."""
    beta_max: float = 10.0
    """β_max of the VP noise schedule."""
    x0_clip: float = 10.0
    """|x̂_0| bound in the reverse chain (diffusion_actor.py; 0: none)."""
    time_dim: int = 16
    """Width of the denoiser's sinusoidal step embedding."""
    hidden: int = 256
    """Width of the two hidden layers of the actor (denoiser) and each critic."""
    lr_actor: float = 1e-4
    """Adam learning rate of the actor."""
    lr_critic: float = 1e-3
    """Adam learning rate of the critics."""
    lr_alpha: float = 3e-4
    """Adam learning rate of log α (auto_alpha only)."""
    gamma: float = 0.95
    """Discount factor per decision."""
    tau: float = 0.005
    """Soft target update of the critics: θ' ← (1 − τ)·θ' + τ·θ after every update."""
    auto_alpha: bool = True
    """Tune α towards the target entropy; False: α fixed at `alpha`."""
    alpha: float = 0.05
    """The fixed α, or the tuned α's starting value."""
    target_entropy_ratio: float = 0.6
    """H̄ = ratio · log |A| (this project's choice; see the module doc)."""
    grad_clip_norm: float = 10.0
    """Largest gradient norm of the actor and of the critics per update (0: off)."""
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
    """Seed of initialisation, noise, exploration, replay sampling and the env."""

    def diffusion_spec(self) -> DiffusionSpec:
        return DiffusionSpec(
            steps=self.diffusion_steps, beta_min=self.beta_min, beta_max=self.beta_max,
            hidden=self.hidden, x0_clip=self.x0_clip, time_dim=self.time_dim,
        )  # fmt: skip

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            self.env_steps, self.warmup_steps, self.batch_size, self.buffer_size,
            self.updates_per_step, self.seed,
        )  # fmt: skip


class TwinQ(nn.Module):
    """Two independent Q networks, each input → Q of every action."""

    def __init__(self, in_dim: int, num_actions: int, hidden: int) -> None:
        super().__init__()
        self.q1 = mlp(in_dim, hidden, num_actions)
        self.q2 = mlp(in_dim, hidden, num_actions)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(states), self.q2(states)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


def soft_value(
    log_pi: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, alpha: torch.Tensor | float
) -> torch.Tensor:
    """V(s) = Σ_a π(a|s)·(min_i Q_i(s, a) − α·log π(a|s)), per row (B,)."""
    return (log_pi.exp() * (torch.min(q1, q2) - alpha * log_pi)).sum(-1)


def _clip(module: nn.Module, norm: float) -> None:
    if norm > 0:
        nn.utils.clip_grad_norm_(module.parameters(), norm)


class Dsac:
    """The learner: actor, twin critics and their targets, α."""

    def __init__(self, args: DsacArgs, in_dim: int, num_actions: int) -> None:
        self.args = args
        self.num_actions = num_actions
        torch.manual_seed(args.seed)
        self.generator = torch.Generator().manual_seed(args.seed + 1)
        self.actor: Actor = build_actor(
            in_dim, num_actions, args.diffusion_spec(), diffusion=args.diffusion
        )
        self.critic = TwinQ(in_dim, num_actions, args.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=args.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=args.lr_critic)
        self.log_alpha = torch.tensor(math.log(args.alpha), requires_grad=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=args.lr_alpha)
        self.target_entropy = args.target_entropy_ratio * math.log(num_actions)

    @property
    def alpha(self) -> float:
        return self.log_alpha.detach().exp().item()

    def log_policy(self, states: torch.Tensor) -> torch.Tensor:
        """log π(·|s) (B, |A|), one draw of the chain's noise per state."""
        noise = self.actor.sample_noise(states.shape[0], self.generator)
        return F.log_softmax(self.actor.logits(states, noise), dim=-1)

    def act(self, states: np.ndarray, *, explore: bool) -> np.ndarray:
        with torch.no_grad():
            log_pi = self.log_policy(torch.from_numpy(states))
            if explore:
                picks = torch.multinomial(log_pi.exp(), 1, generator=self.generator)[:, 0]
            else:
                picks = log_pi.argmax(dim=-1)
        return picks.numpy().astype(np.int64)

    def on_env_step(self, env_step: int, total_env_steps: int) -> None:
        """Nothing is scheduled by step in SAC."""

    def update(self, batch: DecisionBatch) -> dict[str, float]:
        """One critic, actor, α and target step."""
        states = torch.from_numpy(batch.states)
        size = states.shape[0]
        # One pass of the reverse chain for s and s' together (half the chain's calls);
        # only the s rows carry the actor's gradient.
        both = torch.cat([states, torch.from_numpy(batch.next_states)])
        log_pi_both = self.log_policy(both)
        log_pi, log_pi_next = log_pi_both[:size], log_pi_both[size:].detach()
        alpha = self.log_alpha.detach().exp()
        critic_loss, q_min = self._critic_step(batch, states, both[size:], log_pi_next, alpha)
        pi = log_pi.exp()
        actor_loss = (pi * (alpha * log_pi - q_min)).sum(-1).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        _clip(self.actor, self.args.grad_clip_norm)
        self.actor_opt.step()
        entropy = -(pi.detach() * log_pi.detach()).sum(-1).mean()
        if self.args.auto_alpha:
            alpha_loss = -self.log_alpha * (self.target_entropy - entropy)
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        soft_update(self.critic_target, self.critic, self.args.tau)
        return {
            "critic_loss": critic_loss.item(),
            "actor_loss": actor_loss.item(),
            "entropy": entropy.item(),
            "alpha": self.alpha,
        }

    def _critic_step(
        self, batch: DecisionBatch, states: torch.Tensor, next_states: torch.Tensor,
        log_pi_next: torch.Tensor, alpha: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One step of both critics towards the soft target; returns the loss and
        min_i Q_i(s, ·) before the step (held fixed in the actor loss)."""
        with torch.no_grad():
            q1_next, q2_next = self.critic_target(next_states)
            soft_v = soft_value(log_pi_next, q1_next, q2_next, alpha)
            not_terminal = 1.0 - torch.from_numpy(batch.terminal)
            bootstrap = self.args.gamma * not_terminal * soft_v
            target = torch.from_numpy(batch.rewards) + bootstrap
        q1, q2 = self.critic(states)
        chosen = torch.from_numpy(batch.actions)[:, None]
        critic_loss = F.mse_loss(q1.gather(1, chosen)[:, 0], target)
        critic_loss = critic_loss + F.mse_loss(q2.gather(1, chosen)[:, 0], target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        _clip(self.critic, self.args.grad_clip_norm)
        self.critic_opt.step()
        return critic_loss.detach(), torch.min(q1, q2).detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "args": dataclasses.asdict(self.args),
        }


def train(args: DsacArgs, env: DiscreteVecEnv) -> tuple[Dsac, TrainStats]:
    """Train DSAC (or discrete SAC) on `env` for `args.env_steps` environment steps."""
    torch.set_num_threads(args.threads)
    learner = Dsac(args, input_dim(env), env.num_actions)
    return learner, train_loop(learner, env, args.loop_settings())
