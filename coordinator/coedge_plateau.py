"""How long DDRL-AMSA must train on the §B twin before its evaluation delay stops
improving (docs/coedge.md, "Training budget"): for each budget of environment steps
and each seed, one training run from scratch (coordinator/schedulers.py, the config's
`coedge_learners:` settings) evaluated as the experiments evaluate a cell
(coordinator/coedge_experiments.py: greedy and sampled from π, `evaluate` envs × steps
from seed 10 000 + seed, the same tasks at every budget).

    python -m coordinator.coedge_plateau [--config F] [--algo ddrl-amsa]
        [--budgets 2000,5000,10000,20000] [--seeds 0,1,2] [--out FILE.json]

Each finished run is appended to FILE.json's `.rows.jsonl` at once; a run again
skips the (budget, seed) pairs found there (a long measurement resumes).

The plateau test: the mean over seeds of the last budgets covering the final 20 % of
the largest budget's steps (at least the last two budgets) lies within the 95 %
interval of the last one — flat within noise.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from coordinator.coedge_experiments import EVAL_SEED_OFFSET, git_commit
from coordinator.schedulers import evaluate_scheduler, learner_settings, train_scheduler
from coordinator.stats import t_interval

EVAL_ENVS, EVAL_STEPS, TRAIN_ENVS = 16, 300, 8
"""As experiments/coedge_*.yaml evaluate and train a cell."""


def measure(cfg: Any, algo: str, budgets: list[int], seeds: list[int],
            say: Any = print, done: set[tuple[int, int]] | None = None,
            keep: Any = None) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (budget, seed) not in `done`: greedy and sampled evaluation delay
    and completion; each handed to `keep` as it is made."""
    rows = []
    for seed in seeds:
        for steps in budgets:
            if done and (steps, seed) in done:
                continue
            t0 = time.perf_counter()
            trained = train_scheduler(algo, cfg, seed, steps, num_envs=TRAIN_ENVS)
            t1 = time.perf_counter()
            ev = EVAL_SEED_OFFSET + seed
            greedy = evaluate_scheduler(trained, ev, num_envs=EVAL_ENVS, steps=EVAL_STEPS)
            drawn = evaluate_scheduler(trained, ev, num_envs=EVAL_ENVS, steps=EVAL_STEPS,
                                       sampled=True)  # fmt: skip
            row = {"env_steps": steps, "seed": seed, "delay_s": greedy["delay_s"],
                   "completion": greedy["completion"], "sampled_delay_s": drawn["delay_s"],
                   "sampled_completion": drawn["completion"], "train_s": round(t1 - t0, 2),
                   "updates": trained.updates}  # fmt: skip
            say(f"{algo} seed {seed} {steps} steps: greedy {greedy['delay_s']:.4f} s, sampled "
                f"{drawn['delay_s']:.4f} s, train {t1 - t0:.1f} s")  # fmt: skip
            rows.append(row)
            if keep is not None:
                keep(row)
    return rows


def summarise(rows: list[dict[str, Any]], budgets: list[int]) -> dict[str, Any]:
    """Per budget the mean and 95 % interval of both delays; and the plateau verdict."""
    per_budget = {}
    budgets = [b for b in budgets if any(r["env_steps"] == b for r in rows)]
    for steps in budgets:
        mine = [r for r in rows if r["env_steps"] == steps]
        per_budget[str(steps)] = {
            key: asdict(t_interval([r[key] for r in mine]))
            for key in ("delay_s", "sampled_delay_s", "completion", "train_s")
        }
    largest = max(budgets)
    tail = [b for b in budgets if b >= 0.8 * largest]
    tail = tail if len(tail) >= 2 else sorted(budgets)[-2:]
    verdict = {}
    for key in ("delay_s", "sampled_delay_s"):
        last = per_budget[str(largest)][key]
        means = [per_budget[str(b)][key]["mean"] for b in tail]
        verdict[key] = {
            "tail_budgets": tail, "tail_means": means,
            "flat": all(last["low"] <= m <= last["high"] for m in means),
        }  # fmt: skip
    return {"per_budget": per_budget, "plateau": verdict}


def main(argv: list[str] | None = None) -> int:
    import sys

    from testbed.config import load_config

    parser = argparse.ArgumentParser(prog="python -m coordinator.coedge_plateau")
    parser.add_argument("--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    parser.add_argument("--algo", default="ddrl-amsa")
    parser.add_argument("--budgets", default="2000,5000,10000,20000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=None, help="write the rows and summary here (JSON)")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows: list[dict[str, Any]] = []
    partial = Path(args.out).with_suffix(".rows.jsonl") if args.out else None
    if partial is not None and partial.exists():
        rows = [json.loads(line) for line in partial.read_text().splitlines() if line]

    def keep(row: dict[str, Any]) -> None:
        if partial is not None:
            with partial.open("a") as f:
                f.write(json.dumps(row) + "\n")

    done = {(r["env_steps"], r["seed"]) for r in rows}
    for seed in seeds:
        cfg = load_config(args.config, sets=[("seed", seed)])
        rows += measure(cfg, args.algo, budgets, [seed], lambda line: print(line, flush=True),
                        done, keep)  # fmt: skip
    rows = [r for r in rows if r["env_steps"] in budgets and r["seed"] in seeds]
    result = {
        "command": "python -m coordinator.coedge_plateau " + " ".join(sys.argv[1:]),
        "commit": git_commit(), "started_utc": started,
        "ended_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "algo": args.algo, "settings": learner_settings(cfg), "label": "twin",
        "eval": {"num_envs": EVAL_ENVS, "steps": EVAL_STEPS}, "train_envs": TRAIN_ENVS,
        "rows": rows, "summary": summarise(rows, budgets),
    }  # fmt: skip
    print(json.dumps(result["summary"], indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
