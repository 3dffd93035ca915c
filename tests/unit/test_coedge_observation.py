"""The board's observation of a §B task (testbed/coedge/observation.py) is the twin's
(coordinator/envs/coedge_twin.py `observe`): an actor trained there sees the same."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.envs.coedge_twin import CoedgeTwin
from testbed.coedge.observation import obs_dim, task_observation
from testbed.config import config_from_dict


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_board_observation_equals_the_twins(seed: int) -> None:
    cfg = config_from_dict(
        {"coedge": {"edge_ghz": [10.0, 30.0, 50.0], "max_tasks": 6, "slot_s": 0.5}, "seed": seed}
    )
    twin = CoedgeTwin.from_config(cfg, num_envs=2, seed=seed)
    twin.reset()
    rng = np.random.default_rng(seed)
    b = twin.num_agents
    for _ in range(5):  # several steps: queues, link backlogs and cursors move
        twin.step(rng.integers(0, twin.num_actions, size=(2, b)))
        expected = twin.observe()
        size, cycles, has = twin.current_task()
        for e in range(2):
            for station in range(b):
                if not has[e, station]:
                    continue
                got = task_observation(
                    cfg.coedge,
                    size_mbit=float(size[e, station]),
                    density_cycles_per_bit=float(cycles[e, station] * 1e3 / size[e, station]),
                    queue_s=twin.queue_gcycles[e] / twin.params.edge_ghz,
                    link_s=twin.link_s[e, station],
                    station=station,
                    tasks_left=int(twin.slot_count[e, station] - twin.cursor[e]),
                )
                assert got.shape == (obs_dim(b),) and got.dtype == np.float32
                np.testing.assert_allclose(got, expected[e, station], rtol=1e-6, atol=1e-7)


def test_a_wrong_number_of_link_backlogs_or_station_is_refused() -> None:
    cfg = config_from_dict({"coedge": {"edge_ghz": [1.0, 2.0]}})
    args = {"size_mbit": 1.0, "density_cycles_per_bit": 100.0, "queue_s": [0.0, 0.0],
            "tasks_left": 1}  # fmt: skip
    with pytest.raises(ValueError, match="link backlogs"):
        task_observation(cfg.coedge, link_s=[0.0], station=0, **args)
    with pytest.raises(ValueError, match="station"):
        task_observation(cfg.coedge, link_s=[0.0, 0.0], station=2, **args)
