"""Where the twin and the live bench part for each policy of an experiment: every live
cell's policy replayed in the twin it was trained in (the cell's own config and seed,
the live bench's tasks by CRN, as `twin_reward` was), and the means over all tasks of
the latency's parts, twin beside live.

    cd <repo> && .venv/bin/python docs/results/mato_recalibrated/twin_vs_live.py \
        runs/experiments/mato_recalibrated

Needs the experiment folder (results.json, its evals/ and runs/ folders). Columns:
tasks; local % (nothing offloaded); mean offloaded share; then means over all tasks,
in ms: latency, on the board, transmission, edge queue, switch, edge compute; energy
(J) and reward; first the twin's row, then the live one, and live − twin.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from coordinator.evaluation import onnx_policy, with_seed
from coordinator.policy_choice import PolicyChoice, parse_policy
from testbed.config import load_config

PARTS = ("latency", "board", "tx", "queue", "switch", "edge", "energy", "reward")


def twin_tasks(cfg_path: Path, cell: dict) -> list[dict[str, float]]:
    cfg = with_seed(load_config(cfg_path, env={}), cell["seed"])
    algo = cell["algorithm"]
    if cell["train_run"]:
        policy = parse_policy(f"{algo}={cell['train_run']}")
    else:
        policy = PolicyChoice(algo, heuristic=algo)
    env = TwinEnv(TwinParams.from_config(cfg), 1, tasks="crn", seed=cell["seed"],
                  episode_slots=cell["slots"], model_aware=policy.model_aware)  # fmt: skip
    if policy.heuristic:
        heuristic = make_heuristic(policy.heuristic, seed=cell["seed"], crn=True)
        act = lambda _obs: heuristic.act(env)  # noqa: E731
    else:
        act = onnx_policy(policy, env.agent_ids)
    obs = env.reset(seed=cell["seed"])
    rows = []
    for _ in range(cell["slots"]):
        out = env.step(act(obs))
        i = out.info
        units = i["units"][0]
        for n in np.flatnonzero(out.has_task[0]):
            share = float(i["edge_units"][0][n] / units[n]) if units[n] else 0.0
            rows.append({
                "share": share if i["target"][0][n] >= 0 else 0.0,
                "latency": 1e3 * float(out.latency_s[0][n]),
                "board": 1e3 * float(i["t_local_s"][0][n]),
                "tx": 1e3 * float(i["t_tx_s"][0][n]),
                "queue": 1e3 * float(i["t_edge_queue_s"][0][n]),
                "switch": 1e3 * float(i["t_switch_s"][0][n]),
                "edge": 1e3 * float(i["t_edge_compute_s"][0][n]),
                "energy": float(out.energy_j[0][n]),
                "reward": float(out.reward[0][n]),
            })  # fmt: skip
        obs = out.obs
    env.close()
    return rows


def live_tasks(eval_run: Path) -> list[dict[str, float]]:
    with open(eval_run / "tasks.csv", newline="") as f:
        return [{
            "share": float(r["share"]) if r["edge_id"] else 0.0,
            "latency": float(r["latency_ms"]), "board": float(r["t_local_ms"]),
            "tx": float(r["t_tx_ms"]), "queue": float(r["t_edge_queue_ms"]),
            "switch": float(r["t_switch_ms"]), "edge": float(r["t_edge_compute_ms"]),
            "energy": float(r["energy_j"]), "reward": float(r["reward"]),
        } for r in csv.DictReader(f)]  # fmt: skip


def summary(rows: list[dict[str, float]]) -> list[float]:
    local = 100 * sum(r["share"] == 0 for r in rows) / len(rows)
    return [len(rows), local, statistics.fmean(r["share"] for r in rows),
            *(statistics.fmean(r[p] for r in rows) for p in PARTS)]  # fmt: skip


def main(folder: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    got: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for cell in results["cells"]:
        if cell["backend"] != "live":
            continue
        eval_run = Path(cell["eval_run"])
        got[(cell["algorithm"], "twin")] += twin_tasks(eval_run / "config.yaml", cell)
        got[(cell["algorithm"], "live")] += live_tasks(eval_run)
    print("| algorithm | where | tasks | local % | share | latency | board | tx | queue | "
          "switch | edge | energy (J) | reward |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for algo in dict.fromkeys(a for a, _ in got):
        twin, live = summary(got[(algo, "twin")]), summary(got[(algo, "live")])
        for where, row in (("twin", twin), ("live", live)):
            print(
                f"| {algo} | {where} | {row[0]:.0f} | {row[1]:.1f} | {row[2]:.2f} | "
                + " | ".join(f"{x:.0f}" for x in row[3:9])
                + f" | {row[9]:.2f} | {row[10]:.3f} |"
            )
        d = [b - a for a, b in zip(twin, live, strict=True)]
        print(
            f"| {algo} | live − twin | | {d[1]:+.1f} | {d[2]:+.2f} | "
            + " | ".join(f"{x:+.0f}" for x in d[3:9])
            + f" | {d[9]:+.2f} | {d[10]:+.3f} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
