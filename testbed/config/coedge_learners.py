"""The `coedge_learners:` section of `testbed.yaml`: how the learned schedulers of
docs/papers.md §B (DDRL-AMSA, DDRL-ATS, their MLP ablations, DRLCoEdge, SMCoEdge;
coordinator/schedulers.py) are trained on the §B twin — the diffusion actor's shape
and schedule (coordinator/algorithms/diffusion_actor.py) and the learners' training
settings (coordinator/algorithms/dsac.py `DsacArgs`, coordinator/algorithms/dqn.py
`DqnArgs`).

Every default is this project's choice for a short budget on two shared cores
(docs/diffusion-learners.md, "The §B learners' settings"); the diffusion actor's
defaults are the ones docs/papers.md §B gives (5 steps, VP schedule β 0.1–10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.config.limits import COUNT_MAX, STEPS_MAX
from testbed.schema import meta

DIFFUSION_STEPS_MAX = 100
"""Most reverse-diffusion steps (the exported chain is unrolled: one denoiser per step)."""
WIDTH_MAX = 65_536
"""Widest hidden layer or embedding."""


@dataclass(frozen=True)
class CoedgeLearnersConfig:
    diffusion_steps: int = field(
        default=5,
        metadata=meta("Reverse-diffusion steps T of the DSAC actor.", ge=1, le=DIFFUSION_STEPS_MAX),
    )
    beta_min: float = field(
        default=0.1, metadata=meta("β_min of the VP noise schedule.", gt=0, le=100)
    )
    beta_max: float = field(
        default=10.0, metadata=meta("β_max of the VP noise schedule.", gt=0, le=1000)
    )
    time_dim: int = field(
        default=16, metadata=meta("Width of the denoiser's step embedding.", ge=2, le=WIDTH_MAX)
    )
    x0_clip: float = field(
        default=10.0,
        metadata=meta("|x̂_0| bound at every reverse step (0: none).", ge=0, le=1e6),
    )
    hidden: int = field(
        default=128,
        metadata=meta("Width of the two hidden layers of every network.", ge=1, le=WIDTH_MAX),
    )
    batch_size: int = field(
        default=256, metadata=meta("Decisions per minibatch.", ge=1, le=COUNT_MAX)
    )
    buffer_size: int = field(
        default=50_000, metadata=meta("Replay capacity in decisions.", ge=1, le=10**8)
    )
    warmup_steps: int = field(
        default=400,
        metadata=meta("Environment steps of random actions before learning.", ge=0, le=STEPS_MAX),
    )
    updates_per_step: float = field(
        default=0.25, metadata=meta("Gradient updates per environment step.", gt=0, le=1000)
    )
    lr_actor: float = field(
        default=3e-4, metadata=meta("Adam learning rate of the SAC actors.", gt=0, le=10)
    )
    lr_critic: float = field(
        default=1e-3,
        metadata=meta("Adam learning rate of the SAC critics and of DQN's Q network.", gt=0, le=10),
    )
    gamma: float = field(default=0.95, metadata=meta("Discount factor per decision.", ge=0, le=1))
    alpha: float = field(
        default=0.01, metadata=meta("Entropy temperature α at the start.", gt=0, le=100)
    )
    lr_alpha: float = field(
        default=3e-3, metadata=meta("Adam learning rate of log α (tuned).", gt=0, le=10)
    )

    def check(self) -> list[tuple[str, str]]:
        if self.beta_min > self.beta_max:
            return [("beta_min", f"expected ≤ beta_max ({self.beta_max}), got {self.beta_min}")]
        return []

    def learner_settings(self) -> dict[str, float | int]:
        """These settings as DsacArgs / DqnArgs keys (a key one learner lacks is
        ignored for it): DQN's Q network learns at the critics' rate."""
        return {
            "diffusion_steps": self.diffusion_steps, "beta_min": self.beta_min,
            "beta_max": self.beta_max, "time_dim": self.time_dim, "x0_clip": self.x0_clip,
            "hidden": self.hidden, "batch_size": self.batch_size,
            "buffer_size": self.buffer_size, "warmup_steps": self.warmup_steps,
            "updates_per_step": self.updates_per_step, "lr_actor": self.lr_actor,
            "lr_critic": self.lr_critic, "lr": self.lr_critic, "gamma": self.gamma,
            "alpha": self.alpha, "lr_alpha": self.lr_alpha,
        }  # fmt: skip
