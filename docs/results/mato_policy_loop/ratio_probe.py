"""Is it MATO's targets or its offload ratio, and why does it not offload whole? Every
live MATO cell's actors replayed in the twin they were trained in (the cell's config and
seed, its tasks by CRN), first as trained, then with the ratio overridden wherever an
edge is chosen (targets and download flags the actors' own), beside Greedy on the same
tasks; then one device at a time switched to whole offload, the others as trained: what
it gains itself and what the team (all devices' mean) gains.

    cd <repo> && .venv/bin/python docs/results/mato_policy_loop/ratio_probe.py \
        runs/experiments/mato_policy_loop [SLOTS]

SLOTS: slots per seed (default 100). Prints, per variant, the mean over seeds of the
per-task reward (± its standard error over seeds), latency, energy and the mean share
offloaded; then each seed's rewards; then the deviations' gains.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from coordinator.evaluation import onnx_policy, with_seed
from coordinator.policy_choice import PolicyChoice, parse_policy
from testbed.config import load_config

VARIANTS = ("as trained", "0.8", "0.9", "0.95", "1.0", "greedy")


def policy_act(
    env: TwinEnv, variant: str, seed: int, train_run: str, who: list[int] | None = None
) -> Any:
    """The variant's policy; `who`: the devices whose ratio is overridden (None: all)."""
    if variant == "greedy":
        heuristic = make_heuristic("greedy", seed=seed, crn=True)
        return lambda _obs: heuristic.act(env)
    actors = onnx_policy(parse_policy(f"mato={train_run}"), env.agent_ids)
    if variant == "as trained":
        return actors
    m, ratio = env.params.num_edges, float(variant)

    def act(obs: np.ndarray) -> np.ndarray:
        a = actors(obs)
        to_edge = np.argmax(a[..., : m + 1], axis=-1) > 0
        if who is not None:
            to_edge[:, [n for n in range(a.shape[1]) if n not in who]] = False
        a[..., m + 1] = np.where(to_edge, ratio, a[..., m + 1])
        return a

    return act


def replay(
    cfg_path: Path, seed: int, train_run: str, variant: str, slots: int,
    who: list[int] | None = None,
) -> list[float]:  # fmt: skip
    """Mean per-task reward, latency (ms), energy (J) and offloaded share over all
    devices, then the mean reward of the devices `who` (all when None)."""
    cfg = with_seed(load_config(cfg_path, env={}), seed)
    choice = PolicyChoice("greedy", heuristic="greedy") if variant == "greedy" else None
    aware = (choice or parse_policy(f"mato={train_run}")).model_aware
    env = TwinEnv(TwinParams.from_config(cfg), 1, tasks="crn", seed=seed, episode_slots=slots,
                  model_aware=aware)  # fmt: skip
    act = policy_act(env, variant, seed, train_run, who)
    obs = env.reset(seed=seed)
    rows: list[tuple[float, float, float, float]] = []
    mine: list[float] = []
    for _ in range(slots):
        out = env.step(act(obs))
        info = out.info
        for n in np.flatnonzero(out.has_task[0]):
            units = info["units"][0][n]
            edge = info["target"][0][n] >= 0 and units
            share = float(info["edge_units"][0][n] / units) if edge else 0.0
            rows.append((float(out.reward[0][n]), 1e3 * float(out.latency_s[0][n]),
                         float(out.energy_j[0][n]), share))  # fmt: skip
            if who is None or n in who:
                mine.append(float(out.reward[0][n]))
        obs = out.obs
    env.close()
    return [*(statistics.fmean(col) for col in zip(*rows, strict=True)), statistics.fmean(mine)]


def main(folder: Path, slots: int) -> None:
    cells = [c for c in json.loads((folder / "results.json").read_text())["cells"]
             if c["algorithm"] == "mato" and c["backend"] == "live"]  # fmt: skip
    got = {v: [replay(Path(c["eval_run"]) / "config.yaml", c["seed"], c["train_run"], v, slots)
               for c in cells] for v in VARIANTS}  # fmt: skip
    print(f"{len(cells)} seeds × {slots} slots in the twin each MATO cell was trained in\n")
    print("| ratio where an edge is chosen | reward per task | latency (ms) | energy (J) | "
          "share offloaded |")  # fmt: skip
    print("|---|---|---|---|---|")
    for v, rows in got.items():
        a = np.array(rows)
        se = a[:, 0].std(ddof=1) / np.sqrt(len(a))
        print(f"| {v} | {a[:, 0].mean():.3f} ± {se:.3f} | {a[:, 1].mean():.0f} | "
              f"{a[:, 2].mean():.2f} | {a[:, 3].mean():.2f} |")  # fmt: skip
    print("\nper seed, reward per task:")
    for i, c in enumerate(cells):
        print(f"seed {c['seed']}: " + ", ".join(f"{v} {got[v][i][0]:.3f}" for v in VARIANTS))
    deviations(cells, slots)


def deviations(cells: list[dict[str, Any]], slots: int) -> None:
    """Each device alone switched to whole offload (ratio 1.0), then all at once: the
    change, over seeds, of the team's mean reward per task and of the switched devices'
    own."""
    devices = len(list(Path(cells[0]["train_run"], "actors").glob("*.onnx")))
    groups = [[n] for n in range(devices)] + [list(range(devices))]
    print("\n| devices switched to whole offload | Δ team reward per task | Δ own reward per "
          "task |")  # fmt: skip
    print("|---|---|---|")
    for who in groups:
        team, own = [], []
        for c in cells:
            args = (Path(c["eval_run"]) / "config.yaml", c["seed"], c["train_run"])
            base = replay(*args, "as trained", slots, who)
            moved = replay(*args, "1.0", slots, who)
            team.append(moved[0] - base[0])
            own.append(moved[4] - base[4])
        name = "all" if len(who) == devices else f"device {who[0]} alone"
        print(f"| {name} | {statistics.fmean(team):+.4f} (seeds {min(team):+.3f} … "
              f"{max(team):+.3f}) | {statistics.fmean(own):+.4f} (seeds {min(own):+.3f} … "
              f"{max(own):+.3f}) |")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 100)
