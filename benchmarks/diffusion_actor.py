"""Benchmark (issue 12): what DSAC's diffusion actor (docs/papers.md §B) costs against
its one-step MLP ablation, in training and on the board.

Update (ms per gradient step): one `Dsac.update` (coordinator/algorithms/dsac.py:
critics, actor through the whole reverse chain, α, targets) with the diffusion actor at
1, 5 and 10 reverse steps; reference: the same update with the MLP actor (discrete
SAC). The shapes are a DDRL-AMSA scheduler of 5 edge servers: 7 state features (D, D·C,
Q_1..Q_5) + a 5-agent one-hot, 31 actions (the non-empty subsets), 256-wide networks,
batch 512 (§B's typical values; `--quick`: batch 64). torch on 1 thread; the paths are
timed in turn, medians reported. Goal (this project's; the issue sets none): the
10-step update ≤ 11 × the MLP update, i.e. the chain costs at most linearly in its steps.

Decision (µs per task on the board): the exported ONNX diffusion actor with 5 steps
(`export_onnx`: chain unrolled, noise an input), the noise drawn in numpy, one run,
the action sampled from the probabilities; reference: the exported MLP actor, one
run, the action sampled. ONNX Runtime with 1 intra-op and 1 inter-op thread, as
`OnnxActor` runs on a board. Goal: the diffusion decision below 1 % of a slot (Δ = 1 s,
§B's slot length), i.e. < 10 000 µs, so scheduling never competes with the tasks.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import Case, Goal, GoalKind, Result, median, percentile, report

NAME = "diffusion_actor"
STATE_DIM = 7 + 5
ACTIONS = 31
SLOT_S = 1.0
UPDATE_GOAL = Goal(GoalKind.RATIO_AT_MOST, 11.0, "≤ 11 × MLP update at 10 steps")
DECISION_GOAL = Goal(GoalKind.BELOW, SLOT_S * 1e6 / 100, "< 1 % of Δ = 1 s")


def _timed_in_turn(paths: dict[str, Callable[[], Any]], calls: int) -> dict[str, list[float]]:
    """Seconds per call of each path, the paths called in turn (order rotating)."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    items = list(paths.items())
    for i in range(calls):
        shift = i % len(items)
        for name, fn in items[shift:] + items[:shift]:
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


def _learner(steps: int) -> Any:
    from coordinator.algorithms.dsac import Dsac, DsacArgs

    return Dsac(DsacArgs(diffusion=steps > 0, diffusion_steps=max(steps, 1)), STATE_DIM, ACTIONS)


def update_result(quick: bool) -> Result:
    import torch

    from coordinator.algorithms.discrete_replay import DecisionBatch

    torch.set_num_threads(1)
    batch_size, calls = (64, 10) if quick else (512, 40)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(batch_size, STATE_DIM)).astype(np.float32)
    batch = DecisionBatch(
        states, rng.integers(0, ACTIONS, batch_size), -rng.random(batch_size, np.float32),
        rng.normal(size=(batch_size, STATE_DIM)).astype(np.float32),
        np.zeros(batch_size, np.float32),
    )  # fmt: skip
    learners = {steps: _learner(steps) for steps in (0, 1, 5, 10)}
    paths: dict[str, Callable[[], Any]] = {
        f"T{s}": functools.partial(learner.update, batch) for s, learner in learners.items()
    }
    _timed_in_turn(paths, 2)  # warm-up
    samples = {name: [t * 1e3 for t in ts] for name, ts in _timed_in_turn(paths, calls).items()}
    mlp_ms = median(samples["T0"])
    cases = [
        Case(
            label=f"update, diffusion {steps} step{'s' if steps > 1 else ''}, batch {batch_size}",
            ours=median(samples[f"T{steps}"]),
            reference=mlp_ms,
            samples=calls,
            details={"ours_p95_ms": round(percentile(samples[f"T{steps}"], 95), 3)},
        )
        for steps in (1, 5, 10)
    ]
    notes = [f"MLP actor (discrete SAC) update: {mlp_ms:.2f} ms; {STATE_DIM}→256→256→{ACTIONS}"]
    return Result(NAME, "ms", UPDATE_GOAL, cases, notes)


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def decision_result(quick: bool) -> Result:
    from coordinator.algorithms.diffusion_actor import (
        NOISE_INPUT,
        STATE_INPUT,
        export_onnx,
    )

    steps, calls = 5, (500 if quick else 5_000)
    diffusion = _session(export_onnx(_learner(steps).actor))
    mlp = _session(export_onnx(_learner(0).actor))
    rng = np.random.default_rng(0)
    state = rng.normal(size=(1, STATE_DIM)).astype(np.float32)
    noise = np.empty((1, steps, ACTIONS), np.float32)

    def sample(probs: np.ndarray) -> int:
        return int(rng.choice(ACTIONS, p=probs[0] / probs[0].sum()))

    def decide_diffusion() -> int:
        noise[...] = rng.standard_normal(noise.shape, np.float32)
        return sample(diffusion.run(None, {STATE_INPUT: state, NOISE_INPUT: noise})[0])

    def decide_mlp() -> int:
        return sample(mlp.run(None, {STATE_INPUT: state})[0])

    paths = {"diffusion": decide_diffusion, "mlp": decide_mlp}
    _timed_in_turn(paths, 50)
    samples = {name: [t * 1e6 for t in ts] for name, ts in _timed_in_turn(paths, calls).items()}
    ours, reference = median(samples["diffusion"]), median(samples["mlp"])
    case = Case(
        label=f"ONNX decision, diffusion {steps} steps vs MLP",
        ours=ours,
        reference=reference,
        samples=calls,
        details={
            "ours_p95_us": round(percentile(samples["diffusion"], 95), 1),
            "reference_p95_us": round(percentile(samples["mlp"], 95), 1),
            "share_of_slot_pct": round(100 * ours / (SLOT_S * 1e6), 4),
        },
    )
    notes = [f"diffusion decision = {100 * ours / (SLOT_S * 1e6):.3f} % of a {SLOT_S:g} s slot"]
    return Result(NAME, "µs", DECISION_GOAL, [case], notes)


def run(quick: bool = False) -> list[Result]:
    return [report(update_result(quick)), report(decision_result(quick))]


if __name__ == "__main__":
    import sys

    run("--quick" in sys.argv[1:])  # two Results: common.standalone takes one
