"""The worked example of docs/papers.md §A, computed by the code it describes.

If the cost model, the radio model or the default bench changes, this test fails
until the table in docs/papers.md is updated with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import costs
from testbed.config import load_config
from testbed.links import shannon_rate_mbps

ROOT = Path(__file__).resolve().parents[2]

# The example's task and nodes (docs/papers.md §A, "Worked example").
SIZE_MBIT = 3.5
DENSITY = 180.0
DEVICE_GHZ = 1.5
EDGE_GHZ = 7.0
KAPPA = 1e-28
DISTANCE_M = 300.0
MODEL_MB = 5.92
LOAD_S_PER_MB = 1.4e-3
EDGE_LOAD_POWER_W = 30.0 + 12.0  # idle + one busy core of the default edge


def example(ratio: float, cached: bool) -> tuple[float, float, float]:
    """(latency s, energy J, reward) of the example task for one decision."""
    cfg = load_config(ROOT / "testbed.yaml")
    rate = shannon_rate_mbps(cfg.agents.transmit_power_w, DISTANCE_M, cfg.links)
    model_mbit = costs.mb_to_mbit(MODEL_MB)
    load_s = LOAD_S_PER_MB * MODEL_MB
    t_loc = costs.local_latency_s(ratio, SIZE_MBIT, DENSITY, DEVICE_GHZ)
    e_loc = costs.local_energy_j(ratio, SIZE_MBIT, DENSITY, DEVICE_GHZ, KAPPA)
    t_tx = costs.upload_latency_s(ratio, SIZE_MBIT, rate)
    e_tx = costs.upload_energy_j(cfg.agents.transmit_power_w, t_tx)
    on_edge = ratio > 0
    t_sw = costs.switch_latency_s(
        cached or not on_edge, model_mbit, cfg.edges.cloud_link_mbps, load_s
    )
    e_sw = costs.switch_energy_j(
        cached or not on_edge, model_mbit, cfg.edges.cloud_link_mbps, load_s,
        cfg.cloud.transmit_power_w, EDGE_LOAD_POWER_W,
    )  # fmt: skip
    t_ec = costs.edge_compute_latency_s(ratio, SIZE_MBIT, DENSITY, EDGE_GHZ)
    e_ec = costs.edge_compute_energy_j(ratio, SIZE_MBIT, DENSITY, EDGE_GHZ, KAPPA)
    latency = max(float(t_loc), float(t_tx + t_sw + t_ec))
    energy = float(e_loc + e_tx + e_sw + e_ec)
    reward = float(costs.reward(latency, energy, 1.0, cfg.reward))
    return latency, energy, reward


def test_default_bench_matches_the_example() -> None:
    cfg = load_config(ROOT / "testbed.yaml")
    assert float(shannon_rate_mbps(cfg.agents.transmit_power_w, DISTANCE_M, cfg.links)) == (
        pytest.approx(42.9, abs=0.05)
    )
    assert cfg.edges.cloud_link_mbps == 100.0
    assert cfg.cloud.transmit_power_w == 20.0
    assert cfg.edges.cpu_ghz == EDGE_GHZ


@pytest.mark.parametrize(
    ("ratio", "cached", "latency_s", "energy_j", "reward"),
    [
        (0.0, True, 0.420, 0.142, -0.281),  # all local
        (1.0, True, 0.172, 3.103, -1.637),  # all to the edge, model cached
        (1.0, False, 0.653, 12.92, -6.788),  # all to the edge, model fetched
        (0.5, True, 0.210, 1.622, -0.916),  # half and half, cached
    ],
)
def test_worked_example_rows(
    ratio: float, cached: bool, latency_s: float, energy_j: float, reward: float
) -> None:
    got = example(ratio, cached)
    assert got[0] == pytest.approx(latency_s, abs=1e-3)
    assert got[1] == pytest.approx(energy_j, abs=1e-2)
    assert got[2] == pytest.approx(reward, abs=1e-3)
