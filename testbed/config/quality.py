"""The `quality:` section of `testbed.yaml`: how the quality of a generated sample is
measured for the system of docs/papers.md §C (docs/quality.md).

The paper scores Stable Diffusion images with CLIPScore on four prompt categories
(basic, imagination, detail, complex). Here a request is a condition on a real image
set (scikit-learn's bundled handwritten digits): each category fixes some properties
of the image and leaves the others open, and the zoo's own evaluator (or an
operator's CLIP ONNX file) scores how well a sample matches. Every value below is
this project's choice, as the paper's data and models are not available here; the
field docs say so. The section is read by the zoo build and the quality gate.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from testbed.config.limits import COUNT_MAX, SEED_END, STEPS_MAX
from testbed.config.quality_live import QualityLiveConfig
from testbed.schema import meta

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
MAX_GATE_STEPS = 32
"""Most step counts the gate measures."""


class ConditionAttribute(enum.StrEnum):
    """A property of a digit image that a request can fix (docs/quality.md)."""

    DIGIT = "digit"
    """The digit class: the sample must show this digit."""
    DIGIT_PAIR = "digit_pair"
    """Either of two digit classes: the sample must show one of them."""
    THICKNESS = "thickness"
    """The stroke thickness (ink) tercile within the digit's class: thin, regular, bold."""
    SLANT = "slant"
    """The slant tercile within the digit's class: leaning left, upright, leaning right."""


class EvaluatorKind(enum.StrEnum):
    """Which model scores a sample against its request."""

    BUILTIN = "builtin"
    """The zoo's evaluator (`digits-eval` in the catalog), trained on real pairs."""
    OPERATOR_CLIP = "operator_clip"
    """An operator's CLIP ONNX file: image and text-token inputs, two embeddings out."""


@dataclass(frozen=True)
class QualityCategory:
    """One request category: the properties its requests fix."""

    name: str = field(metadata=meta("Category name: the one list of names "
                                    "(allocation.categories follows it, in order).",
                                    pattern=NAME_PATTERN))  # fmt: skip
    fixes: list[ConditionAttribute] = field(
        metadata=meta("The properties a request of this category fixes; the others stay "
                      "open. This project's choice.", min_len=1, max_len=4),
    )  # fmt: skip

    def check(self) -> list[tuple[str, str]]:
        problems = []
        digits = {ConditionAttribute.DIGIT, ConditionAttribute.DIGIT_PAIR} & set(self.fixes)
        if len(digits) != 1:
            problems.append(("fixes", "expected exactly one of digit, digit_pair"))
        if len(set(self.fixes)) != len(self.fixes):
            problems.append(("fixes", "expected distinct attributes"))
        return problems


def _default_categories() -> list[QualityCategory]:
    a = ConditionAttribute
    return [
        QualityCategory("basic", [a.DIGIT]),
        QualityCategory("imagination", [a.DIGIT_PAIR, a.SLANT]),
        QualityCategory("detail", [a.DIGIT, a.THICKNESS]),
        QualityCategory("complex", [a.DIGIT, a.THICKNESS, a.SLANT]),
    ]


@dataclass(frozen=True)
class OperatorClipConfig:
    """An operator's CLIP model as one ONNX file (image and text towers in one graph)."""

    file: str = field(default="", metadata=meta("The ONNX file ('' : none).", path=True))
    image_input: str = field(
        default="pixel_values", metadata=meta("Name of the image input (B, 3, H, W) float32.")
    )
    text_input: str = field(
        default="input_ids", metadata=meta("Name of the token input (B, L) int64.")
    )
    mask_input: str = field(
        default="attention_mask", metadata=meta("Name of the attention-mask input ('' : none).")
    )
    image_output: str = field(
        default="image_embeds", metadata=meta("Name of the image-embedding output.")
    )
    text_output: str = field(
        default="text_embeds", metadata=meta("Name of the text-embedding output.")
    )
    weight: float = field(
        default=2.5,
        metadata=meta("w of CLIPScore = 100·w·max(cos, 0) (Hessel et al. use 2.5).",
                      gt=0, le=100),
    )  # fmt: skip


@dataclass(frozen=True)
class QualityGateConfig:
    """What the zoo's quality gate demands (docs/quality.md, "The gate"). Every
    threshold is this project's choice."""

    steps: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32],
        metadata=meta("Denoising steps the gate samples every generator at (increasing).",
                      ge=1, le=STEPS_MAX, min_len=3, max_len=MAX_GATE_STEPS),
    )  # fmt: skip
    samples: int = field(
        default=512,
        metadata=meta("Requests per (model, steps) point (the same requests and noise for "
                      "all: differences are paired).", ge=16, le=COUNT_MAX),
    )  # fmt: skip
    rank_min_steps: int = field(
        default=8,
        metadata=meta("The size ranking small < medium < large is demanded at every gate "
                      "step count from this one on.", ge=1, le=STEPS_MAX),
    )  # fmt: skip
    se_factor: float = field(
        default=1.0,
        metadata=meta("A difference counts when it exceeds this many standard errors.",
                      ge=0, le=100),
    )  # fmt: skip
    saturation_fraction: float = field(
        default=0.25,
        metadata=meta("Saturation: the score gained over the last doubling of steps is "
                      "at most this fraction of the gain from the fewest steps.", gt=0, le=1),
    )  # fmt: skip
    min_separation_auroc: float = field(
        default=0.8,
        metadata=meta("Matched vs shuffled real pairs: the least AUROC of the score.",
                      ge=0.5, le=1),
    )  # fmt: skip


@dataclass(frozen=True)
class QualityConfig:
    categories: list[QualityCategory] = field(
        default_factory=_default_categories,
        metadata=meta("Request categories and what each fixes (the paper's four).",
                      min_len=1, max_len=16),
    )  # fmt: skip
    evaluator: EvaluatorKind = field(
        default=EvaluatorKind.BUILTIN, metadata=meta("Which model scores the samples.")
    )
    operator_clip: OperatorClipConfig = field(
        default_factory=OperatorClipConfig,
        metadata=meta("The operator's CLIP file, with evaluator: operator_clip."),
    )
    gate: QualityGateConfig = field(
        default_factory=QualityGateConfig, metadata=meta("The zoo build's quality gate.")
    )
    seed: int = field(
        default=0,
        metadata=meta("Seed of the gate's requests and noise.", ge=0, lt=SEED_END),
    )
    live: QualityLiveConfig = field(
        default_factory=QualityLiveConfig,
        metadata=meta("`testbed quality run`: the §C system on the live bench "
                      "(docs/quality-live.md)."),
    )  # fmt: skip

    def check(self) -> list[tuple[str, str]]:
        problems = []
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            problems.append(("categories", "expected distinct names"))
        if any(a >= b for a, b in itertools.pairwise(self.gate.steps)):
            problems.append(("gate.steps", "expected strictly increasing"))
        if self.evaluator is EvaluatorKind.OPERATOR_CLIP and not self.operator_clip.file:
            problems.append(("operator_clip.file", "expected a file with operator_clip"))
        return problems

    def category(self, name: str) -> QualityCategory:
        """The category named `name`; `KeyError` naming the known ones."""
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(
            f"unknown category {name!r}; known: {', '.join(c.name for c in self.categories)}"
        )
