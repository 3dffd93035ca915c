"""The two fitted models the allocation plans with (docs/allocation.md, "The model"):

- the score curve ŝ_m(k) = a − b·e^(−k/c) of model m over its denoising steps k,
  saturating at a (the paper fits a saturating curve without giving its form: this
  form is this project's choice), fitted by least squares to measured (steps, score)
  points;
- the latency g_m(k, φ·C) = (fixed_s + per_step_s·k) / φ: linear in k, inversely
  proportional to the compute share φ (docs/papers.md §C eq. 2), with both
  coefficients in seconds at the whole server's compute (φ = 1), fitted to measured
  (steps, share, seconds) points by non-negative least squares.

Each fit reports its quality (R², RMSE, standard errors) so a caller can refuse to
plan with a curve fitted to noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ScoreCurve:
    """ŝ(k) = ceiling_score − gap_score·e^(−k/scale_steps)."""

    ceiling_score: float
    """a: the score many steps approach."""
    gap_score: float
    """b ≥ 0: how far below the ceiling the curve starts (at k = 0)."""
    scale_steps: float
    """c > 0: the steps over which the gap shrinks by e."""

    def __call__(self, steps: Any) -> Any:
        k = np.asarray(steps, dtype=np.float64)
        return self.ceiling_score - self.gap_score * np.exp(-k / self.scale_steps)

    @classmethod
    def constant(cls, score: float) -> ScoreCurve:
        """A flat curve: a model measured at one step count only (a fixed-step model)."""
        return cls(float(score), 0.0, 1.0)


@dataclass(frozen=True)
class ScoreCurveFit:
    curve: ScoreCurve
    r_squared: float
    """1 − SS_res/SS_tot over the points (1.0 when the points are all equal and fitted)."""
    rmse_score: float
    stderr: tuple[float, float, float]
    """Standard errors of (a, b, c) from the fit's covariance; inf where unidentified."""
    points: int


def _r_squared(observed: Array, fitted: Array) -> float:
    residual = float(np.sum((observed - fitted) ** 2))
    total = float(np.sum((observed - observed.mean()) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def fit_score_curve(steps: Any, scores: Any) -> ScoreCurveFit:
    """Least squares of a − b·e^(−k/c) through the (steps, score) points, b ≥ 0 and
    c > 0 (a curve that only rises). Repeated step counts are fine (one point per
    sample): the fit is of the mean. Needs three distinct step counts (three
    parameters); a fixed-step model takes `ScoreCurve.constant` instead."""
    from scipy.optimize import curve_fit

    k = np.asarray(steps, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if k.shape != s.shape:
        raise ValueError(f"steps and scores differ in length: {k.size} vs {s.size}")
    if not (np.isfinite(k).all() and np.isfinite(s).all()):
        raise ValueError("steps and scores must be finite")
    if np.unique(k).size < 3:
        raise ValueError(
            f"a score curve needs points at ≥ 3 distinct step counts, got {np.unique(k).size}"
        )
    if (k <= 0).any():
        raise ValueError("step counts must be positive")

    def model(x: Array, a: float, b: float, c: float) -> Array:
        return a - b * np.exp(-x / c)

    span = float(k.max() - k.min())
    top, bottom = float(s.max()), float(s.min())
    guess = (top, max(top - bottom, 1e-6) * math.exp(k.min() / max(span / 3, 1e-6)), span / 3)
    params, cov = curve_fit(
        model, k, s, p0=guess, bounds=([-np.inf, 0.0, 1e-6], [np.inf, np.inf, np.inf]),
        method="trf", maxfev=20_000,
    )  # fmt: skip
    curve = ScoreCurve(*(float(p) for p in params))
    fitted = curve(k)
    diag = np.diag(cov) if np.all(np.isfinite(cov)) else np.full(3, np.inf)
    stderr = tuple(float(math.sqrt(v)) if v >= 0 else math.inf for v in diag)
    return ScoreCurveFit(
        curve=curve,
        r_squared=_r_squared(s, fitted),
        rmse_score=float(np.sqrt(np.mean((s - fitted) ** 2))),
        stderr=(stderr[0], stderr[1], stderr[2]),
        points=int(k.size),
    )


@dataclass(frozen=True)
class LatencyCurve:
    """g(k, φ) = (fixed_s + per_step_s·k) / φ, seconds. The coefficients are seconds at
    the whole server's compute C; a server C′ times as fast would divide both by C′/C."""

    fixed_s: float
    """Work outside the denoising loop (encoders, decoder) at φ = 1."""
    per_step_s: float
    """One denoising step at φ = 1."""

    def work_s(self, steps: Any) -> Any:
        """Seconds of one invocation at the whole compute (φ = 1)."""
        return self.fixed_s + self.per_step_s * np.asarray(steps, dtype=np.float64)

    def __call__(self, steps: Any, share: Any) -> Any:
        return self.work_s(steps) / np.asarray(share, dtype=np.float64)


@dataclass(frozen=True)
class LatencyFit:
    curve: LatencyCurve
    r_squared: float
    """Of the seconds, over the points."""
    rmse_s: float
    points: int


def fit_latency(steps: Any, shares: Any, seconds: Any) -> LatencyFit:
    """Non-negative least squares of seconds = fixed_s/φ + per_step_s·k/φ through the
    measured points (linear in the two coefficients). Needs two distinct step counts
    (else fixed and per-step work cannot be told apart)."""
    from scipy.optimize import nnls

    k = np.asarray(steps, dtype=np.float64).ravel()
    phi = np.asarray(shares, dtype=np.float64).ravel()
    t = np.asarray(seconds, dtype=np.float64).ravel()
    if not k.shape == phi.shape == t.shape:
        raise ValueError(f"lengths differ: steps {k.size}, shares {phi.size}, seconds {t.size}")
    if not (np.isfinite(k).all() and np.isfinite(phi).all() and np.isfinite(t).all()):
        raise ValueError("steps, shares and seconds must be finite")
    if ((phi <= 0) | (phi > 1)).any():
        raise ValueError("shares must lie in (0, 1]")
    if np.unique(k).size < 2:
        raise ValueError("a latency fit needs points at ≥ 2 distinct step counts")
    design = np.stack([1.0 / phi, k / phi], axis=1)
    (fixed, per_step), _ = nnls(design, t)
    curve = LatencyCurve(float(fixed), float(per_step))
    fitted = curve(k, phi)
    return LatencyFit(
        curve=curve,
        r_squared=_r_squared(t, fitted),
        rmse_s=float(np.sqrt(np.mean((t - fitted) ** 2))),
        points=int(k.size),
    )
