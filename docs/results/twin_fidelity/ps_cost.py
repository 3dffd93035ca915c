"""The calibrated twin's CPU time per step with `twin.shared_host` off, on and
processor_sharing (docs/twin.md, "Processor sharing within a slot"): E environments x
the default bench's 10 agents, random actions, 5 interleaved repeats of 10 steps,
medians. Run from the repository root:

    .venv/bin/python docs/results/twin_fidelity/ps_cost.py \
        docs/results/twin_fidelity/run1/calibration.json 4096
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import numpy as np

from coordinator.calibration_file import Calibration
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from testbed.config import load_config
from testbed.config.runs import SharedHost


def main() -> None:
    cal = Calibration.load(sys.argv[1])
    num_envs = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    steps, base = 10, load_config("testbed.yaml")
    envs = {}
    for mode in (SharedHost.OFF, SharedHost.ON, SharedHost.PROCESSOR_SHARING):
        cfg = dataclasses.replace(base, twin=dataclasses.replace(base.twin, shared_host=mode))
        env = TwinEnv(TwinParams.from_config(cfg, cal), num_envs, seed=0)
        env.reset(seed=0)
        envs[mode] = env
    n, m = envs[SharedHost.OFF].num_agents, envs[SharedHost.OFF].params.num_edges
    rng = np.random.default_rng(0)
    actions = [rng.random((num_envs, n, m + 3)).astype(np.float32) for _ in range(steps)]
    times: dict[SharedHost, list[float]] = {k: [] for k in envs}
    for _ in range(5):
        for mode, env in envs.items():
            t0 = time.process_time()
            for a in actions:
                env.step(a)
            times[mode].append((time.process_time() - t0) / steps)
    for mode, ts in times.items():
        med = statistics.median(ts)
        print(f"{mode.value:18s} {med * 1e3:7.2f} ms/step  "
              f"{num_envs * n / med / 1e6:5.2f} M agent-steps per CPU s")  # fmt: skip


if __name__ == "__main__":
    main()
