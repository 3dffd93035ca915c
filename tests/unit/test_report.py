"""The experiment report: means over seeds with 95 % Student-t intervals, MATO's
improvement in % and its difference at each value paired by seed with a significance
verdict, one seed saying it has no interval, and the training curves with bands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from coordinator.report import write_report
from coordinator.report_tables import (
    aggregate,
    curve_intervals,
    improvements,
    optimality_gaps,
    paired_differences,
    reference_in_twin_and_live,
    training_curves,
    twin_and_live,
)
from coordinator.stats import Verdict

T_975_1 = 12.706205  # t(0.975, 1): the 95 % quantile factor with 2 seeds


def cell(algo: str, value: int, seed: int, latency: float, energy: float, done: float) -> dict:
    return {
        "algorithm": algo, "value": value, "seed": seed, "backend": "twin",
        "metrics": {"latency_ms": latency, "energy_j": energy, "completion_rate": done,
                    "reward": -latency / 100, "energy_methods": ["estimated", "modeled"]},
    }  # fmt: skip


RESULTS = {
    "experiment": "toy",
    "description": "a hand-made result set",
    "sweep": {"key": "tasks.num_types", "label": "number of models", "values": [3, 4]},
    "cells": [
        cell("mato", 3, 0, 90.0, 1.8, 0.99),
        cell("mato", 3, 1, 110.0, 2.2, 0.97),
        cell("mato", 4, 0, 100.0, 2.0, 0.98),
        cell("mato", 4, 1, 100.0, 2.0, 0.98),
        cell("greedy", 3, 0, 200.0, 4.0, 0.90),
        cell("greedy", 3, 1, 200.0, 4.0, 0.90),
        cell("greedy", 4, 0, 125.0, 2.5, 0.70),
        cell("greedy", 4, 1, 125.0, 2.5, 0.70),
    ],
}


def test_aggregate_gives_a_student_t_interval_with_the_sample_std() -> None:
    interval = aggregate(RESULTS)["mato"][3]["latency_ms"]
    # 90 and 110: mean 100, sample std 14.142 (population std: 10), s/√2 = 10
    assert (interval.mean, interval.n) == (100.0, 2)
    assert interval.half_width == pytest.approx(T_975_1 * 10.0, rel=1e-6)
    assert interval.low == pytest.approx(100.0 - 127.06205, rel=1e-6)


def test_improvements_are_paired_by_seed_with_a_verdict() -> None:
    gains = improvements(RESULTS, [3, 4])["greedy"]
    # latency, seed 0: (200-90)/200 = 55 %, (125-100)/125 = 20 % -> 37.5 %;
    # seed 1: 45 % and 20 % -> 32.5 %. Mean 35 %, s = 3.5355, s/√2 = 2.5
    latency = gains["latency_ms"]
    assert latency.difference.mean == pytest.approx(35.0)
    assert latency.difference.half_width == pytest.approx(T_975_1 * 2.5, rel=1e-6)
    # t = 35 / 2.5 = 14 with 1 d.o.f.: p = 1 − 2·atan(14)/π
    assert latency.p_value == pytest.approx(1 - 2 * math.atan(14.0) / math.pi, rel=1e-6)
    assert latency.verdict is Verdict.SIGNIFICANT  # p = 0.045
    # energy: the same shape (37.5 %, 32.5 %)
    assert gains["energy_j"].difference.mean == pytest.approx(35.0)
    # completion: seed 0 (0.99-0.9)/0.9 = 10 % and 40 % -> 25 %; seed 1: 7.78 % and
    # 40 % -> 23.89 %; t = 24.44 / 0.5556 = 44 -> p = 0.0145
    done = gains["completion_rate"]
    assert done.difference.mean == pytest.approx((8.888889 + 40.0) / 2, rel=1e-5)
    assert done.p_value == pytest.approx(1 - 2 * math.atan(44.0) / math.pi, rel=1e-4)
    assert gains["completion_points"].difference.mean == pytest.approx((8.0 + 28.0) / 2)


def test_paired_differences_at_each_value() -> None:
    tests = paired_differences(RESULTS, [3, 4])
    at_3 = tests["latency_ms"]["greedy"][3]
    # MATO − Greedy: −110 and −90: mean −100, s/√2 = 10, t = −10 -> p = 0.0635
    assert at_3.difference.mean == pytest.approx(-100.0)
    assert at_3.p_value == pytest.approx(1 - 2 * math.atan(10.0) / math.pi, rel=1e-6)
    assert at_3.verdict is Verdict.NOT_SIGNIFICANT
    at_4 = tests["latency_ms"]["greedy"][4]  # −25 on both seeds: no spread, no t-test
    assert at_4.difference.mean == -25.0 and at_4.verdict is Verdict.NO_SPREAD


def test_optimality_gap_has_an_interval() -> None:
    results = {**RESULTS, "cells": [*RESULTS["cells"],
                                    cell("oracle", 3, 0, 80.0, 1.0, 1.0),
                                    cell("oracle", 3, 1, 80.0, 1.0, 1.0)]}  # fmt: skip
    gap = optimality_gaps(results)["mato"][3]
    # rewards −0.9 and −1.1 against −0.8: gaps 12.5 % and 37.5 %
    assert gap.mean == pytest.approx(25.0) and gap.n == 2
    assert gap.half_width == pytest.approx(T_975_1 * 12.5, rel=1e-6)


def test_report_writes_intervals_and_verdicts(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    text = write_report([tmp_path]).read_text()
    assert "n = 2 seeds per cell" in text and "Student-t" in text and "ddof = 1" in text
    assert "| mato | 100.0 [-27.1, 227.1] | 100.0 [100.0, 100.0] |" in text
    assert "| greedy | +35.00 [+3.23, +66.77], p = 0.045, significant |" in text
    assert "-100.0 [-227.1, +27.1], p = 0.063, not significant" in text
    assert "| -25.0, the same on every seed, no t-test |" in text
    assert "± 12.71 standard errors (t(0.975, 1))" in text
    assert "number of models" in text and "estimated, modeled" in text
    for metric in ("latency_ms", "energy_j", "completion_rate"):
        assert (tmp_path / f"toy_{metric}.png").stat().st_size > 1000


def test_one_seed_shows_no_interval_and_says_so(tmp_path: Path) -> None:
    one_seed = {**RESULTS, "cells": [c for c in RESULTS["cells"] if c["seed"] == 0]}
    (tmp_path / "results.json").write_text(json.dumps(one_seed))
    text = write_report([tmp_path]).read_text()
    assert "n = 1 seed per cell. With one seed there are no intervals and no tests." in text
    assert "| mato | 90.0 (n = 1, no interval) |" in text
    assert (
        "(n = 1, no interval), no test" in text
        and "significant" not in text.split("## MATO's improvement")[1].split("Each seed's")[0]
    )
    assert (tmp_path / "toy_latency_ms.png").stat().st_size > 1000


def test_a_cell_with_fewer_seeds_says_its_n(tmp_path: Path) -> None:
    extra = {**RESULTS, "cells": [*RESULTS["cells"], cell("greedy", 3, 2, 200.0, 4.0, 0.9)]}
    extra["cells"] += [cell("mato", 3, 2, 100.0, 2.0, 0.98)]
    extra["cells"] += [cell("random", v, s, 300.0, 5.0, 0.5) for v in (3, 4) for s in (0, 1)]
    (tmp_path / "results.json").write_text(json.dumps(extra))
    text = write_report([tmp_path]).read_text()
    assert "n = 2–3 seeds per cell, 2 in most (cells say theirs)" in text
    assert "| mato | 100.0 [75.2, 124.8] (n = 3) | 100.0 [100.0, 100.0] |" in text


def test_training_curves_have_bands_over_seeds(tmp_path: Path) -> None:
    curves = {f"mato/3/{s}": {"step": [0, 10, 20], "eval_reward": [r0, r0 + 1, r0 + 2]}
              for s, r0 in ((0, -3.0), (1, -2.0))}  # fmt: skip
    # seed 1's run folder exists with a metrics.csv too: results.json's curve wins
    results = {**RESULTS, "curves": curves}
    found = training_curves(results)
    assert list(found) == [("mato", 3)] and len(found["mato", 3]) == 2
    steps, intervals = curve_intervals(found["mato", 3])
    assert steps == [0, 10, 20] and [i.mean for i in intervals] == [-2.5, -1.5, -0.5]
    assert intervals[0].half_width == pytest.approx(T_975_1 * 0.5, rel=1e-6)
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = write_report([tmp_path]).read_text()
    assert "![toy_training](toy_training.png)" in text and "not rebuilt" not in text
    assert (tmp_path / "toy_training.png").stat().st_size > 1000


def test_curves_from_a_run_folder_and_a_stale_figure_said_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "step,episode_reward,eval_reward\n5,-1.0,\n10,-1.0,-0.8\n20,-0.9,-0.6\n"
    )
    with_run = {**RESULTS, "cells": [{**c, "train_run": str(run)} for c in RESULTS["cells"]]}
    assert training_curves(with_run)["mato", 3][0] == ([10.0, 20.0], [-0.8, -0.6])
    # neither curves nor run folders, but a training figure from an earlier run: kept,
    # and the report says it was not rebuilt and has no intervals
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(RESULTS))
    (out / "toy_training.png").write_bytes(b"old")
    text = write_report([out]).read_text()
    assert "the training figure was not rebuilt" in text and "without intervals" in text
    assert "![toy_training](toy_training.png)" in text
    assert (out / "toy_training.png").read_bytes() == b"old"


def test_the_twin_promise_beside_the_live_reward(tmp_path: Path) -> None:
    def live(algo: str, seed: int, twin: float, reward: float) -> dict:
        c = cell(algo, 3, seed, 100.0, 1.0, 1.0)
        c["metrics"]["reward"] = reward
        return {**c, "backend": "live", "twin_reward": twin}

    results = {**RESULTS, "sweep": {**RESULTS["sweep"], "values": [3]}, "cells": [
        live("mato", 0, -0.5, -0.9), live("mato", 1, -0.6, -0.9),
        live("greedy", 0, -0.8, -0.8), live("greedy", 1, -0.8, -0.7),
        cell("greedy", 3, 2, 100.0, 1.0, 1.0),  # twin-only: not in the table
    ]}  # fmt: skip
    twin, real, diff = twin_and_live(results)["mato", 3]
    assert (twin.mean, real.mean, twin.n) == (pytest.approx(-0.55), -0.9, 2)
    assert diff.difference.mean == pytest.approx(-0.35)  # −0.4 and −0.3
    in_twin, on_bench = reference_in_twin_and_live(results, [3])["greedy", 3]
    assert in_twin.difference.mean == pytest.approx(0.25)  # the twin put MATO ahead
    assert on_bench.difference.mean == pytest.approx(-0.15)  # the bench did not
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = write_report([tmp_path]).read_text()
    assert "## What the twin promised and what the live bench gave" in text
    assert "| mato − greedy | 3 | +0.250 [" in text
