"""The §B twin against the live §B bench on the same tasks (docs/coedge.md,
"Calibration and the twin's gap"): the twin replayed on the tasks the boards drew
(testbed/coedge/tasks.py, a function of seed, station and slot), each heuristic as
the boards run it (agent_node/coedge_policy.py), and the gap in mean delay, p95 delay
and completion, written as fidelity.md and fidelity.json.

The replay is the twin's own dynamics (coordinator/envs/coedge_twin.py `decide`,
`end_slot`) slot by slot from empty queues, one decision per station and step, as
the twin steps. `random` replays the boards' own draws: each task's edges as the live
run recorded them (tasks.csv `edge_id`, `live_choices`), so live and twin compare the
same decisions; without them (a task with no edge) the twin draws its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.envs.coedge_twin import CoedgeParams, decide, end_slot
from coordinator.records import percentile
from testbed.coedge.subsets import one_mask
from testbed.messages import TaskRecord
from testbed.tasks import Task
from testbed.types import Outcome

Array = np.ndarray[Any, Any]

COEDGE_POLICIES = ("home", "split-all", "least-queue", "random")
"""The heuristics a §B calibration runs live and replays in the twin."""

GOAL_MEAN_GAP = 0.10
"""The goal: the calibrated twin's mean delay within 10 % of the live bench's."""


@dataclass(frozen=True)
class DelayMetrics:
    """One run's tasks: count, mean and p95 delay of those with a delay (s), and the
    share completed within the deadline."""

    tasks: int
    mean_delay_s: float
    p95_delay_s: float
    completion_rate: float


def live_metrics(records: Sequence[TaskRecord]) -> DelayMetrics:
    """A live run's metrics, as the run's summary counts them (coordinator/coedge_shares.py)."""
    delays = [r.latency_ms / 1e3 for r in records if r.latency_ms > 0]
    done = sum(r.outcome is Outcome.COMPLETED for r in records)
    return DelayMetrics(len(records), _mean(delays), percentile(delays, 95),
                        done / len(records) if records else math.nan)  # fmt: skip


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def live_choices(records: Sequence[TaskRecord], edge_ids: Sequence[str]) -> dict[str, Array]:
    """Each task's edges as a live run recorded them (`edge_id`, the edges that got
    units joined by "+"), a (B,) mask by task id; tasks no edge got are left out."""
    out = {}
    for r in records:
        mask = np.array([e in r.edge_id.split("+") for e in edge_ids])
        if mask.any():
            out[r.task_id] = mask
    return out


def chosen_servers(
    policy: str, p: CoedgeParams, queue_gcycles: Array, rng: np.random.Generator,
    given: Sequence[Array | None] = (),
) -> Array:  # fmt: skip
    """(B, B) [station, server] the servers each station's heuristic picks now;
    `random` takes a station's `given` mask where there is one."""
    b = p.num_stations
    if policy == "home":
        return np.eye(b, dtype=bool)
    if policy == "split-all":
        return np.ones((b, b), dtype=bool)
    if policy == "least-queue":  # the least Q_j (Gcycles), lower index on ties
        return np.broadcast_to(one_mask(np.asarray(int(np.argmin(queue_gcycles))), b), (b, b))
    if policy == "random":
        drawn = p.masks[rng.integers(0, p.num_actions, b)]
        given = [*given, *[None] * b][:b]
        return np.array([g if g is not None else d for g, d in zip(given, drawn, strict=True)])
    raise ValueError(f"no twin replay of policy {policy!r}; expected one of {COEDGE_POLICIES}")


def replay_twin(
    p: CoedgeParams,
    slot_tasks: Sequence[Sequence[Sequence[Task]]],
    policy: str,
    seed: int = 0,
    choices: Mapping[str, Array] | None = None,
) -> DelayMetrics:
    """The twin on `slot_tasks[slot][station]` (each station's tasks in order) under
    `policy`, from empty queues; `choices`: `random`'s masks by task id."""
    b = p.num_stations
    rng = np.random.default_rng(seed)
    choices = choices or {}
    delays: list[float] = []
    queue, link = np.zeros(b), np.zeros((b, b))
    for stations in slot_tasks:
        for k in range(max((len(t) for t in stations), default=0)):
            now = [t[k] if k < len(t) else None for t in stations]
            has = np.array([t is not None for t in now])
            size = np.array([t.size_mbit if t else 0.0 for t in now])
            cycles = np.array([t.size_mbit * t.density_cycles_per_bit / 1e3 if t else 0.0
                               for t in now])  # fmt: skip
            given = [choices.get(t.task_id) if t else None for t in now]
            chosen = chosen_servers(policy, p, queue, rng, given)
            out = decide(p, queue, link, (size, cycles, has), chosen)
            queue, link = out.queue_gcycles, out.link_s
            delays += out.delay_s[has].tolist()
        queue, link = end_slot(p, queue, link)
    late = sum(d > p.deadline_s for d in delays)
    return DelayMetrics(len(delays), _mean(delays), percentile(delays, 95),
                        1.0 - late / len(delays) if delays else math.nan)  # fmt: skip


def relative_gap(twin: float, live: float) -> float:
    """(twin − live) / live; NaN where live is 0 or not a number."""
    return (twin - live) / live if live and math.isfinite(live) else math.nan


@dataclass(frozen=True)
class PolicyGap:
    policy: str
    live: DelayMetrics
    twin: DelayMetrics
    """The twin with the calibration (fitted on the calibration runs)."""
    in_sample: DelayMetrics
    """The twin with a calibration fitted on the fidelity runs themselves: what is
    left of the gap is the model's, not the host's drift between runs."""
    configured: DelayMetrics
    """The twin with the configured f_j and rates and no fixed costs (no calibration)."""

    def gaps(self, twin: DelayMetrics) -> dict[str, float]:
        return {
            "mean_delay": relative_gap(twin.mean_delay_s, self.live.mean_delay_s),
            "p95_delay": relative_gap(twin.p95_delay_s, self.live.p95_delay_s),
            "completion_points": twin.completion_rate - self.live.completion_rate,
        }


@dataclass(frozen=True)
class CoedgeFidelity:
    """The report: what was measured, the fit's summary and the gap per policy."""

    gaps: list[PolicyGap]
    calibration_path: str
    calibration_summary: str
    measured: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration": self.calibration_path,
            "measured": dict(self.measured),
            "goal_mean_delay_gap": GOAL_MEAN_GAP,
            "policies": {
                g.policy: {"live": asdict(g.live), "twin": asdict(g.twin),
                           "twin_in_sample": asdict(g.in_sample),
                           "twin_configured": asdict(g.configured), "gap": g.gaps(g.twin),
                           "gap_in_sample": g.gaps(g.in_sample),
                           "gap_configured": g.gaps(g.configured)}
                for g in self.gaps
            },
        }  # fmt: skip

    def markdown(self) -> str:
        m = self.measured
        lines = [
            "# The §B twin's fidelity gap (live bench vs twin, same tasks)",
            "",
            f"Measured on the live §B bench: {m.get('policies')} for {m.get('slots')} clocked "
            f"slot(s) each (fidelity runs, slots 0…S−1; the fit used the calibration runs "
            f"on slots S…2S−1), seed {m.get('seed')}, run folder `{m.get('run_dir')}`, host "
            f"load average {m.get('load_avg_1min_before')} → {m.get('load_avg_1min_after')}. "
            f"Calibration: `{self.calibration_path}`.",
            "",
            "Live: the bench's records. Twin (calibrated): coordinator/envs/coedge_twin.py "
            "with this calibration on the same tasks. In-sample: the same twin with a "
            "calibration fitted on these fidelity runs (calibration-in-sample.json): what is "
            "left is the model's gap, the rest the host's drift between runs. Twin "
            "(configured): the same twin with `coedge.edge_ghz`, the configured rates and no "
            "fixed costs. Gap = (twin − live) "
            f"/ live; goal: calibrated mean delay within {GOAL_MEAN_GAP:.0%}. `random`: the twin "
            "replays each task's edges as the boards drew them (tasks.csv `edge_id`).",
            "",
            "| policy | tasks | live mean (ms) | twin mean (ms) | gap | in-sample twin mean "
            "(ms), gap | live p95 (ms) | twin p95 (ms) | gap | live / twin completion | "
            "configured twin mean (ms), gap |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g in self.gaps:
            cal, conf, ins = g.gaps(g.twin), g.gaps(g.configured), g.gaps(g.in_sample)
            lines.append(
                f"| {g.policy} | {g.live.tasks} | {g.live.mean_delay_s * 1e3:.1f} | "
                f"{g.twin.mean_delay_s * 1e3:.1f} | {_pct(cal['mean_delay'])} | "
                f"{g.in_sample.mean_delay_s * 1e3:.1f}, {_pct(ins['mean_delay'])} | "
                f"{g.live.p95_delay_s * 1e3:.1f} | {g.twin.p95_delay_s * 1e3:.1f} | "
                f"{_pct(cal['p95_delay'])} | {g.live.completion_rate:.2f} / "
                f"{g.twin.completion_rate:.2f} | {g.configured.mean_delay_s * 1e3:.1f}, "
                f"{_pct(conf['mean_delay'])} |"
            )
        met = [abs(g.gaps(g.twin)["mean_delay"]) <= GOAL_MEAN_GAP for g in self.gaps]
        within = [abs(g.gaps(g.in_sample)["mean_delay"]) <= GOAL_MEAN_GAP for g in self.gaps]
        lines += [f"\nWithin the goal on mean delay: {sum(met)} of {len(met)} policies "
                  f"({sum(within)} of {len(within)} in-sample).", ""]  # fmt: skip
        lines += ["## The calibration", "", "```", self.calibration_summary, "```", ""]
        return "\n".join(lines)

    def write(self, md_path: Path) -> tuple[Path, Path]:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(self.markdown())
        js = md_path.with_suffix(".json")
        js.write_text(json.dumps(self.to_dict(), indent=2, default=_json_number) + "\n")
        return md_path, js


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.0%}"


def _json_number(x: Any) -> Any:
    return str(x)
