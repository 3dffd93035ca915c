"""Steps and shares for one slot (docs/papers.md §C eq. 11): the utility, the
exhaustive optimum, simulated annealing and the baselines (testbed/allocation/)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.allocation.annealing import anneal
from testbed.allocation.baselines import equal_allocation, optimal_step
from testbed.allocation.exhaustive import compositions, exhaustive_optimum, search_size
from testbed.allocation.problem import AllocationProblem, ModelProfile, evaluate
from testbed.allocation.score_curve import LatencyCurve, ScoreCurve
from testbed.config.allocation import AllocationConfig, AnnealingConfig, SlotLatency

K = tuple(range(10, 43, 4))


def paper_like(
    counts: tuple[int, ...] = (10, 12, 8),
    slices: int = 20,
    latency: SlotLatency = SlotLatency.PER_TASK,
    lam: float = 0.2,
) -> AllocationProblem:
    models = (
        ModelProfile("small", ScoreCurve.constant(30.0), LatencyCurve(0.05, 0.03), (1,)),
        ModelProfile("medium", ScoreCurve(32.0, 6.0, 8.0), LatencyCurve(0.3, 0.06), K),
        ModelProfile("large", ScoreCurve(35.0, 9.0, 10.0), LatencyCurve(1.0, 0.18), K),
    )
    return AllocationProblem(models, counts, lam, slices, latency)  # fmt: skip


def random_problem(seed: int, models: int = 3, slices: int = 20) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    profiles = []
    for m in range(models):
        steps = (1,) if m == 0 and rng.random() < 0.5 else K
        curve = ScoreCurve(rng.uniform(28, 36), rng.uniform(0, 15), rng.uniform(3, 20))
        work = LatencyCurve(rng.uniform(0, 1), rng.uniform(0.01, 0.3))
        profiles.append(ModelProfile(f"m{m}", curve, work, steps))
    counts = tuple(int(n) for n in rng.integers(0, 20, models))
    latency = SlotLatency.QUEUED if rng.random() < 0.5 else SlotLatency.PER_TASK
    return AllocationProblem(
        tuple(profiles), counts, float(rng.uniform(0.05, 1.0)), slices, latency
    )


def brute_force(problem: AllocationProblem) -> float:
    """The best utility by plain loops over every step combination and every share
    vector with Σφ ≤ 1, idle models and idle slices included."""
    best = -math.inf
    grids = [p.steps for p in problem.models]
    ranges = [range(problem.share_slices + 1)] * len(grids)
    for slices in itertools.product(*ranges):
        if sum(slices) > problem.share_slices:
            continue
        shares = [u / problem.share_slices for u in slices]
        for steps in itertools.product(*grids):
            u = 0.0
            for m, (k, phi) in enumerate(zip(steps, shares, strict=True)):
                n = problem.task_counts[m]
                if n == 0:
                    continue
                if phi == 0:
                    u = -math.inf
                    break
                g = problem.models[m].latency(k, phi)
                f = n if problem.slot_latency is SlotLatency.PER_TASK else n * (n + 1) / 2
                u += n * float(problem.models[m].score(k)) - problem.latency_weight_per_s * f * g
            best = max(best, u)
    return best


def test_utility_by_hand() -> None:
    p = paper_like((2, 3, 0), latency=SlotLatency.QUEUED)
    a = evaluate(p, [1, 18, 42], [0.25, 0.75, 0.0])
    medium = 32.0 - 6.0 * math.exp(-18 / 8.0)
    g_small, g_medium = (0.05 + 0.03) / 0.25, (0.3 + 0.06 * 18) / 0.75
    want = 2 * 30.0 - 0.2 * 3 * g_small + 3 * medium - 0.2 * 6 * g_medium  # F = N(N+1)/2
    assert a.utility == pytest.approx(want)
    assert a.mean_latency_s[0] == pytest.approx(g_small * 1.5)
    assert math.isnan(a.mean_score[2])
    with pytest.raises(ValueError, match="Σφ"):
        evaluate(p, [1, 18, 42], [0.5, 0.6, 0.0])
    with pytest.raises(ValueError, match="not in"):
        evaluate(p, [1, 19, 42], [0.5, 0.5, 0.0])


def test_compositions() -> None:
    c = compositions(6, 3)
    assert len(c) == math.comb(5, 2) and (c.sum(axis=1) == 6).all() and (c >= 1).all()
    assert len({tuple(r) for r in c.tolist()}) == len(c)
    assert compositions(4, 1).tolist() == [[4]] and len(compositions(2, 3)) == 0


@pytest.mark.parametrize("seed", range(6))
def test_exhaustive_equals_plain_loops_over_sigma_at_most_one(seed: int) -> None:
    p = random_problem(seed, models=3, slices=5)
    p = AllocationProblem(
        tuple(ModelProfile(m.name, m.score, m.latency, m.steps[:3]) for m in p.models),
        p.task_counts, p.latency_weight_per_s, p.share_slices, p.slot_latency,
    )  # fmt: skip
    assert exhaustive_optimum(p).utility == pytest.approx(brute_force(p), rel=1e-12, abs=1e-9)


def test_exhaustive_refuses_a_large_instance() -> None:
    p = paper_like(slices=200)
    assert search_size(p) == 81 * math.comb(199, 2)
    with pytest.raises(ValueError, match="beyond its limit"):
        exhaustive_optimum(p, max_points=1_000_000)


@pytest.mark.parametrize("seed", range(20))
def test_annealing_reaches_the_exhaustive_optimum(seed: int) -> None:
    p = random_problem(seed)
    best = exhaustive_optimum(p)
    found = anneal(p, AnnealingConfig(seed=0))
    assert found.utility == pytest.approx(best.utility, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("latency", list(SlotLatency))
def test_annealing_on_the_paper_like_slot(latency: SlotLatency) -> None:
    p = paper_like(latency=latency)
    assert anneal(p, AnnealingConfig()).utility == pytest.approx(exhaustive_optimum(p).utility)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1), models=st.integers(1, 4), slices=st.integers(4, 30),
    move=st.integers(1, 5), step_prob=st.floats(0, 1), sa_seed=st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_annealing_keeps_the_constraints(
    seed: int, models: int, slices: int, move: int, step_prob: float, sa_seed: int
) -> None:
    p = random_problem(seed, models, slices)
    params = AnnealingConfig(moves_per_temperature=5, slices_per_move=move,
                             step_move_prob=step_prob, seed=sa_seed)  # fmt: skip
    out = anneal(p, params)
    assert sum(out.shares) <= 1 + 1e-12
    for m, (profile, k, phi) in enumerate(zip(p.models, out.steps, out.shares, strict=True)):
        assert k in profile.steps
        units = phi * slices
        assert abs(units - round(units)) < 1e-9  # on the share grid
        assert (phi > 0) == (p.task_counts[m] > 0)  # tasks get compute, idle models none
    assert out.utility <= exhaustive_optimum(p).utility + 1e-9
    assert out.utility == pytest.approx(evaluate(p, out.steps, out.shares).utility)


def test_annealing_is_seeded() -> None:
    p = random_problem(3)
    few = AnnealingConfig(moves_per_temperature=2, final_temperature_ratio=0.5, seed=5)
    assert anneal(p, few) == anneal(p, few)
    assert anneal(p, few).evaluations == 2 * few.levels


def test_equal_allocation_is_equal_shares_and_best_steps() -> None:
    p = paper_like()
    eq = equal_allocation(p)
    assert eq.shares == (1 / 3, 1 / 3, 1 / 3)
    for m, profile in enumerate(p.models):  # each model's steps: its best at φ = 1/3
        utilities = [
            evaluate(p, [k if j == m else eq.steps[j] for j in range(3)], eq.shares).utility
            for k in profile.steps
        ]
        assert eq.utility == pytest.approx(max(utilities))
    idle = equal_allocation(paper_like((0, 5, 5)))
    assert idle.shares == (1 / 3, 1 / 3, 1 / 3)  # the idle model's third stays idle


def test_optimal_step_is_best_score_steps_and_best_grid_shares() -> None:
    p = paper_like()
    op = optimal_step(p)
    assert op.steps == (1, 42, 42)  # the curves rise: the best score is at the most steps
    by_hand = max(
        evaluate(p, op.steps, [u / 20 for u in c]).utility for c in compositions(20, 3).tolist()
    )
    assert op.utility == pytest.approx(by_hand)
    flat = AllocationProblem(
        (ModelProfile("flat", ScoreCurve.constant(3.0), LatencyCurve(0, 1), K),), (4,), 0.2, 10
    )
    assert optimal_step(flat).steps == (10,)  # a tie: the fewest steps


def test_the_annealing_beats_the_baselines_on_the_paper_like_slot() -> None:
    for latency in SlotLatency:
        p = paper_like(latency=latency)
        sa = anneal(p, AnnealingConfig())
        assert sa.utility >= optimal_step(p).utility - 1e-9  # its steps and grid are SA's
        assert sa.utility > equal_allocation(p).utility  # 1/3 is off the grid: not implied


def test_config_defaults_and_checks() -> None:
    cfg = AllocationConfig()
    assert cfg.latency_weight_per_s == 0.2 and cfg.score_thresholds == [29.5, 33.8]
    assert cfg.step_grid == list(K) and cfg.model_steps("small") == [1]
    assert [c.name for c in cfg.categories] == ["basic", "imagination", "detail", "complex"]
    assert cfg.check() == []
    assert cfg.annealing.levels == 135  # 0.95^135 < 10^-3 ≤ 0.95^134
    bad = AllocationConfig(score_thresholds=[33.8, 29.5], fixed_steps={"tiny": 1})
    keys = {k for k, _ in bad.check()}
    assert keys == {"score_thresholds", "fixed_steps"}
    assert AllocationConfig(models=["a", "b"]).check()[0][0] == "score_thresholds"


def test_the_section_loads_from_yaml_and_names_bad_keys() -> None:
    from testbed.schema import SchemaError, load_dataclass

    data = {
        "categories": [{"name": "basic", "score_mean": 0.4, "score_std": 0.05}],
        "fixed_steps": {"small": 2}, "slot_latency": "queued",
        "annealing": {"cooling": 0.9, "initial_temperature": 0.5},
    }  # fmt: skip
    cfg = load_dataclass(AllocationConfig, data, "allocation")
    assert cfg.slot_latency is SlotLatency.QUEUED and cfg.annealing.cooling == 0.9
    assert cfg.categories[0].measured and cfg.model_steps("small") == [2]
    bad = {"annealing": {"cooling": 1.0}, "categories": [{"name": "x", "score_mean": 1.0}]}
    with pytest.raises(SchemaError) as info:
        load_dataclass(AllocationConfig, bad, "allocation")
    keys = {k for k, _ in info.value.problems}
    assert keys == {"allocation.annealing.cooling", "allocation.categories[0].score_std"}


def test_every_number_of_the_section_is_bounded_and_documented() -> None:
    import dataclasses
    import typing

    from testbed.config.allocation import CategoryConfig

    for cls in (AllocationConfig, AnnealingConfig, CategoryConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f.name
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            inner = args[-1] if args else hints[f.name]
            if inner in (int, float):
                m = f.metadata
                assert m["ge"] is not None or m["gt"] is not None, f.name
                assert m["le"] is not None or m["lt"] is not None, f.name


@pytest.mark.parametrize("latency", list(SlotLatency))
def test_fine_grid_shares_approach_the_square_root_rule(latency: SlotLatency) -> None:
    """With the steps fixed, minimising Σ_m F_m·work_m/φ_m under Σφ = 1 gives
    φ_m ∝ √(F_m·work_m) (Cauchy–Schwarz); docs/allocation.md uses it to explain the
    optimum's shares. The exact grid search must land next to it."""
    from testbed.allocation.exhaustive import best_shares

    p = paper_like(slices=1000, latency=latency)
    steps = [1, 22, 30]
    found = best_shares(p, steps)
    weights = np.array(
        [p.latency_factor(m) * float(p.models[m].latency.work_s(k)) for m, k in enumerate(steps)]
    )
    rule = np.sqrt(weights) / np.sqrt(weights).sum()
    np.testing.assert_allclose(found.shares, rule, atol=2e-3)
