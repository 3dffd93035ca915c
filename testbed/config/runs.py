"""What runs on the bench, as `testbed.yaml` sections: task types and arrivals, the
reward (18), runs, the digital twin and training (MADDPG).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from testbed.config.limits import (
    COUNT_MAX,
    NAME_MAX_LEN,
    STEPS_MAX,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
)
from testbed.schema import meta


@dataclass(frozen=True)
class TaskTypeConfig:
    name: str = field(metadata=meta("Task type name.", max_len=NAME_MAX_LEN))
    model: str = field(
        metadata=meta("Model id in the zoo catalog this type needs.", max_len=NAME_MAX_LEN)
    )
    size_mbit: tuple[float, float] = field(
        metadata=meta("Task size D is drawn uniformly from this range.", gt=0, le=1000)
    )
    density_cycles_per_bit: float = field(metadata=meta("Computational density C.", gt=0, le=1e6))
    deadline_s: float = field(
        metadata=meta("Completed only if latency ≤ this.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S)
    )
    weight: float = field(default=1.0, metadata=meta("Reward weight w_k.", ge=0, le=1e6))
    steps: int | None = field(
        default=None,
        metadata=meta("Denoising steps (diffusion); null: the model's default.", ge=1, le=10_000),
    )

    def check(self) -> list[tuple[str, str]]:
        lo, hi = self.size_mbit
        return [("size_mbit", f"expected low ≤ high, got [{lo}, {hi}]")] if lo > hi else []


def _default_task_types() -> list[TaskTypeConfig]:
    return [
        TaskTypeConfig("health_prediction", "diffusion-s", (1.0, 3.0), 60.0, 2.0, 1.0),
        TaskTypeConfig("process_optimisation", "cgan-s", (1.0, 3.0), 40.0, 2.0, 1.0),
        TaskTypeConfig("safety_monitoring", "ae-s", (1.0, 3.0), 30.0, 1.5, 1.2),
        TaskTypeConfig("health_prediction_hq", "diffusion-l", (1.0, 3.0), 80.0, 3.0, 1.0),
        TaskTypeConfig("process_optimisation_hq", "cgan-l", (1.0, 3.0), 50.0, 3.0, 1.0),
        TaskTypeConfig("safety_monitoring_hq", "ae-l", (1.0, 3.0), 40.0, 2.0, 1.2),
    ]


@dataclass(frozen=True)
class TasksConfig:
    arrival_prob: float = field(
        default=1.0, metadata=meta("Chance a task arrives at an agent in a slot.", ge=0, le=1)
    )
    flops_per_cycle: float = field(
        default=1.0,
        metadata=meta(
            "Model FLOPs one cycle of task work stands for (docs/workload.md).", gt=0, le=1e6
        ),
    )
    num_types: int | None = field(
        default=None, metadata=meta("Use only the first N task types; null: all.", ge=1, le=1000)
    )
    types: list[TaskTypeConfig] = field(
        default_factory=_default_task_types,
        metadata=meta("IIoT AIGC task types.", min_len=1, max_len=1000),
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        names = [t.name for t in self.types]
        for i, name in enumerate(names):
            if names.index(name) != i:
                problems.append((f"types[{i}].name", f"duplicate task type {name!r}"))
        if self.num_types is not None and self.num_types > len(self.types):
            problems.append(
                ("num_types", f"expected ≤ {len(self.types)} (types listed), got {self.num_types}")
            )
        return problems

    @property
    def active_types(self) -> list[TaskTypeConfig]:
        return self.types[: self.num_types] if self.num_types else list(self.types)


class FailedLatency(enum.StrEnum):
    """The T that the reward (18) charges a task that was not completed (docs/papers.md)."""

    ELAPSED = "elapsed"
    """The time until it failed or finished late; a task never served: its deadline."""
    DEADLINE = "deadline"
    """At least its deadline, however soon it failed: refusing a task saves no time."""


@dataclass(frozen=True)
class RewardConfig:
    omega_latency: float = field(default=0.5, metadata=meta("ω1, latency weight.", ge=0, le=1))
    omega_energy: float = field(default=0.5, metadata=meta("ω2, energy weight.", ge=0, le=1))
    latency_scale_s: float = field(
        default=1.0, metadata=meta("Latency is divided by this.", gt=0, le=1e6)
    )
    energy_scale_j: float = field(
        default=1.0, metadata=meta("Energy is divided by this.", gt=0, le=1e9)
    )
    penalty: float = field(
        default=2.0, metadata=meta("φ, penalty when a constraint fails.", ge=0, le=1e6)
    )
    failed_latency: FailedLatency = field(
        default=FailedLatency.ELAPSED,
        metadata=meta(
            "T charged to a task not completed: elapsed (the time until it failed; never "
            "served: its deadline) or deadline (at least its deadline)."
        ),
    )

    def check(self) -> list[tuple[str, str]]:
        if not math.isclose(self.omega_latency + self.omega_energy, 1.0, abs_tol=1e-9):
            total = self.omega_latency + self.omega_energy
            return [("omega_energy", f"expected omega_latency + omega_energy = 1, got {total:g}")]
        return []


class BenchSystem(enum.StrEnum):
    """Which paper's system the live bench runs (docs/live-loop.md)."""

    MATO = "mato"
    """docs/papers.md §A: boards offload a share of each task to one edge (MADDPG-MATO)."""
    COEDGE = "coedge"
    """docs/papers.md §B: one scheduler per base station splits tasks over the edges."""


class SlotMode(enum.StrEnum):
    """How the live loop clocks its slots (docs/live-loop.md)."""

    BARRIER = "barrier"
    """A slot ends when every board has finished it (MADDPG-MATO)."""
    CLOCKED = "clocked"
    """Slot s starts at t0 + s·coedge.slot_s whether or not earlier tasks finished;
    backlogs carry over (§B)."""


@dataclass(frozen=True)
class RunConfig:
    out_dir: str = field(default="runs", metadata=meta("Where run folders are written.", path=True))
    slots: int = field(default=30, metadata=meta("Slots per run.", ge=1, le=STEPS_MAX))
    policy: str = field(
        default="greedy",
        metadata=meta("random, greedy, local, offload or an ONNX actor's path.", path=True),
    )
    step_timeout_s: float = field(
        default=120.0, metadata=meta("Longest wait for a slot.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S)
    )
    task_timeout_s: float = field(
        default=60.0,
        metadata=meta(
            "Longest wait for an edge's answer to a task.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S
        ),
    )
    start_timeout_s: float = field(
        default=60.0,
        metadata=meta("Longest wait for a node process to come up.", ge=0.1, le=TIMEOUT_MAX_S),
    )
    system: BenchSystem = field(
        default=BenchSystem.MATO,
        metadata=meta("mato (docs/papers.md §A) or coedge (§B): the system the live bench runs."),
    )
    slot_mode: SlotMode = field(
        default=SlotMode.BARRIER,
        metadata=meta("barrier (a slot waits for every board) or clocked (Δ = coedge.slot_s)."),
    )


class SharedHost(enum.StrEnum):
    """Whether the twin prices a slot's compute by how many computations share the host's
    cores (docs/twin.md, "Contention on a shared host")."""

    AUTO = "auto"  # on for the embedded bench (every node a process of one host)
    ON = "on"
    OFF = "off"  # one price per unit whatever the slot's mix (real boards)
    PROCESSOR_SHARING = "processor_sharing"  # on, each computation priced by what overlaps it


@dataclass(frozen=True)
class TwinConfig:
    calibration: str | None = field(
        default=None,
        metadata=meta(
            "calibration.json from `testbed calibrate`; null: the paper's model (f, κ).",
            path=True,
        ),
    )
    episode_slots: int = field(
        default=50, metadata=meta("Slots per twin episode.", ge=1, le=STEPS_MAX)
    )
    shared_host: SharedHost | bool = field(
        default=SharedHost.OFF,
        metadata=meta(
            "Price compute by the slot's contention for the calibrated host's cores (needs "
            "a calibration that recorded it): auto (on for the embedded bench), on, off "
            "(the default: docs/twin.md says why), processor_sharing (each computation "
            "priced by what overlaps it within the slot)."
        ),
    )

    def __post_init__(self) -> None:
        if isinstance(self.shared_host, bool):  # YAML's on/off
            object.__setattr__(self, "shared_host", SharedHost(("off", "on")[self.shared_host]))

    def host_shared(self, remote: bool) -> bool:
        """Whether the nodes share one host; `remote`: a bench of hosts (`inventory.remote`)."""
        return self.shared_host in (SharedHost.ON, SharedHost.PROCESSOR_SHARING) or (
            self.shared_host is SharedHost.AUTO and not remote
        )


class CriticInput(enum.StrEnum):
    """What a centralised critic sees (docs/algorithms.md, "The critic's input")."""

    COMPACT = "compact"
    """Own observation, the others' varying features and all actions, standardised."""
    PAPER = "paper"
    """The paper's literal input: all N observations and all N actions, raw."""
    MEAN_FIELD = "mean_field"
    """Own observation and action, the others' varying features and actions averaged:
    as wide at 20 devices as at 5."""


@dataclass(frozen=True)
class TrainConfig:
    lr_actor: float = field(default=0.001, metadata=meta("Actor learning rate.", gt=0, le=10))
    lr_critic: float = field(default=0.001, metadata=meta("Critic learning rate.", gt=0, le=10))
    gamma: float = field(default=0.95, metadata=meta("Discount factor γ.", ge=0, le=1))
    tau: float = field(default=0.01, metadata=meta("Soft target update rate τ.", gt=0, le=1))
    buffer_size: int = field(
        default=10000, metadata=meta("Replay capacity (joint steps).", ge=1, le=10**8)
    )
    batch_size: int = field(default=1024, metadata=meta("Minibatch size.", ge=1, le=COUNT_MAX))
    hidden: int = field(
        default=256, metadata=meta("Width of the two hidden layers.", ge=1, le=65_536)
    )
    num_envs: int = field(
        default=16, metadata=meta("Twin environments stepped together.", ge=1, le=4096)
    )
    steps: int = field(
        default=3000, metadata=meta("Environment steps (each: num_envs slots).", ge=1, le=STEPS_MAX)
    )
    warmup_steps: int = field(
        default=100,
        metadata=meta("Random-action steps before learning starts.", ge=0, le=STEPS_MAX),
    )
    updates_per_step: int = field(
        default=1, metadata=meta("Gradient updates per step.", ge=1, le=1000)
    )
    noise_start: float = field(
        default=0.3, metadata=meta("Exploration noise on the ratio at the start.", ge=0, le=100)
    )
    noise_end: float = field(
        default=0.02, metadata=meta("Exploration noise on the ratio at the end.", ge=0, le=100)
    )
    gumbel_temperature: float = field(
        default=1.0, metadata=meta("Temperature of the Gumbel-softmax relaxations.", gt=0, le=100)
    )
    logit_reg: float = field(
        default=0.001,
        metadata=meta(
            "Weight of mean(logits²) in the actor loss (keeps heads unsaturated).", ge=0, le=100
        ),
    )
    critic_input: CriticInput = field(
        default=CriticInput.COMPACT,
        metadata=meta(
            "compact (standardised, global state once), paper (N obs + N actions) or "
            "mean_field (own obs and action, the others' averaged)."
        ),
    )
    explore_eps_start: float = field(
        default=0.2,
        metadata=meta("ε floor of the sampled target and download flag at the start.", ge=0, le=1),
    )
    explore_eps_end: float = field(
        default=0.02, metadata=meta("... decayed linearly to this at the end.", ge=0, le=1)
    )
    grad_clip_norm: float = field(
        default=0.5,
        metadata=meta("Per-agent gradient-norm clip of actors and critics (0: off).", ge=0, le=1e6),
    )
    share_parameters: bool = field(
        default=False,
        metadata=meta("One actor and one critic for all agents, with agent-id features."),
    )
    ratio_margin: float = field(
        default=0.0,
        metadata=meta(
            "δ: the MADDPG actors' ratio is clamp((1 + 2δ)·σ(z) − δ, 0, 1), which reaches "
            "exactly 0 and 1 (whole offload); 0: σ(z), the paper's.",
            ge=0,
            le=0.25,
        ),
    )
    team_reward: float = field(
        default=0.0,
        metadata=meta(
            "α: the MADDPG and MAPPO learners train on (1 − α)·r_i + α·(the slot's mean "
            "reward over the devices with a task); 0: each device's own reward (18), the "
            "paper's.",
            ge=0,
            le=1,
        ),
    )
    checkpoint_every: int = field(
        default=500, metadata=meta("Steps between checkpoints.", ge=1, le=STEPS_MAX)
    )
    eval_every: int = field(
        default=250, metadata=meta("Steps between evaluations.", ge=1, le=STEPS_MAX)
    )
    eval_episodes: int = field(
        default=4, metadata=meta("Episodes per evaluation.", ge=1, le=COUNT_MAX)
    )
    threads: int = field(default=2, metadata=meta("torch threads.", ge=1, le=1024))
