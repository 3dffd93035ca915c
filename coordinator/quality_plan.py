"""What the §C live run plans with (docs/quality-live.md): each model's score curve
ŝ_m(k), fitted to the zoo's own gate measurement (`quality-gate.json`: the same
evaluator, 512 requests per point), its latency g_m(k, φ), fitted to requests the run
times on the live edge before slot 0, and the slot's allocation by the chosen method
(testbed/allocation/).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.allocation import (
    Allocation,
    AllocationProblem,
    LatencyFit,
    ModelProfile,
    ScoreCurveFit,
    anneal,
    equal_allocation,
    exhaustive_optimum,
    fit_score_curve,
    optimal_step,
)
from testbed.config import AllocationMethod, TestbedConfig
from testbed.quality.gate import GATE_FILE


class PlanError(ValueError):
    """The zoo or the measurements cannot make a plan; the message says why."""


def gate_score_fits(zoo_dir: Path, model_ids: Sequence[str]) -> dict[str, ScoreCurveFit]:
    """ŝ_m(k) per zoo model id, fitted to the gate's mean scores (one point per step count)."""
    path = zoo_dir / GATE_FILE
    try:
        curves = json.loads(path.read_text())["curves"]
    except (OSError, ValueError, KeyError) as exc:
        raise PlanError(f"no gate measurement to fit score curves to: {path} ({exc})") from None
    fits = {}
    for model_id in model_ids:
        points = curves.get(model_id)
        if not points:
            raise PlanError(f"{path} has no curve of {model_id} (it has {', '.join(curves)})")
        steps = [p["steps"] for p in points]
        fits[model_id] = fit_score_curve(steps, [p["score_mean"] for p in points])
    return fits


def calibration_steps(cfg: TestbedConfig, model: str) -> list[int]:
    """The step counts the latency of `model` is timed at: its fewest and most (a model
    at one fixed count: that count and twice it, so fixed and per-step work part)."""
    steps = cfg.allocation.model_steps(model)
    low, high = min(steps), max(steps)
    return [low, high] if high > low else [low, 2 * low]


def profiles(
    cfg: TestbedConfig, scores: Mapping[str, ScoreCurveFit], latencies: Mapping[str, LatencyFit]
) -> tuple[ModelProfile, ...]:
    """One profile per allocation model, in allocation.models order."""
    out = []
    for model in cfg.allocation.models:
        model_id = cfg.quality.live.model_ids[model]
        out.append(ModelProfile(model, scores[model_id].curve, latencies[model_id].curve,
                                tuple(cfg.allocation.model_steps(model))))  # fmt: skip
    return tuple(out)


@dataclass(frozen=True)
class SlotPlan:
    """A slot's allocation: steps and share per model (allocation.models order)."""

    steps: tuple[int, ...]
    shares: tuple[float, ...]
    planned_utility: float
    """U on the fitted curves (nan: `fixed`, nothing planned)."""
    plan_ms: float


def plan_slot(
    cfg: TestbedConfig, models: tuple[ModelProfile, ...], counts: Sequence[int]
) -> SlotPlan:
    """The slot's allocation by `quality.live.allocation_method` (not `fixed`)."""
    a = cfg.allocation
    problem = AllocationProblem(models, tuple(counts), a.latency_weight_per_s, a.share_slices,
                                a.slot_latency)  # fmt: skip
    method = cfg.quality.live.allocation_method
    t0 = time.perf_counter()
    best: Allocation
    if method is AllocationMethod.SA:
        best = anneal(problem, a.annealing)
    elif method is AllocationMethod.EQUAL:
        best = equal_allocation(problem)
    elif method is AllocationMethod.OPTIMAL_STEP:
        best = optimal_step(problem)
    elif method is AllocationMethod.EXHAUSTIVE:
        best = exhaustive_optimum(problem)
    else:
        raise PlanError(f"allocation method {method.value} plans nothing")
    ms = (time.perf_counter() - t0) * 1e3
    return SlotPlan(best.steps, best.shares, best.utility, ms)
