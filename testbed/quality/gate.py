"""The quality gate: is the evaluator's score worth fitting curves to? (no torch)

The zoo build measures, on the exported files, every generator's score at the gate's
step counts (the same requests and starting noise for every model, so differences are
paired) and the evaluator's score of real held-out pairs against the same images with
shuffled conditions. `judge` turns those numbers into a verdict with reasons:

1. separation: matched real pairs score above shuffled ones, AUROC ≥ the gate's least;
2. rise: every generator's score at the most steps exceeds its score at the fewest
   by more than `se_factor` standard errors of the paired difference;
3. saturation: the curve ends on a plateau — the change over the last doubling of
   steps, and the drop from the best score to the score at the most steps, are each
   at most `saturation_fraction` of the rise from the fewest steps to the best (a
   curve still climbing, or one that falls back, fails);
4. ranking: at every gate step count ≥ `rank_min_steps`, small < medium < large, each
   gap above `se_factor` standard errors of the paired difference.

The verdict and its figures go into the evaluator's catalog entry (`metrics`) and into
`quality-gate.json` beside the catalog; `quality_gate_passed` reads the catalog, for
the §C experiments to refuse to run on a zoo that failed (docs/quality.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from testbed.config.quality import QualityGateConfig
from testbed.quality.evaluator import BUILTIN_EVALUATOR_ID
from testbed.schema import meta
from testbed.zoo.catalog import Catalog, UnknownModel

GATE_FILE = "quality-gate.json"
PASSED_METRIC = "gate_passed"
"""The evaluator entry's metric: 1.0 if the gate passed, 0.0 if not."""


@dataclass(frozen=True)
class CurvePoint:
    """One generator at one step count."""

    steps: int = field(metadata=meta("Denoising steps.", ge=1))
    score_mean: float = field(metadata=meta("Mean score over the gate's requests."))
    score_se: float = field(metadata=meta("Standard error of that mean.", ge=0))
    frechet: float = field(metadata=meta("Fréchet distance to held-out real images, "
                                         "evaluator features.", ge=0))  # fmt: skip


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict and the numbers behind it (`quality-gate.json`)."""

    passed: bool = field(metadata=meta("Whether every check passed."))
    failures: list[str] = field(metadata=meta("Why not, one line per failed check."))
    samples: int = field(metadata=meta("Requests per (generator, steps) point.", ge=1))
    separation_auroc: float = field(metadata=meta("AUROC of matched vs shuffled real pairs."))
    matched_mean: float = field(metadata=meta("Mean score of matched real pairs."))
    shuffled_mean: float = field(metadata=meta("Mean score of shuffled real pairs."))
    real_frechet: float = field(
        metadata=meta("Fréchet distance between two halves of the held-out real images "
                      "(the floor).", ge=0),
    )  # fmt: skip
    curves: dict[str, list[CurvePoint]] = field(metadata=meta("Per generator, smallest first."))
    rank_gaps: dict[str, list[float]] = field(
        metadata=meta("Per step count ≥ rank_min_steps: the paired gaps medium − small and "
                      "large − medium, in standard errors.", finite=False),
    )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The summary that goes into the evaluator's catalog entry."""
        out = {
            PASSED_METRIC: 1.0 if self.passed else 0.0,
            "separation_auroc": self.separation_auroc,
            "matched_mean": self.matched_mean,
            "shuffled_mean": self.shuffled_mean,
        }
        for model, points in self.curves.items():
            out[f"{model}_score_k{points[0].steps}"] = points[0].score_mean
            out[f"{model}_score_k{points[-1].steps}"] = points[-1].score_mean
        return {k: round(v, 6) for k, v in out.items()}


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted ½ (rank-based)."""
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_vals = values[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def paired_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean of b − a, its standard error) for paired samples."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def _in_se(gap: float, se: float) -> float:
    return gap / se if se > 0 else (math.inf if gap > 0 else -math.inf if gap < 0 else 0.0)


def _curve_failures(
    model: str, by_steps: dict[int, np.ndarray], steps: list[int], cfg: QualityGateConfig
) -> list[str]:
    """The rise and saturation checks of one generator's score-vs-steps curve."""
    means = {k: float(by_steps[k].mean()) for k in steps}
    gain, se = paired_gap(by_steps[steps[0]], by_steps[steps[-1]])
    if _in_se(gain, se) <= cfg.se_factor:
        return [f"rise: {model} gains {gain:+.3f} from {steps[0]} to {steps[-1]} steps, not "
                f"above {cfg.se_factor} SE ({se:.3f})"]  # fmt: skip
    best = max(steps, key=lambda k: means[k])
    failures = []
    allowed = cfg.saturation_fraction * (means[best] - means[steps[0]])
    last = means[steps[-1]] - means[steps[-2]]
    if abs(last) > allowed:
        failures.append(f"saturation: {model} changes {last:+.3f} from {steps[-2]} to "
                        f"{steps[-1]} steps, more than {allowed:.3f}")  # fmt: skip
    fall = means[best] - means[steps[-1]]
    if fall > allowed:
        failures.append(f"saturation: {model} falls {fall:.3f} from its best ({best} steps) "
                        f"to {steps[-1]} steps, more than {allowed:.3f}")  # fmt: skip
    return failures


def judge(
    scores: dict[str, dict[int, np.ndarray]],
    frechet: dict[str, dict[int, float]],
    matched: np.ndarray,
    shuffled: np.ndarray,
    real_frechet: float,
    cfg: QualityGateConfig,
) -> GateReport:
    """The verdict on measured scores: `scores[model][steps]` (n,) paired across models
    and steps, models smallest first; `matched`/`shuffled` real-pair scores."""
    failures = []
    sep = auroc(matched, shuffled)
    if sep < cfg.min_separation_auroc:
        failures.append(f"separation: matched vs shuffled real pairs AUROC {sep:.3f} < "
                        f"{cfg.min_separation_auroc}")  # fmt: skip
    steps = sorted(cfg.steps)
    curves = {}
    for model, by_steps in scores.items():
        curves[model] = [
            CurvePoint(k, float(s.mean()), float(s.std(ddof=1) / math.sqrt(len(s))),
                       frechet[model][k])
            for k, s in sorted(by_steps.items())
        ]  # fmt: skip
        failures += _curve_failures(model, by_steps, steps, cfg)
    models = list(scores)
    rank_gaps: dict[str, list[float]] = {}
    for k in (k for k in steps if k >= cfg.rank_min_steps):
        gaps = []
        for lo, hi in itertools.pairwise(models):
            gap, se = paired_gap(scores[lo][k], scores[hi][k])
            gaps.append(_in_se(gap, se))
            if gaps[-1] <= cfg.se_factor:
                failures.append(f"ranking: at {k} steps {hi} − {lo} = {gap:+.3f}, not above "
                                f"{cfg.se_factor} SE ({se:.3f})")  # fmt: skip
        rank_gaps[str(k)] = gaps
    return GateReport(
        passed=not failures,
        failures=failures,
        samples=len(next(iter(scores.values()))[steps[0]]),
        separation_auroc=sep,
        matched_mean=float(np.mean(matched)),
        shuffled_mean=float(np.mean(shuffled)),
        real_frechet=real_frechet,
        curves=curves,
        rank_gaps=rank_gaps,
    )


def quality_gate_passed(catalog: Catalog) -> bool:
    """Whether the catalog's evaluator passed the gate at build time (False if the
    catalog has no evaluator, or an operator's evaluator without a gate record)."""
    try:
        entry = catalog.get(BUILTIN_EVALUATOR_ID)
    except UnknownModel:
        return False
    return entry.metrics.get(PASSED_METRIC) == 1.0
