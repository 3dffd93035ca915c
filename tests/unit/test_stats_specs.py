"""The specs of the paper's figures ask for at least 5 seeds, so their reports' 95 %
intervals and paired tests (coordinator/stats.py) have something to stand on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MIN_SEEDS = 5


@pytest.mark.parametrize(
    "spec", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_figure_spec_has_at_least_five_seeds(spec: Path) -> None:
    seeds = yaml.safe_load(spec.read_text())["seeds"]
    assert len(set(seeds)) >= MIN_SEEDS, f"{spec.name}: seeds {seeds}"
