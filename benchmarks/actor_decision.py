"""Benchmark (issue 3): the actor's decision on the board vs a bare ONNX Runtime call.

Ours: what a board does for one task once its observation is built — `OnnxActor.decide`
(testbed/policies/actor.py): the observation copied into the session's feed, ONNX
Runtime's `run`, exploration noise drawn and added (the "noise" case), the action
decoded into (target, ratio, download). Timed per call with `perf_counter_ns`, in µs.

Reference: a bare `onnxruntime.InferenceSession.run` on the same exported actor with
the same thread settings (1 intra-op, 1 inter-op thread), the input array prebuilt:
the least a decision through ONNX Runtime's Python API can cost. The paths are called
in turn, one call each (the order rotating), in the same run: a board decides once
per slot between other work, so no path gets a hot loop's caches the others lack.

The actor is `coordinator.actors.build_actor` for the default bench's observation
spec (testbed.yaml: 3 task types, 3 edges: 45 → 256 → 256 → 6), exported with
`export_actor`. The observation comes from `agent_node.agent.board_observation` (the
board's own function) on a realistic view: the default bench's first agent and edges,
queues of 0–3 tasks, each edge holding the models it preloads. Building it is
reported separately (it is the board's cost too, but not ONNX Runtime's).

Goal (issue 3): ours ≤ 1.5 × the bare call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO,
    Case,
    Goal,
    GoalKind,
    Result,
    median,
    percentile,
    report,
    standalone,
)

NAME = "actor_decision"
GOAL = Goal(GoalKind.RATIO_AT_MOST, 1.5, "≤ 1.5 × bare ORT run")
NOISE_STD = 0.1


def default_bench() -> Any:
    """The default bench (testbed.yaml), as every board of it sees its config."""
    from testbed.config import load_config

    return load_config(REPO / "testbed.yaml", env={})


def board_view(cfg: Any) -> dict[str, Any]:
    """A realistic decision input for the bench's first agent: its task of slot 0, its
    edge views (Shannon rates to each edge, a few queued tasks, the preloaded models in
    each cache) and what `board_observation` needs besides."""
    from testbed.links import distance_m, shannon_rate_mbps
    from testbed.observation import ObservationSpec
    from testbed.policies import EdgeView
    from testbed.tasks import TaskGenerator

    spec = ObservationSpec.from_config(cfg)
    agent = cfg.agent_specs()[0]
    views = []
    for j, edge in enumerate(cfg.edge_specs()):
        rate = float(
            shannon_rate_mbps(
                cfg.agents.transmit_power_w, distance_m(agent.position_m, edge.position_m),
                cfg.links,
            )
        )  # fmt: skip
        views.append(
            EdgeView(
                edge.id, edge.position_m, edge.cpu_ghz, rate, alive=True, queue_length=j % 4,
                cached=frozenset(edge.preload), cache_free=0.3 + 0.2 * j,
            )
        )  # fmt: skip
    generator = TaskGenerator(agent.id, cfg.tasks.active_types, cfg.tasks.arrival_prob, cfg.seed)
    task = next(t for slot in range(100) if (t := generator.next(slot)) is not None)
    return {
        "spec": spec,
        "task": task,
        "position_m": agent.position_m,
        "cpu_ghz": agent.cpu_ghz,
        "queue_length": 2,
        "views": tuple(views),
    }


def exported_actor(spec: Any) -> bytes:
    """The default actor network for `spec`, exported to ONNX (needs torch)."""
    from coordinator.actors import build_actor, export_actor

    return export_actor(build_actor(spec, seed=0), spec)


def bare_session(model: bytes) -> Any:
    """The reference session: OnnxActor's thread settings, nothing else of ours."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def time_interleaved_us(paths: dict[str, Callable[[], Any]], calls: int) -> dict[str, list[float]]:
    """Per-call µs of each path, called in turn (the order rotating), so every path runs
    in the same state of the caches: a board decides once per slot, between other work,
    never in a hot loop of decisions."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    items = list(paths.items())
    clock = time.perf_counter_ns
    for i in range(calls):
        shift = i % len(items)
        for name, fn in items[shift:] + items[:shift]:
            t0 = clock()
            fn()
            out[name].append((clock() - t0) / 1e3)
    return out


def run(quick: bool = False) -> Result:
    from agent_node.agent import board_observation
    from testbed.policies import DecisionContext
    from testbed.policies.actor import OnnxActor

    calls = 2_000 if quick else 30_000
    view = board_view(default_bench())
    spec = view["spec"]
    model = exported_actor(spec)
    actor = OnnxActor(model, spec, threads=1)
    session = bare_session(model)
    out_name = session.get_outputs()[0].name
    in_name = session.get_inputs()[0].name

    def observe() -> np.ndarray:
        return board_observation(
            spec, view["task"], view["position_m"], view["cpu_ghz"], view["queue_length"],
            view["views"],
        )  # fmt: skip

    obs = observe()
    feed = {in_name: obs[None].copy()}
    ctx = DecisionContext(
        spec, obs, view["task"], view["position_m"], view["views"], np.random.default_rng(0)
    )
    expected = session.run([out_name], feed)[0][0]
    if not np.allclose(actor.decide(ctx).raw, expected, atol=1e-6):
        raise RuntimeError("OnnxActor and the bare session disagree on the same observation")

    paths: dict[str, Callable[[], Any]] = {
        "decide": lambda: actor.decide(ctx),
        "decide_noise": lambda: actor.decide(ctx, NOISE_STD),
        "bare": lambda: session.run([out_name], feed),
        "observe": observe,
    }
    time_interleaved_us(paths, 200)  # warm-up: ORT's first runs allocate
    samples = time_interleaved_us(paths, calls)
    bare_us = median(samples["bare"])
    observe_us = median(samples["observe"])
    dims = f"{spec.obs_dim}→256→256→{spec.action_dim}"
    cases = []
    for name, label in (
        ("decide", "decide, no noise"),
        ("decide_noise", f"decide, noise σ={NOISE_STD}"),
    ):
        cases.append(
            Case(
                label=f"{label}, {dims}",
                ours=median(samples[name]),
                reference=bare_us,
                samples=len(samples[name]),
                details={
                    "ours_p95_us": round(percentile(samples[name], 95), 2),
                    "reference_p95_us": round(percentile(samples["bare"], 95), 2),
                    "observe_us": round(observe_us, 2),
                    "observe_p95_us": round(percentile(samples["observe"], 95), 2),
                },
            )
        )
    notes = [
        f"building the observation (board_observation, {spec.obs_dim} features): "
        f"{observe_us:.1f} µs median (p95 {percentile(samples['observe'], 95):.1f}); "
        f"observe + decide ≈ {observe_us + cases[0].ours:.1f} µs per task on the board",
        "ORT 1 intra-op + 1 inter-op thread on both paths; single caller",
    ]
    return report(Result(NAME, "µs", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
