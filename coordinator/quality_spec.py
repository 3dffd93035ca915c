"""The spec of the §C experiments (docs/quality-experiments.md): which zoo models play
small / medium / large, the step grids, how many requests and seeds, the λ sweep, and
the `allocation:` / `quality:` sections they run with.

A spec is a YAML file (experiments/quality_demo.yaml) loaded with the project's schema
loader. Its `allocation` and `quality` keys are ordinary `AllocationConfig` and
`QualityConfig` sections (testbed/config/allocation.py, testbed/config/quality.py);
`spec_with_sections` swaps in the ones a `TestbedConfig` carries once those sections
are wired into it. Every count and grid here is this project's choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.config.allocation import AllocationConfig
from testbed.config.limits import COUNT_MAX, SEED_END, STEPS_MAX
from testbed.config.quality import QualityConfig
from testbed.schema import load_dataclass, meta

MAX_STEPS = 64
"""Most step counts in a profile grid."""


def _models() -> dict[str, str]:
    return {"small": "digits-s", "medium": "digits-m", "large": "digits-l"}


def _profile_steps() -> list[int]:
    return [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]


def _paper_steps() -> list[int]:
    return list(range(10, 43, 4))


@dataclass(frozen=True)
class ProfileSpec:
    """The quality profile: score and latency against steps, per-category scores."""

    steps: list[int] = field(
        default_factory=_profile_steps,
        metadata=meta("Step counts where steps matter on this zoo (the rise and the "
                      "saturation).", ge=1, le=STEPS_MAX, min_len=3, max_len=MAX_STEPS),
    )  # fmt: skip
    paper_steps: list[int] = field(
        default_factory=_paper_steps,
        metadata=meta(
            "The paper's K, profiled as well.", ge=1, le=STEPS_MAX, min_len=3, max_len=MAX_STEPS
        ),
    )
    requests_per_seed: int = field(
        default=128,
        metadata=meta("Requests (uniform categories) per seed for the score-vs-steps "
                      "curves; the same requests and noise for every model and step count.",
                      ge=4, le=COUNT_MAX),
    )  # fmt: skip
    category_requests: int = field(
        default=200,
        metadata=meta("Requests per category and seed for the per-category score "
                      "distributions on the medium model.", ge=4, le=COUNT_MAX),
    )  # fmt: skip
    reference_steps: int = field(
        default=8,
        metadata=meta("The medium model's steps for the per-category distributions (on "
                      "the plateau of this zoo's curve).", ge=1, le=STEPS_MAX),
    )  # fmt: skip
    latency_repeats: int = field(
        default=10,
        metadata=meta("Timed single-request generations per (model, steps).", ge=2,
                      le=COUNT_MAX),
    )  # fmt: skip


@dataclass(frozen=True)
class SlotSpec:
    """Slots of requests for the assignment and allocation experiments."""

    slots: int = field(default=10, metadata=meta("Slots per seed.", ge=1, le=COUNT_MAX))
    requests_per_slot: int = field(
        default=30, metadata=meta("Requests per slot (the paper's scale).", ge=1, le=COUNT_MAX)
    )


@dataclass(frozen=True)
class QualityExperimentSpec:
    name: str = field(default="quality", metadata=meta("Name of the experiment."))
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 4],
        metadata=meta("Seeds (≥ 5 for the 95 % Student-t intervals).", ge=0, lt=SEED_END,
                      min_len=1, max_len=100),
    )  # fmt: skip
    models: dict[str, str] = field(
        default_factory=_models,
        metadata=meta("allocation.models name → the zoo's generator id."),
    )
    profile: ProfileSpec = field(default_factory=ProfileSpec, metadata=meta("The profile."))
    slots: SlotSpec = field(default_factory=SlotSpec, metadata=meta("The request slots."))
    latency_weights_per_s: list[float] = field(
        default_factory=lambda: [0.2, 100.0, 1000.0, 3000.0, 10000.0],
        metadata=meta("λ values of the allocation's sweep (score per second).", ge=0,
                      le=1e9, min_len=1, max_len=32),
    )  # fmt: skip
    model_loads: list[float] = field(
        default_factory=list,
        metadata=meta("The fraction of the stream each of allocation.models should get "
                      "in expectation, smallest first; the thresholds θ are set from the "
                      "measured μ_c, σ_c to give it (empty: equal). This project's rule.",
                      gt=0, le=1e6, max_len=16),
    )  # fmt: skip
    allocation: AllocationConfig = field(
        default_factory=AllocationConfig,
        metadata=meta("The allocation section the experiments plan with (μ_c, σ_c and "
                      "the thresholds are replaced by the profile's)."),
    )  # fmt: skip
    quality: QualityConfig = field(
        default_factory=QualityConfig, metadata=meta("The quality section (categories).")
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        missing = sorted(set(self.allocation.models) - set(self.models))
        if missing:
            problems.append(("models", f"expected a zoo id for {', '.join(missing)}"))
        if self.model_loads and len(self.model_loads) != len(self.allocation.models):
            problems.append(("model_loads", "expected one load per model (or none)"))
        alloc_names = [c.name for c in self.allocation.categories]
        quality_names = [c.name for c in self.quality.categories]
        if alloc_names != quality_names:
            problems.append(("allocation.categories", "expected the quality categories, "
                             "in the same order"))  # fmt: skip
        return problems

    @property
    def generator_ids(self) -> list[str]:
        """The zoo ids of allocation.models, in order (smallest first)."""
        return [self.models[m] for m in self.allocation.models]


def load_spec(path: str | Path) -> QualityExperimentSpec:
    """The spec in a YAML file; `SchemaError` names every problem."""
    data: Any = yaml.safe_load(Path(path).read_text()) or {}
    return load_dataclass(QualityExperimentSpec, data, "")


def spec_with_sections(
    spec: QualityExperimentSpec,
    allocation: AllocationConfig | None = None,
    quality: QualityConfig | None = None,
) -> QualityExperimentSpec:
    """`spec` with a testbed config's `allocation:` / `quality:` sections instead."""
    return dataclasses.replace(
        spec, allocation=allocation or spec.allocation, quality=quality or spec.quality
    )
