"""Evaluate policies on the same seeds and the same task sequences (common random
numbers), on the live bench or in the twin.

A policy is what `coordinator.policy_choice.parse_policy` reads: a heuristic by name
or trained actors (a training run's folder, a folder of per-agent actors, or one ONNX
file for every agent). In `live` the actors run on the boards (`LoadPolicy`); in
`twin` the same files run in ONNX Runtime here. Every evaluation of a seed sees the
same tasks: the generator is a function of (seed, agent, slot) on both backends.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.policy_choice import ORACLE, PolicyChoice
from coordinator.records import percentile, summarise
from testbed.config import TestbedConfig, apply_sets, config_from_dict
from testbed.exit_codes import ExitCode, TestbedExit


@dataclass
class EvalResult:
    policy: str
    seed: int
    backend: str
    tasks: int
    completion_rate: float
    latency_ms: float
    latency_p95_ms: float
    energy_j: float
    reward: float
    energy_methods: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    run_dir: str = ""

    def metrics(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def with_seed(cfg: TestbedConfig, seed: int, **sets: Any) -> TestbedConfig:
    # keep_secrets: a password from broker.url stays a Secret, not `<redacted>`
    data = apply_sets(cfg.to_dict(keep_secrets=True), [("seed", seed), *sets.items()])
    return config_from_dict(data, f"{cfg.experiment} (seed {seed})")


# ---------------------------------------------------------------------------- twin


def evaluate_twin(cfg: TestbedConfig, policy: PolicyChoice, seed: int, slots: int) -> EvalResult:
    """`slots` slots of the twin on the task sequence of `seed` (env 0 = the live bench's)."""
    from coordinator.envs.heuristics import make_heuristic
    from coordinator.envs.twin import TwinEnv
    from coordinator.envs.twin_params import TwinParams

    cfg = with_seed(cfg, seed)
    env = TwinEnv(
        TwinParams.from_config(cfg), 1, tasks="crn", seed=seed, episode_slots=slots,
        model_aware=policy.model_aware,
    )  # fmt: skip
    if policy.heuristic == ORACLE:
        from coordinator.envs.oracle import OracleTooLarge, SlotOracle

        oracle = SlotOracle()

        def act(_obs: np.ndarray) -> np.ndarray:
            try:
                return oracle.act(env)
            except OracleTooLarge as exc:
                raise TestbedExit(ExitCode.USAGE, f"oracle: {exc}") from None

    elif policy.heuristic:
        heuristic = make_heuristic(policy.heuristic, seed=seed, crn=True)

        def act(_obs: np.ndarray) -> np.ndarray:
            return heuristic.act(env)

    else:
        act = onnx_policy(policy, env.agent_ids)
    obs = env.reset(seed=seed)
    latency, energy, done, reward = [], [], [], []
    for _ in range(slots):
        out = env.step(act(obs))
        mask = out.has_task[0]
        latency += (out.latency_s[0][mask] * 1e3).tolist()
        energy += out.energy_j[0][mask].tolist()
        done += out.completed[0][mask].tolist()
        reward += out.reward[0][mask].tolist()
        obs = out.obs
    env.close()
    served = [v for v in latency if v > 0]
    methods = ["calibrated twin" if cfg.twin.calibration else "paper model (twin)"]
    return EvalResult(
        policy.label, seed, "twin", len(done),
        completion_rate=sum(done) / len(done) if done else math.nan,
        latency_ms=statistics.fmean(served) if served else math.nan,
        latency_p95_ms=percentile(served, 95),
        energy_j=statistics.fmean(energy) if energy else math.nan,
        reward=statistics.fmean(reward) if reward else math.nan,
        energy_methods=methods,
    )  # fmt: skip


def onnx_policy(policy: PolicyChoice, agent_ids: list[str]) -> Any:
    """The exported actors of `policy` as one function of a batch of observations
    (envs × agents × features) to actions (envs × agents × action), each agent's actor
    an ONNX Runtime session on one CPU thread: what the twin evaluation steps, and what
    the results scripts of docs/results/ replay."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [
        ort.InferenceSession(policy.actor_for(a).model, options, providers=["CPUExecutionProvider"])
        for a in agent_ids
    ]
    names = [(s.get_inputs()[0].name, s.get_outputs()[0].name) for s in sessions]

    def act(obs: np.ndarray) -> np.ndarray:
        out = [
            s.run([o], {i: np.ascontiguousarray(obs[:, n])})[0]
            for n, (s, (i, o)) in enumerate(zip(sessions, names, strict=True))
        ]
        return np.stack(out, axis=1).astype(np.float32)

    return act


# ---------------------------------------------------------------------------- live


def evaluate_live(
    cfg: TestbedConfig, policy: PolicyChoice, seed: int, slots: int, out_dir: Path
) -> EvalResult:
    """A fresh live bench for `seed` (caches as deployed), `slots` slots, decisions on the
    boards; its run folder goes under `out_dir`."""
    from collections import Counter

    from coordinator.bench_run import record_slots
    from coordinator.live import LiveBench
    from coordinator.recorder import RunRecorder
    from coordinator.run_folder import new_run_dir, write_config

    cfg = with_seed(cfg, seed, **{"run.out_dir": str(out_dir)})
    run_dir = new_run_dir(out_dir, cfg.experiment, policy.label, seed)
    with LiveBench(cfg, run_dir, write_config(run_dir, cfg), _zoo_dir(cfg)) as bench:
        bench.start(policy.board_policies([s.id for s in cfg.agent_specs()]))
        recorder = RunRecorder(run_dir, extra=lambda: {"policy": policy.label, "seed": seed})
        records = record_slots(bench, recorder, range(slots))
    summary = summarise(records)
    served = [r.latency_ms for r in records if r.latency_ms > 0]
    methods = sorted({p.method.value for r in records for p in r.energy})
    failures = Counter(r.reason.value for r in records if not r.completed)
    return EvalResult(
        policy.label, seed, "live", len(records),
        completion_rate=summary["completion_rate"],
        latency_ms=statistics.fmean(served) if served else math.nan,
        latency_p95_ms=percentile(served, 95),
        energy_j=summary["energy_j"]["mean_per_task"],
        reward=statistics.fmean(r.reward for r in records) if records else math.nan,
        energy_methods=methods, failures=dict(failures), run_dir=str(run_dir),
    )  # fmt: skip


def _zoo_dir(cfg: TestbedConfig) -> Path:
    from coordinator.bench_setup import zoo_dir_of

    return zoo_dir_of(cfg)[0]


def evaluate(
    cfg: TestbedConfig, policy: PolicyChoice, seed: int, slots: int, backend: str, out_dir: Path
) -> EvalResult:
    if backend == "live":
        return evaluate_live(cfg, policy, seed, slots, out_dir)
    if backend == "twin":
        return evaluate_twin(cfg, policy, seed, slots)
    raise TestbedExit(ExitCode.USAGE, f"unknown backend {backend!r}; choose live or twin")
