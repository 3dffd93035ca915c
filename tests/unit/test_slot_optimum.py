"""The exact per-slot optimum (coordinator/envs/slot_optimum.py) against the exhaustive
oracle where both run, its slot model against the twin, and the optimum at 10 devices.

Benches: the default `testbed.yaml` with 2-4 (exhaustive) or 10 devices, priced by the
committed calibration docs/results/calibrations/2026-12-01 (3 models) or by the paper's model,
and variants that reach the corners of the slot: no download flag in the policy space,
a model larger than the cache, and link emulation off (every upload arrives at once, so
the FIFO's ties decide). Slots differ in their caches: between slots the twin is
stepped with random decisions that download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.envs.heuristics import encode_actions, make_heuristic
from coordinator.envs.oracle import OracleMethod, OracleTooLarge, SlotOracle
from coordinator.envs.slot_model import Decision, Pricing, SlotModel
from coordinator.envs.slot_optimum import SlotOptimum, twin_total
from coordinator.envs.twin import TaskSource, TwinEnv
from coordinator.envs.twin_params import TwinParams
from testbed.config import TestbedConfig, apply_sets, config_from_dict, load_config
from testbed.zoo.catalog import Catalog, ModelEntry

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = ROOT / "docs/results/calibrations/2026-12-01/3/calibration.json"
MIXED = ROOT / "docs/results/mato_models_mixed/calibration/3/calibration.json"
"""A calibration with mixed-slot factors (fitted under `off`: edge time × 2.2)."""
RATIOS = (0.25, 0.5, 0.75, 1.0)


def bench(agents: int, **sets: Any) -> TestbedConfig:
    cfg = load_config(ROOT / "testbed.yaml")
    pairs = [("agents.count", agents), ("reward.energy_scale_j", 10), *sets.items()]
    return config_from_dict(apply_sets(cfg.to_dict(keep_secrets=True), pairs), "optimum test")


def params(
    cfg: TestbedConfig, *, paper: bool = False, calibration: Path = CALIBRATION
) -> TwinParams:
    if not paper:
        return TwinParams.from_config(cfg, calibration)
    # the paper model needs the models' sizes and work: the calibration's, as a catalog
    facts = TwinParams.from_config(cfg, CALIBRATION).facts
    entries = [
        ModelEntry(
            id=f.model_id,
            family=f.family,
            version="1",
            file=f"{f.model_id}.onnx",
            size_bytes=f.size_bytes,
            sha256="0" * 64,
            inputs=[],
            outputs=[],
            default_steps=f.default_steps,
            flops_per_invocation=f.flops_per_invocation,
            trained=False,
            scale=cfg.zoo.scale,
        )
        for f in facts
    ]
    return TwinParams.from_config(
        cfg, None, catalog=Catalog(cfg.zoo.scale, entries), use_config_calibration=False
    )


def slots(p: TwinParams, seed: int, count: int, *, model_aware: bool = True) -> Any:
    """`count` slots of seed `seed`'s tasks, the caches moved by random downloads."""
    env = TwinEnv(p, 1, tasks=TaskSource.CRN, seed=seed, model_aware=model_aware)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n, m = env.num_agents, p.num_edges
    for _ in range(count):
        yield env
        target = rng.integers(-1, m, size=(1, n))
        ratio = rng.choice([0.25, 0.5, 1.0], size=(1, n))
        env.step(encode_actions(m, target, ratio, rng.random((1, n)) < 0.7))


CASES: dict[str, tuple[dict[str, Any], bool, bool]] = {
    "calibrated": ({}, False, True),
    "paper-model": ({}, True, True),
    "no-download-flag": ({}, False, False),
    "model-too-large": ({"edges.cache_capacity_mb": 10.0}, False, True),
    "links-off-ties": ({"emulation.links": "off"}, False, True),
    "failed-charged-deadline": ({"reward.failed_latency": "deadline"}, False, True),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("agents", [2, 3])
def test_the_programme_finds_the_exhaustive_optimum(case: str, agents: int) -> None:
    sets, paper, model_aware = CASES[case]
    for seed in (0, 1):
        p = params(bench(agents, seed=seed, **sets), paper=paper)
        exhaustive = SlotOracle(RATIOS, method=OracleMethod.EXHAUSTIVE)
        for env in slots(p, seed, 6, model_aware=model_aware):
            best = exhaustive.solve(env)[3]
            s = SlotOptimum(RATIOS).solve(env)
            assert s.reward == pytest.approx(best, abs=1e-6)
            assert s.exact and s.upper_bound >= s.reward - 1e-5


@pytest.mark.parametrize("links", ["auto", "off"])
def test_five_devices_queue_at_one_edge_as_the_exhaustive_oracle_says(links: str) -> None:
    # one edge: every offloaded task shares its FIFO and cache (9 decisions per agent)
    exhaustive = SlotOracle(RATIOS, method=OracleMethod.EXHAUSTIVE)
    for seed in (0, 1):
        cfg = bench(5, seed=seed, **{"edges.count": 1, "emulation.links": links})
        for env in slots(params(cfg), seed, 4):
            s = SlotOptimum(RATIOS).solve(env)
            assert s.reward == pytest.approx(exhaustive.solve(env)[3], abs=1e-6)


def test_the_programme_finds_the_exhaustive_optimum_at_four_devices() -> None:
    exhaustive = SlotOracle(RATIOS, method=OracleMethod.EXHAUSTIVE)
    for seed in (0, 3):
        for env in slots(params(bench(4, seed=seed)), seed, 3):
            assert SlotOptimum(RATIOS).solve(env).reward == pytest.approx(
                exhaustive.solve(env)[3], abs=1e-6
            )


@pytest.mark.parametrize("case", list(CASES))
def test_the_slot_model_prices_a_joint_decision_as_the_twin(case: str) -> None:
    sets, paper, model_aware = CASES[case]
    p = params(bench(10, **sets), paper=paper)
    rng = np.random.default_rng(7)
    for env in slots(p, 5, 4, model_aware=model_aware):
        model = SlotModel(env, RATIOS)
        for _ in range(40):
            choice = {
                i: Decision(int(rng.integers(len(model.options))), bool(rng.random() < 0.5))
                for i in range(env.num_agents)
            }
            target = np.array([model.options[choice[i].option][0] for i in range(10)])
            ratio = np.array([model.options[choice[i].option][1] for i in range(10)])
            download = np.array([choice[i].download for i in range(10)])
            twin = twin_total(env, target, ratio, download)
            assert model.evaluate(choice) == pytest.approx(twin, abs=1e-5)


@pytest.mark.parametrize("agents", [2, 3])
def test_with_mixed_slot_factors_the_programme_finds_the_exhaustive_optimum(agents: int) -> None:
    exhaustive = SlotOracle(RATIOS, method=OracleMethod.EXHAUSTIVE)
    for seed in (0, 1, 2):
        p = params(bench(agents, seed=seed), calibration=MIXED)
        assert p.mixed is not None
        for env in slots(p, seed, 6):
            best = exhaustive.solve(env)[3]
            s = SlotOptimum(RATIOS).solve(env)
            assert s.reward == pytest.approx(best, abs=1e-5)
            assert s.exact and s.upper_bound >= s.reward - 1e-5


def test_each_mixed_slot_pricing_is_the_twin_on_the_decisions_it_covers() -> None:
    p = params(bench(10), calibration=MIXED)
    rng = np.random.default_rng(3)
    for env in slots(p, 4, 3):
        mixed, whole = (
            SlotModel(env, RATIOS, Pricing.MIXED),
            SlotModel(env, RATIOS, Pricing.OFFLOAD_ONLY),
        )
        pure = [o for o, (_, r) in enumerate(mixed.options) if r == 1.0]
        for _ in range(30):
            for model, options in ((mixed, range(len(mixed.options))), (whole, pure)):
                choice = {
                    i: Decision(int(rng.choice(list(options))), bool(rng.random() < 0.5))
                    for i in range(env.num_agents)
                }
                choice[0] = Decision(0, True) if model is mixed else choice[0]  # a board computes
                target = np.array([model.options[choice[i].option][0] for i in range(10)])
                ratio = np.array([model.options[choice[i].option][1] for i in range(10)])
                download = np.array([choice[i].download for i in range(10)])
                if model is mixed and (target < 0).all():
                    continue
                twin = twin_total(env, target, ratio, download)
                assert model.evaluate(choice) == pytest.approx(twin, abs=1e-5)


def test_the_optimum_with_mixed_slot_factors_is_no_worse_than_any_heuristic() -> None:
    p = params(bench(10), calibration=MIXED)
    for env in slots(p, 6, 3):
        s = SlotOptimum(RATIOS).solve(env)
        for name in ("local", "offload", "greedy", "random"):
            assert s.reward >= _heuristic_total(env, name) - 1e-5, name


def _heuristic_total(env: TwinEnv, name: str) -> float:
    target, ratio, download = env.decode(make_heuristic(name).act(env))
    return twin_total(env, target[0], ratio[0], download[0])


def test_ten_devices_solve_exactly_and_beat_every_heuristic() -> None:
    p = params(bench(10))
    for env in slots(p, 0, 3):
        s = SlotOptimum(RATIOS).solve(env)
        assert s.exact and s.upper_bound == pytest.approx(s.reward, abs=1e-5)
        assert s.seconds < 30.0
        assert s.reward >= s.start_reward - 1e-5
        for name in ("local", "greedy", "offload"):
            assert s.reward >= _heuristic_total(env, name) - 1e-6


def test_a_programme_out_of_room_certifies_a_bound() -> None:
    p = params(bench(10))
    env = next(iter(slots(p, 0, 1)))
    exact = SlotOptimum(RATIOS).solve(env)
    capped = SlotOptimum(RATIOS, max_states=3).solve(env)
    assert not capped.exact
    assert capped.reward <= exact.reward + 1e-6
    assert capped.upper_bound >= exact.reward - 1e-6


def test_the_oracle_uses_the_programme_beyond_the_exhaustive_limit() -> None:
    p = params(bench(10))
    env = next(iter(slots(p, 2, 1)))
    with pytest.raises(OracleTooLarge):
        SlotOracle(method=OracleMethod.EXHAUSTIVE).solve(env)
    oracle = SlotOracle()
    assert oracle.solve(env)[3] == pytest.approx(SlotOptimum().solve(env).reward, abs=1e-6)
    assert oracle.last_solution is not None and oracle.last_solution.exact
    assert oracle.act(env).shape == (1, 10, p.num_edges + 3)


def test_the_oracle_policy_evaluates_at_ten_devices() -> None:
    from coordinator.evaluation import evaluate_twin
    from coordinator.policy_choice import parse_policy

    cfg = bench(10, **{"twin.calibration": str(CALIBRATION)})
    oracle = evaluate_twin(cfg, parse_policy("oracle"), 0, 3)
    greedy = evaluate_twin(cfg, parse_policy("greedy"), 0, 3)
    assert oracle.tasks == greedy.tasks == 30
    assert oracle.reward >= greedy.reward - 1e-6
