"""The §B calibration fitted from measured shares (docs/coedge.md, "Calibration and
the twin's gap"), as pure functions: shares.csv rows and the tasks they belong to →
a `CoedgeCalibration` (coordinator/coedge_calibration_file.py).

A share of x_j of a task of D Mbit and C cycles/bit carries x_j·D Mbit and
x_j·D·C/10³ Gcycles (the twin's units, coordinator/envs/coedge_twin.py). Per edge,
its measured compute times against its Gcycles give the seconds per Gcycle (the
effective f_j) and a fixed compute cost per share; per link, its measured upload
times against its Mbit give the effective rate and a fixed transfer cost; what a
share's finish holds beyond queue, compute and the paced transfer is fixed cost:
a part per link and a part per other share of the same task (its siblings, served
by the same board at once), fitted together with one intercept per link (a
fixed-effects line: the slope from each link's shares about their own mean). Then
each share's residual (its finish less the model's, queue as measured): a task split
n ways ends with its latest share, so its delay exceeds the model's common finish by
the largest of n residuals — per n, the mean over tasks of their largest residual
less the mean residual of their shares (`split_excess_s`; 0 for one share). Only
completed shares are used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.coedge_calibration_file import CoedgeCalibration, EdgeFit, FitMethod, LinkFit
from testbed.tasks import Task

MIN_FIT_SHARES = 3
"""Fewest shares for a fit with an intercept (two points always fit a line exactly)."""
MIN_LINK_R2 = 0.5
"""A link's fitted rate is used only where share sizes explain at least half of the
variance of its upload times; below that the paced rate cannot be told from the
noise of a shared host (a share of ~0.3 Mbit takes < 1 ms at 400 Mbit/s against a
fixed ~10 ms), and the configured rate, which the pacer enforces, is kept."""


@dataclass(frozen=True)
class ShareSample:
    """One completed share, in seconds, Mbit and Gcycles."""

    station: int
    edge: int
    mbit: float
    gcycles: float
    tx_s: float
    queue_s: float
    compute_s: float
    finish_s: float
    siblings: int = 0
    """The task's other shares (its share count − 1)."""
    task_key: str = ""
    """The task within its run, `<run>/<task id>` (a task id is in every run of its slots)."""


def share_samples(
    rows: Iterable[Mapping[str, Any]],
    tasks: Mapping[str, Task],
    stations: Sequence[str],
    edges: Sequence[str],
    run: str = "",
) -> list[ShareSample]:
    """The completed shares of one run's shares.csv `rows` (coordinator/coedge_shares.py;
    a task's rows count its shares, so runs are read one at a time) whose task is in
    `tasks` (by task id); `stations` the agent ids in station order, `edges`
    the edge ids in the same order; `run` names the run in each sample's `task_key`."""
    rows = list(rows)
    count = Counter(str(row["task_id"]) for row in rows)
    out = []
    for row in rows:
        task = tasks.get(str(row["task_id"]))
        if row["outcome"] != "completed" or task is None:
            continue
        share = float(row["share"])
        out.append(ShareSample(
            station=stations.index(str(row["agent_id"])), edge=edges.index(str(row["edge_id"])),
            mbit=share * task.size_mbit,
            gcycles=share * task.size_mbit * task.density_cycles_per_bit / 1e3,
            tx_s=float(row["t_tx_ms"]) / 1e3, queue_s=float(row["t_edge_queue_ms"]) / 1e3,
            compute_s=float(row["t_edge_compute_ms"]) / 1e3,
            finish_s=float(row["finish_ms"]) / 1e3, siblings=count[str(row["task_id"])] - 1,
            task_key=f"{run}/{task.task_id}",
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class Line:
    """y = intercept + slope·x, how it was fitted and how well (R²)."""

    slope: float
    intercept: float
    method: FitMethod
    r2: float


def fit_line(x: Sequence[float], y: Sequence[float]) -> Line:
    """Least squares with an intercept where there are `MIN_FIT_SHARES` points with
    spread in x and the fit has a positive slope and a non-negative intercept;
    else the slope through the origin (a fixed part cannot be told from noise)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(xs) >= MIN_FIT_SHARES and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        if slope > 0 and intercept >= 0:
            return Line(float(slope), float(intercept), FitMethod.LEAST_SQUARES,
                        _r2(xs, ys, slope, intercept))  # fmt: skip
    slope = float(xs @ ys / (xs @ xs)) if len(xs) and xs @ xs > 0 else math.nan
    return Line(slope, 0.0, FitMethod.THROUGH_ORIGIN, _r2(xs, ys, slope, 0.0))


def _r2(xs: Any, ys: Any, slope: float, intercept: float) -> float:
    if len(ys) < 2 or not math.isfinite(slope):
        return math.nan
    total = float(((ys - ys.mean()) ** 2).sum())
    left = float(((ys - intercept - slope * xs) ** 2).sum())
    return 1.0 - left / total if total > 0 else math.nan


def fit_edges(samples: Sequence[ShareSample], edge_ids: Sequence[str],
              bench_ghz: Sequence[float]) -> list[EdgeFit]:  # fmt: skip
    """Each edge's compute line; an edge no share measured gets the measured edges'
    cost scaled by the bench clocks `bench_ghz` (s_k·f_k / f_j, their mean)."""
    fits: list[EdgeFit | None] = []
    for j, edge_id in enumerate(edge_ids):
        mine = [s for s in samples if s.edge == j]
        line = fit_line([s.gcycles for s in mine], [s.compute_s for s in mine])
        ok = mine and math.isfinite(line.slope) and line.slope > 0
        fits.append(EdgeFit(edge_id, line.slope, line.intercept, line.method, len(mine),
                            line.r2) if ok else None)  # fmt: skip
    measured = [(j, f) for j, f in enumerate(fits) if f is not None]
    if not measured:
        raise ValueError("no completed share measured any edge's compute")
    at_1ghz = float(np.mean([f.s_per_gcycle * bench_ghz[j] for j, f in measured]))
    return [
        f if f is not None
        else EdgeFit(edge_ids[j], at_1ghz / bench_ghz[j], 0.0, FitMethod.NOT_MEASURED, 0, math.nan)
        for j, f in enumerate(fits)
    ]  # fmt: skip


def fit_links(
    samples: Sequence[ShareSample], rates_mbps: Sequence[Sequence[float]]
) -> tuple[list[LinkFit], float]:
    """Each station → edge link, station-major, and the cost per sibling share;
    `rates_mbps` the configured r_bj (inf on the diagonal). A link no share used gets
    its configured rate and the mean fixed costs of the measured links of its kind
    (home or not)."""
    b = len(rates_mbps)
    groups = {(i, j): [s for s in samples if s.station == i and s.edge == j]
              for i in range(b) for j in range(b)}  # fmt: skip
    uploads = {k: _upload_fit(mine, float(rates_mbps[k[0]][k[1]]))
               for k, mine in groups.items() if mine}  # fmt: skip
    fixed = {k: [s.finish_s - s.queue_s - s.compute_s - s.mbit / uploads[k][0] for s in mine]
             for k, mine in groups.items() if mine}  # fmt: skip
    siblings = {k: [float(s.siblings) for s in groups[k]] for k in fixed}
    per_sibling = max(0.0, within_slope(list(siblings.values()), list(fixed.values())))
    fits: dict[tuple[int, int], LinkFit] = {}
    for k, ys in fixed.items():
        rate, tx_fixed, method = uploads[k]
        rest = float(np.mean(ys) - per_sibling * np.mean(siblings[k]))
        fits[k] = LinkFit(k[0], k[1], rate, tx_fixed, rest - tx_fixed, method, len(ys))
    out = []
    for (i, j), mine in groups.items():
        if mine:
            out.append(fits[(i, j)])
            continue
        kind = [f for (k, m), f in fits.items() if (k == m) == (i == j)]
        tx = float(np.mean([f.tx_fixed_s for f in kind])) if kind else 0.0
        reply = float(np.mean([f.reply_s for f in kind])) if kind else 0.0
        out.append(LinkFit(i, j, float(rates_mbps[i][j]), tx, reply, FitMethod.NOT_MEASURED, 0))
    return out, per_sibling


def within_slope(xs: Sequence[Sequence[float]], ys: Sequence[Sequence[float]]) -> float:
    """The slope of y on x with one intercept per group: Σ (x − x̄_g)(y − ȳ_g) /
    Σ (x − x̄_g)² over every group g; 0 where x never varies within a group."""
    num = den = 0.0
    for x, y in zip(xs, ys, strict=True):
        dx = np.asarray(x) - np.mean(x)
        num += float(dx @ (np.asarray(y) - np.mean(y)))
        den += float(dx @ dx)
    return num / den if den > 0 else 0.0


def _upload_fit(mine: Sequence[ShareSample], rate_mbps: float) -> tuple[float, float, FitMethod]:
    """(rate, fixed upload s, how): the link's upload line, or the configured rate."""
    tx = [s.tx_s for s in mine]
    if math.isinf(rate_mbps):  # the home edge: never paced, the upload is all fixed cost
        return math.inf, float(np.mean(tx)), FitMethod.LEAST_SQUARES
    line = fit_line([s.mbit for s in mine], tx)
    if line.method is FitMethod.LEAST_SQUARES and line.r2 >= MIN_LINK_R2:
        return 1.0 / line.slope, line.intercept, line.method
    fixed = max(0.0, float(np.mean([s.tx_s - s.mbit / rate_mbps for s in mine])))
    return rate_mbps, fixed, FitMethod.CONFIGURED_RATE


def split_excess(
    samples: Sequence[ShareSample], edges: Sequence[EdgeFit], links: Sequence[LinkFit],
    per_sibling_s: float,
) -> tuple[list[float], list[int]]:  # fmt: skip
    """Per share count n = 1 … B: how much later than the model a task split n ways
    ends (the mean of its largest share residual less the mean of its shares'), and
    over how many tasks; 0 for n = 1 and where no task had every one of n shares
    complete."""
    b = len(edges)
    by_task: dict[str, list[float]] = {}
    shares: dict[str, int] = {}
    for s in samples:
        e, ln = edges[s.edge], links[s.station * b + s.edge]
        model = (s.queue_s + e.compute_fixed_s + e.s_per_gcycle * s.gcycles + ln.tx_fixed_s
                 + s.mbit / ln.rate_mbps + ln.reply_s + per_sibling_s * s.siblings)  # fmt: skip
        by_task.setdefault(s.task_key, []).append(s.finish_s - model)
        shares[s.task_key] = s.siblings + 1
    excess, tasks = [], []
    for n in range(1, b + 1):
        full = [r for t, r in by_task.items() if len(r) == shares[t] == n > 1]  # all completed
        per_task = [max(r) - float(np.mean(r)) for r in full]
        excess.append(float(np.mean(per_task)) if per_task else 0.0)
        tasks.append(len(per_task))
    return excess, tasks


def fit_coedge(
    samples: Sequence[ShareSample],
    edge_ids: Sequence[str],
    bench_ghz: Sequence[float],
    rates_mbps: Sequence[Sequence[float]],
    measured: Mapping[str, Any],
) -> CoedgeCalibration:
    """The calibration of a bench from its completed shares (`measured`: what was run,
    kept in the file as it is)."""
    method = (
        "least squares per edge of compute time on Gcycles (slope: s/Gcycle = 1/f_j; "
        "intercept: fixed compute per share) and per link of upload time on Mbit (slope: "
        "1/r_bj; intercept: fixed transfer); finish - (queue + compute + Mbit/r_bj) on the "
        "task's other shares with one intercept per link (slope: per_sibling_s; the rest, "
        "less the fixed transfer: reply); coordinator/calibration/coedge_fit.py"
    )
    links, per_sibling = fit_links(samples, rates_mbps)
    edges = fit_edges(samples, edge_ids, bench_ghz)
    excess, tasks = split_excess(samples, edges, links, per_sibling)
    return CoedgeCalibration(
        edges=edges,
        links=links,
        per_sibling_s=per_sibling,
        split_excess_s=excess,
        split_tasks=tasks,
        measured={**measured, "shares_used": len(samples)},
        method=method,
    )
