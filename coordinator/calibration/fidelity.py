"""The twin's fidelity gap, in numbers: each heuristic run on the live bench and in the
twin on the same seed, the same task sequence (CRN) and the same slots, compared on
mean and p95 latency, mean energy per task, completion rate and mean reward.

The twin is run twice per policy — calibrated (the file just measured) and with the
paper's model (no calibration) — so the report also shows what calibrating buys.
`fidelity_report` builds the report of a calibrate run; `FidelityReport` writes it
(markdown and JSON).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.calibration.windows import (
    WindowGaps,
    first_slot,
    number_cell,
    percent_cell,
    windows_markdown,
)
from coordinator.calibration_file import Calibration
from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import REASONS, TaskSource, TwinEnv
from coordinator.envs.twin_params import TwinParams
from coordinator.records import percentile
from testbed.config import TestbedConfig
from testbed.messages import TaskRecord
from testbed.zoo.catalog import Catalog

POLICIES = ("local", "offload", "greedy", "random")
"""The heuristics of the fidelity runs."""
CALIBRATION_POLICIES = ("local", "offload", "random")
"""The heuristics whose runs the figures are fitted to (fit.py; `random`: the mixed
slots' factors, mixed.py, in calibrations from 2026-12-02 on)."""
METRICS = ("latency_mean_s", "latency_p95_s", "energy_mean_j", "completion_rate", "reward_mean")
_LABELS = {
    "latency_mean_s": "mean latency (s)",
    "latency_p95_s": "p95 latency (s)",
    "energy_mean_j": "mean energy (J)",
    "completion_rate": "completion rate",
    "reward_mean": "mean reward",
}


@dataclass(frozen=True)
class RunMetrics:
    """What a run of one policy came to (over every generated task)."""

    tasks: int
    latency_mean_s: float
    latency_p95_s: float
    energy_mean_j: float
    completion_rate: float
    reward_mean: float
    failures: dict[str, int]

    @classmethod
    def of(
        cls,
        latency_s: Sequence[float],
        energy_j: Sequence[float],
        completed: Sequence[bool],
        reward: Sequence[float],
        reasons: Sequence[str],
    ) -> RunMetrics:
        served = [x for x in latency_s if x > 0]  # as the run summary: served tasks' latency
        n = len(energy_j)
        fails: dict[str, int] = {}
        for reason in reasons:
            if reason != "none":
                fails[reason] = fails.get(reason, 0) + 1
        return cls(
            tasks=n,
            latency_mean_s=float(np.mean(served)) if served else math.nan,
            latency_p95_s=percentile(served, 95),
            energy_mean_j=float(np.mean(energy_j)) if n else math.nan,
            completion_rate=float(np.mean(completed)) if n else math.nan,
            reward_mean=float(np.mean(reward)) if n else math.nan,
            failures=dict(sorted(fails.items())),
        )


def live_metrics(records: list[TaskRecord]) -> RunMetrics:
    return RunMetrics.of(
        [r.latency_ms / 1e3 for r in records],
        [r.energy_j for r in records],
        [r.completed for r in records],
        [r.reward for r in records],
        [r.reason.value for r in records],
    )


def csv_metrics(path: Path) -> RunMetrics:
    """`live_metrics` of a run's task records as written to CSV (coordinator/records.py)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return RunMetrics.of(
        [float(r["latency_ms"]) / 1e3 for r in rows],
        [float(r["energy_j"]) for r in rows],
        [r["outcome"] == "completed" for r in rows],
        [float(r["reward"]) for r in rows],
        [r["reason"] for r in rows],
    )


def twin_metrics(
    cfg: TestbedConfig,
    policy: str,
    slots: int,
    calibration: Calibration | None,
    catalog: Catalog | None = None,
    *,
    first_slot: int = 0,
) -> RunMetrics:
    """`policy` for `slots` slots in the twin (E = 1) from slot `first_slot` (0 or a
    multiple of `slots`) of the config's seed, from the edges' preload, with the live
    bench's tasks (CRN) and, for random, its boards' draws (continued through the
    slots before `first_slot`, as the live boards' were by the run before)."""
    if first_slot % slots:
        raise ValueError(f"first_slot must be a multiple of slots, got {first_slot}")
    params = TwinParams.from_config(cfg, calibration, catalog=catalog, use_config_calibration=False)
    env = TwinEnv(params, 1, tasks=TaskSource.CRN, episode_slots=slots)
    env.reset(seed=cfg.seed)
    heuristic = make_heuristic(policy, seed=cfg.seed, crn=True)
    local = make_heuristic("local")
    skip = heuristic if policy == "random" else local
    for _ in range(first_slot):  # on to the episode that starts at first_slot
        env.step(skip.act(env))
    lat: list[float] = []
    energy: list[float] = []
    done: list[bool] = []
    reward: list[float] = []
    reasons: list[str] = []
    for _ in range(slots):
        out = env.step(heuristic.act(env))
        m = out.has_task[0]
        lat += out.latency_s[0][m].tolist()
        energy += out.energy_j[0][m].tolist()
        done += out.completed[0][m].tolist()
        reward += out.reward[0][m].tolist()
        reasons += [REASONS[c].value for c in out.info["reason"][0][m]]
    return RunMetrics.of(lat, energy, done, reward, reasons)


@dataclass(frozen=True)
class PolicyGap:
    policy: str
    live: RunMetrics
    twin: RunMetrics
    paper: RunMetrics

    def gap(self, metric: str, twin: RunMetrics | None = None) -> tuple[float, float]:
        """(twin − live, relative to live) for one metric."""
        got = getattr(twin or self.twin, metric)
        want = getattr(self.live, metric)
        diff = got - want
        return diff, (diff / abs(want) if want else math.nan)


def policy_gap(
    cfg: TestbedConfig,
    policy: str,
    slots: int,
    live: RunMetrics,
    calibration: Calibration,
    catalog: Catalog | None,
    first_slot: int = 0,
) -> PolicyGap:
    """`live`'s run of `policy` beside the twin's, calibrated and with the paper model."""
    return PolicyGap(
        policy,
        live,
        twin_metrics(cfg, policy, slots, calibration, catalog, first_slot=first_slot),
        twin_metrics(cfg, policy, slots, None, catalog, first_slot=first_slot),
    )


def fidelity_report(
    cfg: TestbedConfig,
    catalog: Catalog,
    calibration: Calibration,
    calibration_path: Path,
    live: dict[str, RunMetrics],
    runs: dict[str, RunMetrics],
    slots: int,
    windows: dict[str, list[RunMetrics]] | None = None,
) -> FidelityReport:
    """The report of a calibrate run: the fidelity runs of every policy in `POLICIES`
    (`live`, slots 0 … S−1), its calibration runs (`runs`, slots S … 2S−1, those of
    `CALIBRATION_POLICIES` it has) and its further fidelity windows (`windows`, by
    policy: windows 1, 2, … of windows.py) against the twin."""
    gaps = [policy_gap(cfg, p, slots, live[p], calibration, catalog) for p in POLICIES]
    more = windows or {}
    over = [
        WindowGaps(g.policy, [g, *(
            policy_gap(cfg, g.policy, slots, m, calibration, catalog, first_slot(w, slots))
            for w, m in enumerate(more[g.policy], start=1)
        )])
        for g in gaps
        if more.get(g.policy)
    ]  # fmt: skip
    in_sample = [
        policy_gap(cfg, p, slots, runs[p], calibration, catalog, first_slot=slots)
        for p in CALIBRATION_POLICIES
        if p in runs
    ]
    host = calibration.bench.host
    busy = host.get("busy_cores_before")
    busy_text = "" if busy is None else f", {busy} cores busy in the second before it started"
    context = (
        f"Host: {host.get('cpu_model', '?')}, {host.get('cpu_count', '?')} cores, 1-min load "
        f"average {host.get('load_avg_1min_before', '?')} before the bench started and "
        f"{host.get('load_avg_1min_after', '?')} when it stopped{busy_text}. "
        + _contention_line(cfg, calibration)
    )
    return FidelityReport(slots, cfg.seed, str(calibration_path), gaps, in_sample, context, over)


def _contention_line(cfg: TestbedConfig, calibration: Calibration) -> str:
    """Whether the twin priced each slot by its contention for the host (docs/twin.md)."""
    c = calibration.contention
    if c is None or not cfg.twin.host_shared(cfg.inventory.remote):
        return "Contention for the host's cores: one price per unit (not modelled)."
    return (
        f"Contention for the host's cores: modelled ({c.host_cores} cores, background load "
        f"{c.background_load:g})."
    )


@dataclass(frozen=True)
class FidelityReport:
    slots: int
    seed: int
    calibration: str
    policies: list[PolicyGap]
    in_sample: list[PolicyGap] = field(default_factory=list)
    """The calibration runs themselves (slots S … 2S−1) replayed: the model's own
    error, apart from how the bench drifted between runs."""
    context: str = ""
    """A line on the host the live runs shared (cores, load)."""
    windows: list[WindowGaps] = field(default_factory=list)
    """Each policy over its fidelity windows (`testbed calibrate --windows W`, W ≥ 2)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slots": self.slots,
            "seed": self.seed,
            "calibration": self.calibration,
            "context": self.context,
        }
        out["policies"] = {p.policy: self._gap_json(p) for p in self.policies}
        out["calibration_runs"] = {p.policy: self._gap_json(p) for p in self.in_sample}
        if self.windows:
            count = len(self.windows[0].windows)
            out["windows"] = {
                "count": count,
                "first_slots": [first_slot(w, self.slots) for w in range(count)],
                "policies": {g.policy: g.to_json() for g in self.windows},
            }
        return out

    @staticmethod
    def _gap_json(p: PolicyGap) -> dict[str, Any]:
        return {
            "live": asdict(p.live),
            "twin": asdict(p.twin),
            "twin_paper_model": asdict(p.paper),
            "gap": {m: dict(zip(("abs", "rel"), p.gap(m), strict=True)) for m in METRICS},
            "gap_paper_model": {
                m: dict(zip(("abs", "rel"), p.gap(m, p.paper), strict=True)) for m in METRICS
            },
        }

    def markdown(self) -> str:
        lines = [
            "# The twin's fidelity gap",
            "",
            f"Live bench vs twin, same seed ({self.seed}), same task sequence (CRN), "
            f"{self.slots} slots per policy; twin calibrated by `{self.calibration}`. "
            "Gap = twin − live (relative to live). The paper-model column is the twin "
            "without a calibration file." + (f" {self.context}" if self.context else ""),
            "",
            *_table(self.policies),
        ]
        if self.in_sample:
            lines += [
                "",
                f"The calibration runs themselves (slots {self.slots} … {2 * self.slots - 1}, "
                "measured in the same minutes as the fit) replayed in the twin: the model's "
                "own error, apart from how the bench drifted between runs.",
                "",
                *_table(self.in_sample),
                "",
                "The live bench's own drift between the two windows (same policy, same task "
                "distribution, other slots): "
                + "; ".join(_drift(p, self.policies) for p in self.in_sample)
                + ". A twin gap of that size is the bench moving, not the model.",
            ]
        lines += ["", "Failures (live / twin):", ""]
        for p in self.policies:
            lines.append(f"- {p.policy}: {_fails(p.live)} / {_fails(p.twin)}")
        lines += windows_markdown(self.windows, self.slots)
        return "\n".join(lines) + "\n"

    def write(self, folder: Path, stem: str = "fidelity") -> tuple[Path, Path]:
        md = folder / f"{stem}.md"
        js = folder / f"{stem}.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.to_json(), indent=1, allow_nan=True) + "\n")
        return md, js


def _table(gaps: list[PolicyGap]) -> list[str]:
    lines = [
        "| policy | metric | live | twin | gap | gap % | paper model | gap % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in gaps:
        for m in METRICS:
            diff, rel = p.gap(m)
            _, rel_paper = p.gap(m, p.paper)
            live, twin, paper = (number_cell(getattr(x, m)) for x in (p.live, p.twin, p.paper))
            lines.append(
                f"| {p.policy} | {_LABELS[m]} | {live} | {twin} | {number_cell(diff, signed=True)} "
                f"| {percent_cell(rel, ' %')} | {paper} | {percent_cell(rel_paper, ' %')} |"
            )
    return lines


def _drift(calibration_run: PolicyGap, fidelity_runs: list[PolicyGap]) -> str:
    later = next((p for p in fidelity_runs if p.policy == calibration_run.policy), None)
    if later is None:
        return ""
    parts = []
    for m in ("latency_mean_s", "energy_mean_j", "completion_rate"):
        a, b = getattr(calibration_run.live, m), getattr(later.live, m)
        rel = (b - a) / abs(a) if a else math.nan
        change = percent_cell(rel, " %")
        parts.append(f"{_LABELS[m]} {number_cell(a)} → {number_cell(b)} ({change})")
    return f"{calibration_run.policy}: " + ", ".join(parts)


def _fails(m: RunMetrics) -> str:
    return ", ".join(f"{k} {v}" for k, v in m.failures.items()) or "none"
