"""The §C quality profile, measured offline (docs/quality-experiments.md): the zoo's
generators run in-process with ONNX Runtime on this host, through the edge's own DDIM
code (testbed/quality/sampling.py), and the zoo's evaluator scores every sample.

- per-category score distributions on the medium model, with a Gaussian fit (μ_c, σ_c:
  the numbers the probabilistic assignment needs, docs/allocation.md);
- the thresholds θ_1 < θ_2 re-set on this evaluator's axis by this project's rule
  (`load_thresholds`);
- score and latency against steps for every model, with 95 % Student-t intervals over
  seeds, and the fitted ŝ_m(k) and T_m(k, φ = 1) (testbed/allocation/score_curve.py).

Every figure is labelled "offline profile": latencies are this host's, one ORT thread,
one request per invocation — not an edge's, which the live runs measure.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.quality_spec import QualityExperimentSpec
from coordinator.stats import t_interval
from coordinator.zoo.quality.data import DigitSet, load_digit_split
from testbed.allocation import ModelProfile, ScoreCurve, fit_latency, fit_score_curve
from testbed.config.allocation import AllocationConfig, CategoryConfig
from testbed.config.quality import QualityCategory
from testbed.quality.conditions import CONDITION_SIZE, encode
from testbed.quality.evaluator import BuiltinEvaluator, open_evaluator
from testbed.quality.gate import quality_gate_passed
from testbed.quality.sampling import generate
from testbed.zoo.catalog import Catalog, ModelEntry

OFFLINE = "offline profile"
"""The label of every figure measured here (live figures come from the bench)."""


class GateNotPassed(RuntimeError):
    """The zoo's quality gate failed (or was never run): no curve is fitted to noise."""


@dataclass
class Generator:
    entry: ModelEntry
    session: Any
    outputs: list[str]

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, feeds)  # type: ignore[no-any-return]

    def sample(self, cond: np.ndarray, steps: int, seed: int) -> np.ndarray:
        return generate(self.entry, self, cond, steps, seed)


@dataclass
class QualityZoo:
    """The generators (by zoo id), the evaluator and the held-out real digits."""

    generators: dict[str, Generator]
    evaluator: BuiltinEvaluator
    held_out: DigitSet
    gate_passed: bool


def _session(path: Path) -> tuple[Any, list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, [o.name for o in session.get_outputs()]


def open_quality_zoo(zoo_dir: str | Path, spec: QualityExperimentSpec) -> QualityZoo:
    """The spec's generators and evaluator from the catalog in `zoo_dir`. Raises
    `GateNotPassed` when the catalog's quality gate did not pass."""
    catalog = Catalog.load(zoo_dir)
    if not quality_gate_passed(catalog):
        raise GateNotPassed(
            f"the quality gate of {zoo_dir} did not pass (or the zoo has no evaluator): "
            "the experiments refuse to fit curves to its scores (docs/quality.md)"
        )
    evaluator = open_evaluator(spec.quality, catalog)
    if not isinstance(evaluator, BuiltinEvaluator):
        raise GateNotPassed("the experiments score conditions with the built-in evaluator")
    generators = {}
    for model_id in spec.generator_ids:
        session, outputs = _session(catalog.path(model_id))
        generators[model_id] = Generator(catalog.get(model_id), session, outputs)
    _, held_out = load_digit_split()
    return QualityZoo(generators, evaluator, held_out, True)


def category_requests(
    held_out: DigitSet, category: QualityCategory, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Conditions of n requests of `category`, each made for a held-out real digit."""
    index = rng.integers(0, len(held_out), n)
    return encode(held_out.props.take(index), category, rng)


def mixed_requests(
    held_out: DigitSet,
    categories: list[QualityCategory],
    which: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Conditions of requests whose categories are the indices `which`."""
    cond = np.empty((len(which), CONDITION_SIZE), dtype=np.float32)
    for c, category in enumerate(categories):
        rows = np.flatnonzero(which == c)
        if rows.size:
            cond[rows] = category_requests(held_out, category, rows.size, rng)
    return cond


@dataclass(frozen=True)
class GaussianFit:
    mean: float
    std: float
    n: int
    ks_statistic: float
    """Kolmogorov–Smirnov distance between the scores and N(mean, std)."""
    zero_fraction: float
    """Scores at the evaluator's floor of 0 (100·max(cos, 0))."""


def fit_gaussian(scores: Any) -> GaussianFit:
    """The normal N(μ, σ) fitted to `scores` (sample mean, sample standard deviation),
    with the KS distance that says how normal they are."""
    from scipy.stats import kstest

    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size < 2 or not np.isfinite(s).all():
        raise ValueError("a Gaussian fit needs ≥ 2 finite scores")
    mean, std = float(s.mean()), float(s.std(ddof=1))
    ks = float(kstest(s, "norm", args=(mean, std)).statistic) if std > 0 else 1.0
    return GaussianFit(mean, std, int(s.size), ks, float(np.mean(s <= 0.0)))


def load_thresholds(means: Any, stds: Any, weights: Any, loads: Any) -> list[float]:
    """This project's rule for θ_1 < … < θ_{M−1} on the evaluator's axis: the quantiles
    of the category mixture Σ_c w_c·N(μ_c, σ_c) at the cumulative `loads` (one per
    model, smallest first), so that the probabilistic assignment sends model m the
    fraction loads[m] of the stream in expectation. Equal loads: the m/M quantiles."""
    from scipy.optimize import brentq
    from scipy.special import ndtr

    mu, sigma = np.asarray(means, float), np.asarray(stds, float)
    w = np.asarray(weights, float) / float(np.sum(weights))
    share = np.asarray(loads, float)
    if share.ndim != 1 or share.size < 2 or (share <= 0).any():
        raise ValueError("expected a positive load per model, at least two models")
    cumulative = np.cumsum(share / share.sum())[:-1]

    def mixture_cdf(x: float) -> float:
        return float(np.sum(w * ndtr((x - mu) / sigma)))

    low, high = float((mu - 40 * sigma).min()), float((mu + 40 * sigma).max())
    return [float(brentq(lambda x, q=q: mixture_cdf(x) - q, low, high)) for q in cumulative]


def measure_categories(zoo: QualityZoo, spec: QualityExperimentSpec) -> dict[str, Any]:
    """Per-category scores on the medium model at the reference steps, per seed."""
    # The reference model of eqs. 9–10: the middle of allocation.models (the medium).
    names = spec.allocation.models
    medium = zoo.generators[spec.models[names[len(names) // 2]]]
    n, k = spec.profile.category_requests, spec.profile.reference_steps
    out: dict[str, Any] = {}
    for category in spec.quality.categories:
        per_seed = []
        for seed in spec.seeds:
            rng = np.random.default_rng([seed, 1, len(out)])
            cond = category_requests(zoo.held_out, category, n, rng)
            per_seed.append(zoo.evaluator.score(medium.sample(cond, k, seed), cond).tolist())
        fit = fit_gaussian(np.concatenate(per_seed))
        seed_means = t_interval([float(np.mean(s)) for s in per_seed])
        out[category.name] = {
            "fit": fit.__dict__, "seed_mean": seed_means.__dict__, "scores": per_seed,
        }  # fmt: skip
    return out


def measure_curves(zoo: QualityZoo, spec: QualityExperimentSpec) -> dict[str, Any]:
    """Mean score per (model, steps, seed): the same requests and noise for every model
    and step count of a seed (paired)."""
    steps = sorted(set(spec.profile.steps) | set(spec.profile.paper_steps))
    cats = spec.quality.categories
    out: dict[str, Any] = {m: {str(k): [] for k in steps} for m in zoo.generators}
    for seed in spec.seeds:
        rng = np.random.default_rng([seed, 2])
        which = rng.integers(0, len(cats), spec.profile.requests_per_seed)
        cond = mixed_requests(zoo.held_out, cats, which, rng)
        for model_id, gen in zoo.generators.items():
            for k in steps:
                scores = zoo.evaluator.score(gen.sample(cond, k, seed), cond)
                out[model_id][str(k)].append(float(scores.mean()))
    return out


def measure_latency(zoo: QualityZoo, spec: QualityExperimentSpec) -> dict[str, Any]:
    """Seconds of single-request generations per (model, steps): the whole call (the
    sampler's set-up, every step, the output), timed with a monotonic clock; the
    repeats interleave the step counts, so a burst of load on the host spreads over
    all of them instead of bending one."""
    steps = sorted(set(spec.profile.steps) | set(spec.profile.paper_steps))
    cond = category_requests(zoo.held_out, spec.quality.categories[0], 1,
                             np.random.default_rng(3))  # fmt: skip
    out: dict[str, Any] = {}
    for model_id, gen in zoo.generators.items():
        gen.sample(cond, steps[0], 0)  # warm the session
        out[model_id] = {str(k): [] for k in steps}
        for rep in range(spec.profile.latency_repeats):
            for k in steps:
                start = time.perf_counter()
                gen.sample(cond, k, rep)
                out[model_id][str(k)].append(time.perf_counter() - start)
    return out


def _fits(curves: dict[str, Any], latency: dict[str, Any], grid: list[int]) -> dict[str, Any]:
    """ŝ_m and T_m(·, φ = 1) fitted on the step counts of `grid`, with their quality."""
    fits: dict[str, Any] = {}
    for model_id, by_k in curves.items():
        ks = [k for k in grid if str(k) in by_k]
        # One point per step count, the mean over seeds: R² then says how well the
        # form follows the curve, not how much the seeds differ.
        with warnings.catch_warnings():  # a flat series: c is unidentified, b ≈ 0
            warnings.simplefilter("ignore", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="Covariance of the parameters")
            score = fit_score_curve(ks, [float(np.mean(by_k[str(k)])) for k in ks])
        # The fastest of a point's repeats: on a shared host every other repeat is
        # the model's cost plus some wait for a core (timeit's convention).
        lat = fit_latency(ks, [1.0] * len(ks), [min(latency[model_id][str(k)]) for k in ks])
        fits[model_id] = {
            "score": {**score.curve.__dict__, "r_squared": score.r_squared,
                      "rmse_score": score.rmse_score, "points": score.points},
            "latency": {**lat.curve.__dict__, "r_squared": lat.r_squared,
                        "rmse_s": lat.rmse_s, "points": lat.points},
        }  # fmt: skip
    return fits


def allocation_with_fits(
    spec: QualityExperimentSpec, fits: dict[str, tuple[float, float]]
) -> AllocationConfig:
    """spec.allocation with measured (μ_c, σ_c) per category and the thresholds of the
    load rule (`load_thresholds`, spec.model_loads): what a `testbed.yaml`
    `allocation:` section should carry."""
    import dataclasses

    cats = [CategoryConfig(c.name, c.weight, *fits[c.name]) for c in spec.allocation.categories]
    loads = spec.model_loads or [1.0] * len(spec.allocation.models)
    thresholds = load_thresholds(
        [c.score_mean for c in cats], [c.score_std for c in cats], [c.weight for c in cats], loads
    )
    return dataclasses.replace(spec.allocation, categories=cats, score_thresholds=thresholds)


def run_profile(zoo: QualityZoo, spec: QualityExperimentSpec) -> dict[str, Any]:
    """Every measurement of the profile, as plain data (results.json's `profile`)."""
    started = time.time()
    categories = measure_categories(zoo, spec)
    curves = measure_curves(zoo, spec)
    latency = measure_latency(zoo, spec)
    fits = {name: (c["fit"]["mean"], c["fit"]["std"]) for name, c in categories.items()}
    allocation = allocation_with_fits(spec, fits)
    return {
        "label": OFFLINE,
        "categories": categories,
        "curves": curves,
        "latency_s": latency,
        "fits": {"ours": _fits(curves, latency, spec.profile.steps),
                 "paper": _fits(curves, latency, spec.profile.paper_steps)},
        "score_thresholds": allocation.score_thresholds,
        "category_fits": {c.name: [c.score_mean, c.score_std] for c in allocation.categories},
        "wall_s": time.time() - started,
    }  # fmt: skip


def allocation_from_profile(
    spec: QualityExperimentSpec, profile: dict[str, Any]
) -> AllocationConfig:
    """spec.allocation with the profile's μ_c, σ_c and the spec's load rule."""
    return allocation_with_fits(spec, {k: tuple(v) for k, v in profile["category_fits"].items()})


def model_profiles(
    spec: QualityExperimentSpec, profile: dict[str, Any], cfg: AllocationConfig, grid: str
) -> tuple[ModelProfile, ...]:
    """The allocation's view of each model: the curves fitted on the `grid` ("ours" or
    "paper") and its allowed steps (a fixed-step model: a flat curve at its measured
    mean, which the profile must have measured)."""
    out = []
    for name in cfg.models:
        model_id = spec.models[name]
        fit = profile["fits"][grid][model_id]
        latency = _latency_curve(fit["latency"])
        steps = tuple(cfg.model_steps(name))
        if name in cfg.fixed_steps:
            by_k = profile["curves"][model_id]
            if str(steps[0]) not in by_k:
                raise ValueError(f"{name} is fixed at {steps[0]} steps, which the profile "
                                 "did not measure")  # fmt: skip
            score = ScoreCurve.constant(float(np.mean(by_k[str(steps[0])])))
        else:
            s = fit["score"]
            score = ScoreCurve(s["ceiling_score"], s["gap_score"], s["scale_steps"])
        out.append(ModelProfile(name, score, latency, steps))
    return tuple(out)


def _latency_curve(fit: dict[str, Any]) -> Any:
    from testbed.allocation import LatencyCurve

    return LatencyCurve(fit["fixed_s"], fit["per_step_s"])


def interval(values: list[float]) -> dict[str, float]:
    """Mean and 95 % Student-t bounds of `values` as plain data."""
    i = t_interval(values)
    return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}
