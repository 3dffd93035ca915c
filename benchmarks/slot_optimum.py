"""Benchmark (issue 11): the exact per-slot optimum at 10 devices, and the heuristics'
optimality gaps against it.

The bench: `testbed.yaml` (10 devices, 3 edges, 3 models) with the experiments'
`reward.energy_scale_j: 10`, priced by the committed calibration of the paper-figure
runs (docs/results/calibrations/2026-12-01/3/calibration.json); the grid of the
exhaustive oracle (local, or x ∈ {0.25, 0.5, 0.75, 1} to edge j with d ∈ {0, 1}).

Cases (one per pricing: calibrated, and the paper model with the demo zoo's sizes):
ours = the programme's time per slot (coordinator/envs/slot_optimum.py) on the
oracle's own trajectory (what `testbed eval --policies oracle --backend twin` runs),
over `seeds × slots` slots; reference = the exhaustive oracle's time per slot at 4
devices, the largest bench it solves (checked equal to the programme there, or the
benchmark fails). Goal: a slot of 10 devices in < 5 s (bounded time), every slot
exact (no state dropped; else the certified bound is printed and the case misses).

Then the optimality gaps: `evaluate_twin` (coordinator/evaluation.py) of local, greedy,
random and oracle on the same seeds and tasks; gap = (R_oracle − R_policy) / |R_oracle|
in % of the mean reward per task, per seed (as coordinator/report.py), with a 95 %
Student-t interval over seeds. Without --quick, three slots of a 15-device bench with
the programme capped at 20,000 states: time and certified gap (the first slot also
uncapped: its exact optimum and time).

`python -m benchmarks.slot_optimum [--quick]` (quick: 2 seeds × 10 slots).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    Case,
    Goal,
    GoalKind,
    Result,
    demo_zoo_or_tiny,
    median,
    percentile,
    report,
)
from benchmarks.common import standalone as _standalone

NAME = "slot_optimum"
GOAL = Goal(GoalKind.BELOW, 5.0, "< 5 s per slot at 10 devices, every slot exact")
CALIBRATION = REPO / "docs/results/calibrations/2026-12-01/3/calibration.json"
POLICIES = ("local", "greedy", "random")


def _config(agents: int, calibrated: bool = True) -> Any:
    from testbed.config import apply_sets, config_from_dict, load_config

    cfg = load_config(REPO / "testbed.yaml", env={})
    sets: list[tuple[str, Any]] = [("agents.count", agents), ("reward.energy_scale_j", 10)]
    if calibrated:
        sets.append(("twin.calibration", str(CALIBRATION)))
    else:  # the paper model: the demo zoo's sizes and work (twin_params.py)
        zoo = demo_zoo_or_tiny([])
        if zoo.name not in ("tiny", "demo", "paper"):  # the tests' tiny zoo: not <dir>/<scale>
            link = Path(tempfile.mkdtemp(prefix="slot-optimum-zoo-")) / "tiny"
            link.symlink_to(zoo)
            zoo = link
        sets += [("twin.calibration", None), ("zoo.dir", str(zoo.parent)), ("zoo.scale", zoo.name)]
    return config_from_dict(apply_sets(cfg.to_dict(keep_secrets=True), sets), "slot_optimum")


def _oracle_run(cfg: Any, seed: int, slots: int) -> list[Any]:
    """The programme's solutions along the oracle's trajectory of `seed`."""
    from coordinator.envs.heuristics import encode_actions
    from coordinator.envs.slot_optimum import SlotOptimum
    from coordinator.envs.twin import TwinEnv
    from coordinator.envs.twin_params import TwinParams
    from coordinator.evaluation import with_seed

    env = TwinEnv(TwinParams.from_config(with_seed(cfg, seed)), 1, tasks="crn", seed=seed,
                  episode_slots=slots)  # fmt: skip
    env.reset(seed=seed)
    solver, out = SlotOptimum(), []
    for _ in range(slots):
        s = solver.solve(env)
        out.append(s)
        m = env.params.num_edges
        env.step(encode_actions(m, s.target[None], s.ratio[None], s.download[None]))
    return out


def _exhaustive_seconds(seeds: int, slots: int) -> tuple[list[float], float]:
    """The exhaustive oracle's time per slot at 4 devices, and the largest difference
    between its optimum and the programme's."""
    from coordinator.envs.oracle import OracleMethod, SlotOracle
    from coordinator.envs.slot_optimum import SlotOptimum
    from coordinator.envs.twin import TwinEnv
    from coordinator.envs.twin_params import TwinParams
    from coordinator.evaluation import with_seed

    times, worst = [], 0.0
    for seed in range(seeds):
        params = TwinParams.from_config(with_seed(_config(4), seed))
        env = TwinEnv(params, 1, tasks="crn", seed=seed)
        env.reset(seed=seed)
        exhaustive = SlotOracle(method=OracleMethod.EXHAUSTIVE)
        for _ in range(slots):
            t0 = time.perf_counter()
            _, _, _, best = exhaustive.solve(env)
            times.append(time.perf_counter() - t0)
            worst = max(worst, abs(SlotOptimum().solve(env).reward - best))
            env.step(exhaustive.act(env))
    return times, worst


def _gaps(cfg: Any, seeds: int, slots: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per seed: each policy's gap to the oracle (%), and each policy's mean reward."""
    from coordinator.evaluation import evaluate_twin
    from coordinator.policy_choice import parse_policy

    gaps: dict[str, list[float]] = {p: [] for p in POLICIES}
    rewards: dict[str, list[float]] = {p: [] for p in (*POLICIES, "oracle")}
    for seed in range(seeds):
        best = evaluate_twin(cfg, parse_policy("oracle"), seed, slots).reward
        rewards["oracle"].append(best)
        for p in POLICIES:
            r = evaluate_twin(cfg, parse_policy(p), seed, slots).reward
            rewards[p].append(r)
            gaps[p].append((best - r) / abs(best) * 100.0)
    return gaps, {p: statistics.fmean(v) for p, v in rewards.items()}


def _interval(values: list[float]) -> str:
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f} %"
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.1f} % (95 % CI {mean - half:.1f} … {mean + half:.1f})"


def _bench_case(label: str, cfg: Any, seeds: int, slots: int) -> tuple[Case, list[str]]:
    """The programme's times on the oracle's trajectories, and the heuristics' gaps."""
    t0 = time.perf_counter()
    solutions = [s for seed in range(seeds) for s in _oracle_run(cfg, seed, slots)]
    wall = time.perf_counter() - t0
    seconds = [s.seconds for s in solutions]
    cpu = [s.cpu_seconds for s in solutions]
    inexact = [s for s in solutions if not s.exact]
    case = Case(
        label=f"{label}, 10 devices, {len(solutions)} slots",
        ours=median(seconds) if not inexact else float("inf"),
        reference=0.0,
        samples=len(solutions),
        details={
            "p95_s": percentile(seconds, 95), "max_s": max(seconds),
            "cpu_median_s": median(cpu), "cpu_p95_s": percentile(cpu, 95), "cpu_max_s": max(cpu),
            "mean_states": statistics.fmean(s.states for s in solutions),
            "inexact_slots": float(len(inexact)),
            "start_gap_pct": statistics.fmean(
                (s.reward - s.start_reward) / abs(s.reward) * 100 for s in solutions
            ),
        },
    )  # fmt: skip
    notes = [
        f"{label}: programme per slot median {median(seconds):.3f} s, p95 "
        f"{percentile(seconds, 95):.3f} s, max {max(seconds):.3f} s (CPU: median "
        f"{median(cpu):.3f} s, p95 {percentile(cpu, 95):.3f} s, max {max(cpu):.3f} s); "
        f"{len(solutions) - len(inexact)}/{len(solutions)} slots exact ({wall:.0f} s); the "
        f"local search it starts from was {case.details['start_gap_pct']:.2f} % below"
    ]
    notes += [f"inexact slot: reward {s.reward:.6f}, bound {s.upper_bound:.6f}" for s in inexact]
    notes.append(f"{label}: the optimum's decisions: {_decision_mix(solutions)}")
    gaps, rewards = _gaps(cfg, seeds, slots)
    notes.append(f"{label}: oracle reward per task {rewards['oracle']:.4f}")
    for p in POLICIES:
        notes.append(f"{label}: {p} reward per task {rewards[p]:.4f}, gap {_interval(gaps[p])} "
                     f"over {seeds} seeds × {slots} slots")  # fmt: skip
    return case, notes


def _decision_mix(solutions: list[Any]) -> str:
    """How the optimum decided: shares of local, partial and whole offloads, by edge."""
    import numpy as np

    target = np.concatenate([s.target for s in solutions])
    ratio = np.concatenate([s.ratio for s in solutions])
    off = target >= 0
    edges = ", ".join(
        f"edge {j} {np.mean(target == j) * 100:.0f} %" for j in range(int(target.max()) + 1)
    )
    return (
        f"{np.mean(~off) * 100:.0f} % local, {np.mean(off & (ratio < 1)) * 100:.0f} % split "
        f"(x < 1), {np.mean(off & (ratio >= 1)) * 100:.0f} % whole to an edge ({edges}); "
        f"mean x of the offloads {ratio[off].mean():.2f}"
    )


def _fifteen_devices(slots: int, max_states: int) -> list[str]:
    """Beyond the paper's default: 15 devices with the programme capped at `max_states`."""
    from coordinator.envs.heuristics import encode_actions
    from coordinator.envs.slot_optimum import SlotOptimum
    from coordinator.envs.twin import TwinEnv
    from coordinator.envs.twin_params import TwinParams

    env = TwinEnv(TwinParams.from_config(_config(15)), 1, tasks="crn", seed=0)
    env.reset(seed=0)
    full = SlotOptimum().solve(env)  # the first slot uncapped: its exact optimum and time
    notes = [
        f"15 devices, slot 0 uncapped: {full.seconds:.1f} s ({full.cpu_seconds:.1f} s CPU), "
        f"reward {full.reward:.4f}, bound {full.upper_bound:.4f}, exact {full.exact}"
    ]
    for slot in range(slots):
        s = SlotOptimum(max_states=max_states).solve(env)
        notes.append(
            f"15 devices, slot {slot}, max_states {max_states:,}: {s.seconds:.1f} s "
            f"({s.cpu_seconds:.1f} s CPU), reward "
            f"{s.reward:.4f}, certified bound {s.upper_bound:.4f} (gap ≤ "
            f"{(s.upper_bound - s.reward) / abs(s.reward) * 100:.2f} %), exact {s.exact}"
        )
        m = env.params.num_edges
        env.step(encode_actions(m, s.target[None], s.ratio[None], s.download[None]))
    return notes


def run(quick: bool) -> Result:
    seeds, slots = (2, 10) if quick else (5, 60)
    ref_times, worst = _exhaustive_seconds(1 if quick else 2, 3 if quick else 5)
    if worst > 1e-6:
        raise AssertionError(f"the programme differs from the exhaustive oracle by {worst}")
    cases, notes = [], []
    for label, calibrated in (("calibrated", True), ("paper model", False)):
        case, lines = _bench_case(label, _config(10, calibrated), seeds, slots)
        cases.append(dataclasses.replace(case, reference=median(ref_times)))
        notes += lines
    notes.append(
        f"reference: the exhaustive oracle at 4 devices (calibrated), median "
        f"{median(ref_times):.3f} s per slot, the same optima (largest difference {worst:.1e})"
    )
    if not quick:
        notes += _fifteen_devices(3, 20_000)
    return report(Result(NAME, "s/slot", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(_standalone(run))
