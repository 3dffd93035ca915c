"""The experiment report: aggregation over seeds and MATO's improvement in %."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.report import aggregate, improvements, write_report


def cell(algo: str, value: int, seed: int, latency: float, energy: float, done: float) -> dict:
    return {
        "algorithm": algo, "value": value, "seed": seed, "backend": "twin",
        "metrics": {"latency_ms": latency, "energy_j": energy, "completion_rate": done,
                    "energy_methods": ["estimated", "modeled"]},
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


def test_aggregate_and_improvements_by_hand() -> None:
    agg = aggregate(RESULTS)
    assert agg["mato"][3]["latency_ms"] == (100.0, 10.0)  # mean, population std
    gains = improvements(agg, [3, 4])
    # latency: (200-100)/200 = 50 %, (125-100)/125 = 20 % -> 35 %
    assert gains["greedy"]["latency_ms"] == pytest.approx(35.0)
    # energy: (4-2)/4 = 50 %, (2.5-2)/2.5 = 20 % -> 35 %
    assert gains["greedy"]["energy_j"] == pytest.approx(35.0)
    # completion: (0.98-0.9)/0.9 = 8.89 %, (0.98-0.7)/0.7 = 40 % -> 24.44 %
    assert gains["greedy"]["completion_rate"] == pytest.approx((8.888889 + 40.0) / 2, rel=1e-5)
    assert gains["greedy"]["completion_points"] == pytest.approx((8.0 + 28.0) / 2)


def test_report_writes_figures_and_markdown(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    path = write_report([tmp_path])
    text = path.read_text()
    assert "| greedy | +35.00 % | +35.00 % |" in text
    assert "number of models" in text and "estimated, modeled" in text
    for metric in ("latency_ms", "energy_j", "completion_rate"):
        assert (tmp_path / f"toy_{metric}.png").stat().st_size > 1000
