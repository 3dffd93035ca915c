"""What a trained run's actors decide in its own twin: how many tasks they keep wholly on
the board, send whole to an edge or split, the offloaded share's quantiles, and how many
slots are mixed (a board and an edge both compute).

    python docs/results/mato_shared_cores/twin_decisions.py RUN_FOLDER [--seeds 5] [--slots 10]

RUN_FOLDER is a training's run folder (`config.yaml` and `actors/` in it, e.g.
runs/experiments/mato_shared_cores/runs/mato_shared_cores_3__mato__0__…). The twin is
the one its config names (calibration and `twin.shared_host`), on the task sequence of
each evaluation seed, as `testbed experiment run` evaluates in the twin.
"""

from __future__ import annotations

import argparse
import collections
from typing import Any

import numpy as np

from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from coordinator.evaluation import onnx_policy, with_seed
from coordinator.policy_choice import parse_policy
from testbed.config import load_config

WHOLE = 1.0 - 1e-9
"""A ratio this close to 1 leaves no unit on the board whatever the task's size."""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a training's run folder")
    ap.add_argument("--seeds", type=int, default=5, help="evaluation seeds 0 … N−1")
    ap.add_argument("--slots", type=int, default=10, help="slots per seed")
    args = ap.parse_args(argv)
    cfg = load_config(f"{args.run}/config.yaml")
    policy = parse_policy(f"{args.run}/actors")
    kinds: collections.Counter[str] = collections.Counter()
    shares: list[float] = []
    rewards: list[float] = []
    mixed = slots = 0
    for seed in range(args.seeds):
        seeded = with_seed(cfg, seed)
        env = TwinEnv(TwinParams.from_config(seeded), 1, tasks="crn", seed=seed,
                      episode_slots=args.slots)  # fmt: skip
        act = onnx_policy(policy, env.agent_ids)
        obs: Any = env.reset(seed=seed)
        for _ in range(args.slots):
            raw = act(obs)
            target, ratio, _ = env.decode(raw)
            has = env.has_task[0].copy()
            out = env.step(raw)
            for i in np.flatnonzero(has):
                if target[0, i] < 0:
                    kinds["board"] += 1
                else:
                    kinds["whole" if ratio[0, i] >= WHOLE else "split"] += 1
                    shares.append(float(ratio[0, i]))
            local = np.asarray(out.info["t_local_s"][0])[has] > 0
            edge = np.asarray(out.info["edge_units"][0])[has] > 0
            mixed += bool(local.any() and edge.any())
            slots += 1
            rewards += out.reward[0][has].tolist()
            obs = out.obs
    tasks = sum(kinds.values())
    print(f"{tasks} tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if shares:
        q = np.quantile(shares, [0.1, 0.5, 0.9])
        print(f"offloaded share, 10/50/90 %: {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
    print(f"mixed slots: {mixed} of {slots}; reward per task {np.mean(rewards):.3f}")


if __name__ == "__main__":
    main()
