"""The `allocation:` section of `testbed.yaml`: the system of docs/papers.md §C — one
edge server hosting models of several sizes, each request assigned to a model by its
category (probabilistic assignment, eqs. 9–10), and each model's denoising steps and
compute share chosen by simulated annealing (eq. 11). docs/allocation.md describes the
model and every choice below.

Defaults from the paper where it gives them: λ = 0.2, θ1 = 29.5 and θ2 = 33.8 (on the
paper's CLIPScore axis: this testbed's evaluator has its own axis, so the thresholds
are re-set from measured category scores), K = {10, 14, …, 42}, the small model fixed
at 1 step, the four categories. Everything else is this project's choice and its field
doc says so.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from itertools import pairwise

from testbed.config.limits import COUNT_MAX, SEED_END, STEPS_MAX
from testbed.schema import meta

MAX_MODELS = 16
"""Most models on the allocating edge server."""
MAX_CATEGORIES = 64
"""Most request categories."""
MAX_STEP_GRID = 256
"""Most step counts in K."""
MAX_SHARE_SLICES = 1000
"""Finest share grid: φ in steps of 0.001."""
SCORE_LIMIT = 1e6
"""Scores and thresholds lie within ±SCORE_LIMIT (CLIPScore is in [0, 100])."""
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class SlotLatency(enum.StrEnum):
    """Which latency the utility charges a model's tasks in a slot (docs/allocation.md,
    "The latency of a slot")."""

    PER_TASK = "per_task"
    """The paper's eq. 2: every task of model m takes T_m = g_m(k_m, φ_m·C), as if each
    ran alone at its model's share (the tasks of one model do not wait for each other)."""
    QUEUED = "queued"
    """Model m runs its N_m tasks one after another at share φ_m: the n-th finishes at
    n·g_m(k_m, φ_m·C), so the slot's latency of model m is g_m·N_m(N_m + 1)/2."""


class AssignmentMethod(enum.StrEnum):
    """How requests are assigned to models (testbed/allocation/assignment.py)."""

    PROBABILISTIC = "probabilistic"
    """The paper's: model m with probability P_cm."""
    DIRECT = "direct"
    """A whole category to one model (`allocation.direct_rule` says which)."""
    RANDOM = "random"
    """Every request to a model drawn uniformly."""


class DirectRule(enum.StrEnum):
    """Which single model Direct-assignment gives a whole category."""

    MEAN_INTERVAL = "mean_interval"
    """The model whose score interval holds the category's mean μ_c."""
    MOST_LIKELY = "most_likely"
    """The model of largest assignment probability P_cm."""


def _default_models() -> list[str]:
    return ["small", "medium", "large"]


def _default_thresholds() -> list[float]:
    return [29.5, 33.8]


def _default_step_grid() -> list[int]:
    return list(range(10, 43, 4))


def _default_fixed_steps() -> dict[str, int]:
    return {"small": 1}


@dataclass(frozen=True)
class CategoryConfig:
    """One request category (the paper's Basic, Imagination, Detail, Complex)."""

    name: str = field(metadata=meta("Category name.", pattern=NAME_PATTERN))
    weight: float = field(
        default=1.0,
        metadata=meta(
            "Relative frequency of the category in the request stream (normalised over "
            "the categories); this project's choice: all equal.",
            ge=0, le=1e6,
        ),
    )  # fmt: skip
    score_mean: float | None = field(
        default=None,
        metadata=meta(
            "μ_c: the category's mean score on the reference (medium) model, on the "
            "evaluator's axis; null: not measured yet (assignment refuses to run).",
            ge=-SCORE_LIMIT, le=SCORE_LIMIT,
        ),
    )  # fmt: skip
    score_std: float | None = field(
        default=None,
        metadata=meta(
            "σ_c: the standard deviation of that score; null with score_mean.",
            gt=0, le=SCORE_LIMIT,
        ),
    )  # fmt: skip

    @property
    def measured(self) -> bool:
        return self.score_mean is not None and self.score_std is not None

    def check(self) -> list[tuple[str, str]]:
        if (self.score_mean is None) != (self.score_std is None):
            return [("score_std", "expected score_mean and score_std both set or both null")]
        return []


def _default_categories() -> list[CategoryConfig]:
    return [CategoryConfig(name) for name in ("basic", "imagination", "detail", "complex")]


@dataclass(frozen=True)
class AnnealingConfig:
    """Simulated annealing over (k_m, φ_m), eq. 11. The paper's Algorithm 1 was lost
    from its text: every parameter here is this project's choice (docs/allocation.md,
    "Simulated annealing")."""

    initial_temperature: float | None = field(
        default=None,
        metadata=meta(
            "Start temperature, in utility per task (score units); null: set so that "
            "the start's mean worsening neighbour is accepted with probability "
            "initial_acceptance. This project's choice.",
            gt=0, le=1e9,
        ),
    )  # fmt: skip
    initial_acceptance: float = field(
        default=0.8,
        metadata=meta(
            "With initial_temperature null: the chance of accepting the start's mean "
            "worsening neighbour. This project's choice.",
            gt=0, lt=1,
        ),
    )  # fmt: skip
    cooling: float = field(
        default=0.95,
        metadata=meta("α: T ← α·T after each temperature level. This project's choice.",
                      gt=0, lt=1),
    )  # fmt: skip
    final_temperature_ratio: float = field(
        default=1e-3,
        metadata=meta(
            "T_min as a fraction of the start temperature: annealing stops below it. "
            "This project's choice.",
            gt=0, lt=1,
        ),
    )  # fmt: skip
    moves_per_temperature: int = field(
        default=20,
        metadata=meta("Neighbours tried at each temperature level. This project's choice.",
                      ge=1, le=COUNT_MAX),
    )  # fmt: skip
    step_move_prob: float = field(
        default=0.5,
        metadata=meta(
            "Chance that a neighbour moves one model's steps by one step of K (else it "
            "moves share_slices_per_move slices of compute between two models). This "
            "project's choice.",
            ge=0, le=1,
        ),
    )  # fmt: skip
    slices_per_move: int = field(
        default=1,
        metadata=meta("Share-grid slices a compute move shifts. This project's choice.",
                      ge=1, le=MAX_SHARE_SLICES),
    )  # fmt: skip
    seed: int = field(
        default=0,
        metadata=meta("Seed of the annealing's random moves. This project's choice.",
                      ge=0, lt=SEED_END),
    )  # fmt: skip

    @property
    def levels(self) -> int:
        """Temperature levels from T0 down to T_min: the smallest L with α^L ≤ ratio."""
        return max(1, math.ceil(math.log(self.final_temperature_ratio) / math.log(self.cooling)))


@dataclass(frozen=True)
class AllocationConfig:
    models: list[str] = field(
        default_factory=_default_models,
        metadata=meta(
            "The edge server's models, smallest first (small, medium, large in the "
            "paper: SDXL-Turbo, SD 1.5, SDXL); one more than score_thresholds.",
            pattern=NAME_PATTERN, min_len=1, max_len=MAX_MODELS,
        ),
    )  # fmt: skip
    categories: list[CategoryConfig] = field(
        default_factory=_default_categories,
        metadata=meta("Request categories (the paper's four).", min_len=1,
                      max_len=MAX_CATEGORIES),
    )  # fmt: skip
    score_thresholds: list[float] = field(
        default_factory=_default_thresholds,
        metadata=meta(
            "θ_1 < θ_2 < …: score levels between consecutive models (paper: 29.5, 33.8 "
            "CLIPScore; re-set from measured μ_c on the evaluator's axis).",
            ge=-SCORE_LIMIT, le=SCORE_LIMIT, max_len=MAX_MODELS - 1,
        ),
    )  # fmt: skip
    latency_weight_per_s: float = field(
        default=0.2,
        metadata=meta("λ: score traded for one second of latency (paper: 0.2).", ge=0,
                      le=1e6),
    )  # fmt: skip
    step_grid: list[int] = field(
        default_factory=_default_step_grid,
        metadata=meta("K: the denoising step counts a model may run (paper: 10, 14, …, 42).",
                      ge=1, le=STEPS_MAX, min_len=1, max_len=MAX_STEP_GRID),
    )  # fmt: skip
    fixed_steps: dict[str, int] = field(
        default_factory=_default_fixed_steps,
        metadata=meta(
            "Models run at a fixed step count outside K (paper: the small, distilled "
            "model at 1 step; here a small diffusion model stands in).",
            ge=1, le=STEPS_MAX,
        ),
    )  # fmt: skip
    share_slices: int = field(
        default=20,
        metadata=meta(
            "The compute is cut into this many equal slices; φ_m is a whole number of "
            "them (20: φ in steps of 0.05). This project's choice.",
            ge=1, le=MAX_SHARE_SLICES,
        ),
    )  # fmt: skip
    slot_latency: SlotLatency = field(
        default=SlotLatency.PER_TASK,
        metadata=meta(
            "per_task: every task of model m takes g_m(k_m, φ_m·C) (the paper's eq. 2); "
            "queued: model m's n-th task of the slot waits for the n − 1 before it. "
            "This project's choice: the paper's."
        ),
    )  # fmt: skip
    direct_rule: DirectRule = field(
        default=DirectRule.MEAN_INTERVAL,
        metadata=meta(
            "Direct-assignment's model per category: the interval holding μ_c, or the "
            "largest P_cm. This project's choice."
        ),
    )  # fmt: skip
    annealing: AnnealingConfig = field(
        default_factory=AnnealingConfig,
        metadata=meta("Simulated annealing over steps and shares (eq. 11)."),
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if len(set(self.models)) != len(self.models):
            problems.append(("models", "expected distinct names"))
        if len(self.score_thresholds) != len(self.models) - 1:
            want = len(self.models) - 1
            got = len(self.score_thresholds)
            problems.append(("score_thresholds", f"expected {want} (models − 1), got {got}"))
        if any(a >= b for a, b in pairwise(self.score_thresholds)):
            problems.append(("score_thresholds", "expected strictly increasing"))
        if any(a >= b for a, b in pairwise(self.step_grid)):
            problems.append(("step_grid", "expected strictly increasing"))
        unknown = sorted(set(self.fixed_steps) - set(self.models))
        if unknown:
            problems.append(("fixed_steps", f"expected model names, got {', '.join(unknown)}"))
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            problems.append(("categories", "expected distinct names"))
        if sum(c.weight for c in self.categories) <= 0:
            problems.append(("categories", "expected a positive weight on some category"))
        if self.share_slices < len(self.models):
            problems.append(("share_slices", f"expected ≥ {len(self.models)} (one per model)"))
        return problems

    def model_steps(self, model: str) -> list[int]:
        """The step counts model `model` may run: its fixed one, else K."""
        fixed = self.fixed_steps.get(model)
        return [fixed] if fixed is not None else list(self.step_grid)
