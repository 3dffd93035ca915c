"""A policy-in-the-loop refit of the mixed-slot factors (docs/twin.md, "Mixed slots"):
the factors fitted on `random`'s mix, refitted on the live runs of a learned policy.

    cd <repo> && .venv/bin/python docs/results/mato_recalibrated/policy_factors.py \\
        runs/experiments/mato_recalibrated \\
        docs/results/mato_recalibrated/calibration/calibration-processor_sharing.json \\
        docs/results/mato_policy_loop/calibration-policy.json

Every live cell of `--algorithm` (default mato) in the experiment folder is replayed in
the twin with its own actors, config and seed (the live tasks by CRN) under CALIBRATION;
each factor is then multiplied by Σ live / Σ twin over all of the cells' board
computations (time, energy) and edge computations (time, energy), for `--rounds`
rounds (each replay sees the factors of the round before). Unlike calibrate's fit
(coordinator/calibration/mixed.py) it does not pair computations share by share — an
actor in the twin decides on the twin's observations, not the bench's — and it takes
every slot of the runs, not only the mixed ones (a policy that keeps a share of every
task on the board mixes every slot). The result is CALIBRATION with those factors,
written to OUT; every other figure is unchanged.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from coordinator.calibration_file import Calibration
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from coordinator.evaluation import onnx_policy, with_seed
from coordinator.policy_choice import parse_policy
from testbed.config import load_config

KINDS = ("local_time", "local_energy", "edge_time", "edge_energy")


def twin_sums(cell: dict, calibration: Calibration) -> np.ndarray:
    """Σ board time, board energy, edge time, edge energy of the cell's policy in the twin."""
    cfg = with_seed(load_config(Path(cell["eval_run"]) / "config.yaml", env={}), cell["seed"])
    policy = parse_policy(f"{cell['algorithm']}={cell['train_run']}")
    params = TwinParams.from_config(cfg, calibration, use_config_calibration=False)
    env = TwinEnv(params, 1, tasks="crn", seed=cell["seed"], episode_slots=cell["slots"],
                  model_aware=policy.model_aware)  # fmt: skip
    act = onnx_policy(policy, env.agent_ids)
    obs = env.reset(seed=cell["seed"])
    sums = np.zeros(4)
    for _ in range(cell["slots"]):
        out = env.step(act(obs))
        i, has = out.info, out.has_task[0]
        board = has & (i["units"][0] > i["edge_units"][0])  # a share computed on the board
        sums += [
            float(i["t_local_s"][0][board].sum() - params.local_overhead_s * board.sum()),
            float(i["e_local_j"][0][has].sum()),
            float(i["t_edge_compute_s"][0][has].sum()),
            float(i["e_edge_compute_j"][0][has].sum()),
        ]  # fmt: skip
        obs = out.obs
    env.close()
    return sums


def live_sums(cell: dict, overhead_s: float) -> np.ndarray:
    sums = np.zeros(4)
    with open(Path(cell["eval_run"]) / "tasks.csv", newline="") as f:
        for r in csv.DictReader(f):
            if int(r["local_units"]) > 0 and float(r["t_local_ms"]) > 0:
                sums[0] += float(r["t_local_ms"]) / 1e3 - overhead_s
                sums[1] += float(r["energy_local_compute_j"] or 0.0)
            if r["edge_id"] and float(r["t_edge_compute_ms"]) > 0:
                sums[2] += float(r["t_edge_compute_ms"]) / 1e3
                sums[3] += float(r["energy_edge_compute_j"] or 0.0)
    return sums


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment", type=Path)
    ap.add_argument("calibration", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--algorithm", default="mato")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    results = json.loads((args.experiment / "results.json").read_text())
    cells = [c for c in results["cells"]
             if c["algorithm"] == args.algorithm and c["backend"] == "live"]  # fmt: skip
    calibration = Calibration.load(args.calibration)
    assert calibration.mixed is not None, "a calibration with mixed-slot factors"
    cfg = load_config(Path(cells[0]["eval_run"]) / "config.yaml", env={})
    overhead = TwinParams.from_config(cfg, calibration, use_config_calibration=False)
    live = sum((live_sums(c, overhead.local_overhead_s) for c in cells), np.zeros(4))
    factors = calibration.mixed
    print(f"{len(cells)} live cells of {args.algorithm}; live Σ board {live[0]:.1f} s, "
          f"{live[1]:.1f} J; edge {live[2]:.1f} s, {live[3]:.1f} J")  # fmt: skip
    for k in range(args.rounds):
        twin = sum((twin_sums(c, dataclasses.replace(calibration, mixed=factors))
                    for c in cells), np.zeros(4))  # fmt: skip
        ratio = live / twin
        print(f"round {k}: factors " + ", ".join(
            f"{n} {getattr(factors, n):.3f}" for n in KINDS
        ) + "; live / twin " + ", ".join(f"{x:.3f}" for x in ratio))  # fmt: skip
        factors = dataclasses.replace(factors, **{
            n: getattr(factors, n) * float(r) for n, r in zip(KINDS, ratio, strict=True)
        })  # fmt: skip
    print("refitted: " + ", ".join(f"{n} {getattr(factors, n):.3f}" for n in KINDS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dataclasses.replace(calibration, mixed=factors).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
