"""The §B experiments (experiments/coedge_*.yaml, docs/coedge.md "Experiments"): one
swept `coedge.*` key, the schedulers of coordinator/schedulers.py, seeds; every cell
trained in the twin (coordinator/envs/coedge_twin.py) and evaluated there, and with
`evaluate.backend: live` (or `auto` on a live §B config the machine holds) also on the
live bench (coordinator/coedge_live_eval.py): then the cell's `delay_s`, `completion`
and sampled figures are the live ones, the twin's beside them as `twin_*`.

For each sweep value and seed every scheduler is trained (if it learns) on the twin of
that value's config with the seed as master seed, then evaluated greedily on
`evaluate.num_envs` environments for `evaluate.steps` steps from `reset(10 000 + seed)`:
the same tasks for every scheduler of the (value, seed) pair, so they compare paired by
seed. Each finished cell is written to `cells/<value>__<algorithm>__<seed>.json` at
once; a run again with the same output folder skips the cells found there. At the end
`results.json` (every cell and the summary) and `report.md` (coordinator/coedge_report.py).

The summary: per value and scheduler, the mean delay and the completion (tasks within
the deadline) over seeds with 95 % Student-t intervals (coordinator/stats.py); and
DDRL-AMSA's delay reduction against DRLCoEdge and SMCoEdge, per seed in % of the
baseline's delay, as a mean with its interval and a t-test that it is 0 — per value,
and over the whole sweep (every value and seed a pair).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coordinator.experiment_spec import EvalBackend, SweepSpec, load_spec_as, sweep_problems
from coordinator.schedulers import (
    SCHEDULERS,
    LearnerKind,
    evaluate_scheduler,
    learner_settings,
    train_scheduler,
)
from coordinator.stats import difference_test, t_interval
from testbed.config import load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.schema import SchemaError, load_dataclass, meta

EVAL_SEED_OFFSET = 10_000
"""Evaluation tasks are drawn from seed + this (never the training tasks)."""
PROPOSED = "ddrl-amsa"
BASELINES_OF_PAPER = {"drlcoedge": 18.22, "smcoedge": 13.54}
"""The paper's "at least" delay reductions of DDRL-AMSA, % (docs/papers.md §B)."""


@dataclass(frozen=True)
class CoedgeTrainSpec:
    env_steps: int = field(
        default=8_000, metadata=meta("Environment steps per training run.", ge=1)
    )
    num_envs: int = field(default=8, metadata=meta("Twin environments trained together.", ge=1))
    overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata=meta("DsacArgs / DqnArgs keys over coordinator/schedulers.py's COEDGE_TRAIN."),
    )


@dataclass(frozen=True)
class CoedgeEvalSpec:
    num_envs: int = field(default=16, metadata=meta("Twin environments evaluated.", ge=1))
    steps: int = field(default=500, metadata=meta("Steps of them per evaluation.", ge=1))
    backend: EvalBackend = field(
        default=EvalBackend.AUTO,
        metadata=meta("live, twin, or auto: live where the config is a live §B bench "
                      "(run.system coedge) of at most max_live_stations stations."),
    )  # fmt: skip
    slots: int = field(default=10, metadata=meta("Slots per live evaluation.", ge=1))
    max_live_stations: int = field(
        default=3, metadata=meta("auto picks live only up to this many stations.", ge=1)
    )


@dataclass(frozen=True)
class CoedgeSpec:
    name: str = field(metadata=meta("Experiment name (folders, report title)."))
    sweep: SweepSpec = field(metadata=meta("The swept config key and its values."))
    description: str = field(default="", metadata=meta("One paragraph for the report."))
    config: str = field(
        default="testbed.yaml", metadata=meta("The testbed file (relative: to the working folder).")
    )
    set: dict[str, Any] = field(default_factory=dict, metadata=meta("Overrides for every cell."))
    algorithms: list[str] = field(
        default_factory=lambda: ["ddrl-amsa", "drlcoedge", "smcoedge", "random"],
        metadata=meta("Schedulers (coordinator/schedulers.py).", min_len=1),
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 4], metadata=meta("Seeds.", ge=0, min_len=1)
    )
    train: CoedgeTrainSpec = field(default_factory=CoedgeTrainSpec, metadata=meta("Training."))
    evaluate: CoedgeEvalSpec = field(default_factory=CoedgeEvalSpec, metadata=meta("Evaluation."))

    def check(self) -> list[tuple[str, str]]:
        return sweep_problems(self.algorithms, SCHEDULERS, "scheduler", self.sweep)


def load_coedge_spec(path: str | os.PathLike[str]) -> CoedgeSpec:
    """Load and validate a §B experiment spec; errors name the key path (exit 2)."""
    return load_spec_as(CoedgeSpec, path)


@dataclass(frozen=True)
class Cell:
    value: Any
    algorithm: str
    seed: int

    @property
    def file_name(self) -> str:
        text = json.dumps(self.value) if not isinstance(self.value, str) else self.value
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in text)
        return f"{safe}__{self.algorithm}__{self.seed}.json"


def cells_of(spec: CoedgeSpec) -> list[Cell]:
    return [Cell(v, a, s) for v in spec.sweep.values for s in spec.seeds for a in spec.algorithms]


def cell_config(spec: CoedgeSpec, value: Any, seed: int) -> Any:
    sets: list[Any] = [*spec.set.items(), (spec.sweep.key, value), ("seed", seed)]
    return load_config(spec.config, sets=sets)


def backend_of(spec: CoedgeSpec, cell: Cell) -> tuple[str, str]:
    """(live|twin, why) for `cell` (coordinator/coedge_live_eval.py `cell_backend`)."""
    from coordinator.coedge_live_eval import cell_backend

    cfg = cell_config(spec, cell.value, cell.seed)
    ev = spec.evaluate
    return cell_backend(ev.backend, ev.max_live_stations, cfg, cell.algorithm)


def run_cell(spec: CoedgeSpec, cell: Cell, out: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one scheduler at one sweep value and seed; a live cell's
    bench runs go under `out`/live (default: runs/<spec name>)."""
    cfg = cell_config(spec, cell.value, cell.seed)
    t0 = time.perf_counter()
    trained = train_scheduler(
        cell.algorithm, cfg, cell.seed, spec.train.env_steps,
        num_envs=spec.train.num_envs, overrides=spec.train.overrides,
    )  # fmt: skip
    t1 = time.perf_counter()
    seed, envs, steps = EVAL_SEED_OFFSET + cell.seed, spec.evaluate.num_envs, spec.evaluate.steps
    metrics = evaluate_scheduler(trained, seed, num_envs=envs, steps=steps)
    if SCHEDULERS[cell.algorithm].learner is LearnerKind.DSAC:
        # A soft actor's greedy argmax and its draws from π can differ a lot: both.
        drawn = evaluate_scheduler(trained, seed, num_envs=envs, steps=steps, sampled=True)
        metrics |= {"sampled_delay_s": drawn["delay_s"], "sampled_completion": drawn["completion"]}
    where, why = backend_of(spec, cell)
    if where == "live":
        from coordinator.coedge_live_eval import evaluate_live

        live = evaluate_live(trained, seed, spec.evaluate.slots,
                             (out or Path("runs") / spec.name) / "live")  # fmt: skip
        metrics = {**{f"twin_{k}": v for k, v in metrics.items()}, **live}
    return {
        "value": cell.value, "algorithm": cell.algorithm, "seed": cell.seed,
        "backend": where, "backend_reason": why,
        "action_mode": str(trained.cfg.coedge.action_mode), **metrics,
        "learner_settings": learner_settings(cfg, spec.train.overrides),
        "train_s": round(t1 - t0, 3), "eval_s": round(time.perf_counter() - t1, 3),
        "updates": trained.updates, "last_losses": trained.last_losses,
        "curve_steps": trained.curve_steps, "curve_delay_s": trained.curve_delay_s,
        "curve_reward": trained.curve_reward,
    }  # fmt: skip


def _run_cell_job(job: tuple[CoedgeSpec, Cell, str]) -> dict[str, Any]:
    spec, cell, folder = job
    row = run_cell(spec, cell, Path(folder).parent)
    path = Path(folder) / cell.file_name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row) + "\n")
    tmp.replace(path)  # a cell file is whole or absent: a killed run resumes cleanly
    return row


def run_experiment(
    spec: CoedgeSpec, out: Path, *, workers: int = 1, command: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Every cell not yet in `out/cells/`, then results.json and report.md."""
    folder = out / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cells_of(spec) if not (folder / c.file_name).exists()]
    say = progress or (lambda _line: None)
    say(f"{len(cells_of(spec)) - len(todo)} cells done before, {len(todo)} to run")
    # Live cells run one at a time, after the twin's: one bench on the machine at once.
    live = [c for c in todo if backend_of(spec, c)[0] == "live"]
    jobs = [(spec, c, str(folder)) for c in todo if c not in live]
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(_run_cell_job, jobs):
                say(_progress_line(row))
    else:
        for job in jobs:
            say(_progress_line(_run_cell_job(job)))
    for cell in live:
        say(_progress_line(_run_cell_job((spec, cell, str(folder)))))
    return write_results(spec, out, command)


def _progress_line(row: dict[str, Any]) -> str:
    return (f"{row['value']} {row['algorithm']} seed {row['seed']} "
            f"({row.get('backend', 'twin')}): delay "
            f"{row['delay_s']:.4f} s, completion {row['completion']:.3f}, "
            f"train {row['train_s']:.1f} s")  # fmt: skip


def read_cells(spec: CoedgeSpec, out: Path) -> list[dict[str, Any]]:
    """The finished cells of `spec` in `out/cells/`, in the spec's order."""
    rows = []
    for cell in cells_of(spec):
        path = out / "cells" / cell.file_name
        if path.exists():
            rows.append(json.loads(path.read_text()))
    return rows


def _relative_reductions(
    rows: list[dict[str, Any]], base: str, pairs: Iterable[tuple[Any, int]],
    ours_key: str = "delay_s", ours: str = PROPOSED, base_key: str = "delay_s",
) -> list[float]:  # fmt: skip
    """100 · (delay_base − delay_ours) / delay_base for each (value, seed) with both;
    our delay from `ours_key` (`sampled_delay_s`: a DSAC scheduler's draws from π),
    the baseline's from `base_key` (`twin_delay_s`: a live cell's twin evaluation)."""
    delay = {(str(r["value"]), r["seed"], r["algorithm"]): r.get(base_key) for r in rows}
    mine = {(str(r["value"]), r["seed"]): r.get(ours_key) for r in rows
            if r["algorithm"] == ours}  # fmt: skip
    out = []
    for value, seed in pairs:
        own, theirs = mine.get((str(value), seed)), delay.get((str(value), seed, base))
        if own is not None and theirs is not None and theirs > 0:
            out.append(100.0 * (theirs - own) / theirs)
    return out


def _reduction(values: list[float], paper_pct: float) -> dict[str, Any]:
    test = difference_test(values)
    return {**asdict(test.difference), "p_value": test.p_value, "verdict": test.verdict.value,
            "paper_at_least_pct": paper_pct}  # fmt: skip


FIGURES = (
    "delay_s",
    "completion",
    "train_s",
    "sampled_delay_s",
    "sampled_completion",
    "twin_delay_s",
    "twin_completion",
    "twin_sampled_delay_s",
)
"""Per-cell figures given intervals (the sampled ones: DSAC schedulers only; the
twin_* ones: live cells only, their twin evaluation)."""


def _reductions(
    spec: CoedgeSpec, rows: list[dict[str, Any]], pairs: list[tuple[Any, int]], ours_key: str,
    base_key: str = "delay_s",
) -> dict[str, Any]:  # fmt: skip
    return {
        base: _reduction(
            _relative_reductions(rows, base, pairs, ours_key, PROPOSED, base_key), paper
        )
        for base, paper in BASELINES_OF_PAPER.items()
        if PROPOSED in spec.algorithms and base in spec.algorithms
    }


def summarise(spec: CoedgeSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Intervals per (value, scheduler) and DDRL-AMSA's reductions (module doc): of its
    greedy decisions (`reductions`, `over_sweep`) and of its draws from π
    (`reductions_sampled`, `over_sweep_sampled`), each against the baselines' greedy
    decisions."""
    per_value: dict[str, Any] = {}
    for value in spec.sweep.values:
        mine = [r for r in rows if str(r["value"]) == str(value)]
        figures = {
            algo: {
                key: asdict(
                    t_interval([r[key] for r in mine if r["algorithm"] == algo and key in r])
                )
                for key in FIGURES
            }
            for algo in spec.algorithms
        }
        pairs = [(value, s) for s in spec.seeds]
        per_value[str(value)] = {
            "value": value, "schedulers": figures,
            "reductions": _reductions(spec, rows, pairs, "delay_s"),
            "reductions_sampled": _reductions(spec, rows, pairs, "sampled_delay_s"),
        }  # fmt: skip
    everywhere = [(v, s) for v in spec.sweep.values for s in spec.seeds]
    return {
        "per_value": per_value,
        "over_sweep": _reductions(spec, rows, everywhere, "delay_s"),
        "over_sweep_sampled": _reductions(spec, rows, everywhere, "sampled_delay_s"),
        "over_sweep_every_scheduler": {
            algo: {
                base: _reduction(
                    _relative_reductions(rows, base, everywhere, "delay_s", algo), paper
                )
                for base, paper in BASELINES_OF_PAPER.items()
                if base in spec.algorithms
            }
            for algo in spec.algorithms
        },
        "label": label_of(rows),
        **_twin_beside(spec, rows, everywhere),
    }


def _twin_beside(
    spec: CoedgeSpec, rows: list[dict[str, Any]], pairs: list[tuple[Any, int]]
) -> dict[str, Any]:
    """For live cells, DDRL-AMSA's reductions from their twin evaluations (greedy and
    sampled, against the baselines' greedy twin delays): the twin beside the live."""
    if not any("twin_delay_s" in r for r in rows):
        return {}
    return {
        "over_sweep_twin": _reductions(spec, rows, pairs, "twin_delay_s", "twin_delay_s"),
        "over_sweep_twin_sampled": _reductions(
            spec, rows, pairs, "twin_sampled_delay_s", "twin_delay_s"
        ),
    }


def label_of(rows: list[dict[str, Any]]) -> str:
    """`twin`, `live`, or `live and twin`: where the cells' delays were measured."""
    kinds = {r.get("backend", "twin") for r in rows}
    if kinds == {"live"}:
        return "live"
    return "live and twin" if "live" in kinds else "twin"


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def write_results(
    spec: CoedgeSpec, out: Path, command: str = "", commit: str | None = None
) -> dict[str, Any]:
    """results.json and report.md from the cells in `out/cells/`; `commit`: the
    checkout's HEAD now unless given (a report written again keeps the run's)."""
    from coordinator.coedge_report import render_report

    rows = read_cells(spec, out)
    summary = summarise(spec, rows)
    results = {
        "spec": asdict(spec), "command": command, "commit": commit or git_commit(),
        "cells_expected": len(cells_of(spec)), "cells": rows, "summary": summary,
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "report.md").write_text(render_report(results))
    return results


def report_from_folder(out: Path) -> dict[str, Any]:
    """Rewrite report.md (and results.json) of a finished or partial run from its
    results.json's spec and its cells — those in `cells/`, or, where that folder is
    gone (docs/results keeps results.json only), those in results.json."""
    saved, spec = _saved_results(out / "results.json")
    if not (out / "cells").is_dir():
        folder = out / "cells"
        folder.mkdir()
        try:
            for row in saved["cells"]:
                cell = Cell(row["value"], row["algorithm"], row["seed"])
                (folder / cell.file_name).write_text(json.dumps(row) + "\n")
            return write_results(spec, out, saved.get("command", ""), saved.get("commit"))
        finally:
            for path in folder.glob("*.json"):
                path.unlink()
            folder.rmdir()
    return write_results(spec, out, saved.get("command", ""), saved.get("commit"))


def _saved_results(path: Path) -> tuple[dict[str, Any], CoedgeSpec]:
    """results.json of a §B experiment and its spec; CONFIG_INVALID naming the file when
    it is not one (a hand-edited or truncated file, a §A experiment's folder)."""
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or not isinstance(saved.get("cells"), list):
            raise ValueError("expected an object with its spec and cells")
        if "trainings" in saved and "sweep" in saved:
            raise ValueError(f"it is a §A experiment's: `testbed report {path.parent}`")
        spec = load_dataclass(CoedgeSpec, saved.get("spec"))
        for i, row in enumerate(saved["cells"]):
            if not isinstance(row, dict) or not {"value", "algorithm", "seed"} <= row.keys():
                raise ValueError(f"cells[{i}]: expected its value, algorithm and seed")
    except (ValueError, UnicodeDecodeError, SchemaError) as exc:
        raise TestbedExit(ExitCode.CONFIG_INVALID, (
            f"{path}: not the results.json of `testbed coedge experiment run`: {exc}"
        )) from None  # fmt: skip
    return saved, spec
