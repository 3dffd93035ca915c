"""A shared latency calibration (coordinator/quality_live.py `shared_latency_fits`):
read back exactly from the calibration.json a run wrote; a file without a model's fit is
a ValueError that names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.quality_live import shared_latency_fits


def _calibration(path: Path, models: dict[str, tuple[float, float]]) -> Path:
    latency = {
        m: {"points": [{"steps": 1, "compute_s": a + b}, {"steps": 4, "compute_s": a + 4 * b}],
            "fixed_s": a, "per_step_s": b, "r_squared": 0.5}
        for m, (a, b) in models.items()
    }  # fmt: skip
    path.write_text(json.dumps({"latency": latency, "score_curves": {}}))
    return path


def test_the_fits_come_back_as_written(tmp_path: Path) -> None:
    path = _calibration(tmp_path / "c.json", {"s": (0.1, 0.01), "l": (0.2, 0.05)})
    fits = shared_latency_fits(path, ["s", "l"])
    assert fits["l"].curve.fixed_s == 0.2 and fits["l"].curve.per_step_s == 0.05
    assert fits["s"].r_squared == 0.5 and fits["s"].points == 2
    assert fits["l"].curve(4, 0.5) == pytest.approx((0.2 + 4 * 0.05) / 0.5)


def test_a_missing_model_or_file_is_refused_by_name(tmp_path: Path) -> None:
    path = _calibration(tmp_path / "c.json", {"s": (0.1, 0.01)})
    with pytest.raises(ValueError, match=r"c\.json.*latency of s, m"):
        shared_latency_fits(path, ["s", "m"])
    with pytest.raises(ValueError, match=r"nope\.json"):
        shared_latency_fits(tmp_path / "nope.json", ["s"])
