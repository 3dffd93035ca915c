"""The seed's CartPole check (docs/papers.md §B, "What the paper reports"): DSAC vs DQN
vs discrete SAC on Gymnasium's CartPole-v1 at equal environment steps, over seeds.

    python -m coordinator.cartpole --seeds 5 --steps 20000 --out docs/results/cartpole

Each algorithm trains for the same number of environment steps on each seed (the seed
fixes the networks, the exploration and the environment), with the same network width
and batch. Two figures per run, both averaged over seeds with 95 % Student-t intervals
(coordinator/stats.py) and compared pairwise by seed (paired t-test):

- **average training reward**: the mean return of every training episode of the run,
  the "average reward" the seed's figure plots against training;
- **final greedy return**: the mean return of `--eval-episodes` greedy episodes after
  training (the policy learnt, without exploration).

The output folder gets `runs.csv` (one row per algorithm and seed), `summary.json` and
`report.md` (the table, the paired differences in %, the paper's +9.57 % and +18.36 %
beside them, and the command). CartPole's settings differ from the scheduling defaults
(γ 0.99: a pole balanced for 500 steps needs a long horizon; batch 128 and 64-wide
networks: this is a 4-feature task on a shared 2-core machine); they are `CARTPOLE_*`
below and written into the report.

`CartPoleVecEnv` adapts Gymnasium's CartPole-v1 to the `DiscreteVecEnv` contract
(coordinator/envs/discrete.py): E copies stepped in a loop, one agent each, reset on
the spot when the pole falls (terminated) or at 500 steps (truncated, a time limit
that bootstraps).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import enum
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.envs.discrete import DiscreteStep
from coordinator.stats import format_interval, format_p, paired_test, t_interval

ENV_ID = "CartPole-v1"
PAPER_GAIN_VS_DQN_PCT = 9.57
PAPER_GAIN_VS_SAC_PCT = 18.36


class CartPoleVecEnv:
    """E CartPole-v1 environments as a `DiscreteVecEnv` with one agent."""

    def __init__(self, num_envs: int = 1) -> None:
        import gymnasium as gym

        self.num_agents = 1
        self.agent_ids = ["pole"]
        self.envs = [gym.make(ENV_ID) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.obs_dim = int(self.envs[0].observation_space.shape[0])  # type: ignore[index]
        self.num_actions = int(self.envs[0].action_space.n)  # type: ignore[attr-defined]

    def reset(self, seed: int | None = None) -> np.ndarray:
        rows = [
            env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(self.envs)
        ]
        return np.asarray(rows, np.float32)[:, None, :]

    def step(self, actions: np.ndarray) -> DiscreteStep:
        obs = np.zeros((self.num_envs, 1, self.obs_dim), np.float32)
        final = np.zeros_like(obs)
        reward = np.zeros((self.num_envs, 1), np.float32)
        done = np.zeros(self.num_envs, bool)
        terminated = np.zeros(self.num_envs, bool)
        for e, env in enumerate(self.envs):
            o, r, term, trunc, _ = env.step(int(actions[e, 0]))
            final[e, 0] = o
            reward[e, 0] = r
            terminated[e], done[e] = term, term or trunc
            obs[e, 0] = env.reset()[0] if done[e] else o
        return DiscreteStep(obs, reward, done, terminated, final,
                            np.ones((self.num_envs, 1), bool))  # fmt: skip

    def close(self) -> None:
        for env in self.envs:
            env.close()


class CartPoleAlgorithm(enum.StrEnum):
    DSAC = "dsac"
    """Discrete SAC with the diffusion actor."""
    SAC = "sac"
    """Discrete SAC with the MLP actor (DSAC's ablation)."""
    DQN = "dqn"
    """Double DQN."""


CARTPOLE_SHARED: dict[str, Any] = {
    "gamma": 0.99,
    "hidden": 64,
    "batch_size": 128,
    "buffer_size": 50_000,
    "warmup_steps": 1_000,
    "updates_per_step": 1.0,
    "tau": 0.005,
}
"""Settings every CartPole learner shares (see the module doc)."""
CARTPOLE_SAC: dict[str, Any] = {"lr_actor": 3e-4, "lr_critic": 1e-3, "diffusion_steps": 5}
"""DSAC's and SAC's own (the actor's rate raised from §B's 1e-4: CartPole's budget is
short)."""
CARTPOLE_DQN: dict[str, Any] = {"lr": 1e-3, "double": True}
"""DQN's own."""


def train_one(
    algorithm: CartPoleAlgorithm, seed: int, env_steps: int, eval_episodes: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train one algorithm on one seed; returns its row of runs.csv."""
    from coordinator.algorithms import dqn, dsac

    settings = {**CARTPOLE_SHARED, "env_steps": env_steps, "seed": seed, **(overrides or {})}
    env, eval_env = CartPoleVecEnv(), CartPoleVecEnv()
    try:
        learner: Any
        if algorithm is CartPoleAlgorithm.DQN:
            learner, stats = dqn.train(dqn.DqnArgs(**{**settings, **CARTPOLE_DQN}), env)
        else:
            diffusion = algorithm is CartPoleAlgorithm.DSAC
            own = {**CARTPOLE_SAC, "diffusion": diffusion}
            learner, stats = dsac.train(dsac.DsacArgs(**{**settings, **own}), env)
        from coordinator.algorithms.discrete_loop import evaluate

        greedy = evaluate(learner, eval_env, eval_episodes, seed=10_000 + seed)
    finally:
        env.close()
        eval_env.close()
    returns = stats.episode_returns or [math.nan]
    return {
        "algorithm": algorithm.value,
        "seed": seed,
        "env_steps": stats.env_steps,
        "updates": stats.updates,
        "episodes": len(stats.episode_returns),
        "avg_train_return": statistics.fmean(returns),
        "last10_train_return": statistics.fmean(returns[-10:]),
        "greedy_return": statistics.fmean(greedy),
        "wall_s": round(stats.wall_s, 2),
    }


def _gain_pct(rows: list[dict[str, Any]], ours: str, theirs: str, key: str) -> dict[str, Any]:
    """Paired by seed: ours − theirs in return and in % of theirs' mean."""
    by = {(r["algorithm"], r["seed"]): r[key] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    a = [by[(ours, s)] for s in seeds if (ours, s) in by and (theirs, s) in by]
    b = [by[(theirs, s)] for s in seeds if (ours, s) in by and (theirs, s) in by]
    test = paired_test(a, b)
    base = statistics.fmean(b) if b else math.nan
    diff = test.difference
    return {
        "difference": diff.mean,
        "difference_low": diff.low,
        "difference_high": diff.high,
        "gain_pct": 100.0 * diff.mean / base if base else math.nan,
        "gain_low_pct": 100.0 * diff.low / base if base else math.nan,
        "gain_high_pct": 100.0 * diff.high / base if base else math.nan,
        "p_value": test.p_value,
        "verdict": test.verdict.value,
        "pairs": diff.n,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-algorithm intervals and DSAC's paired gains vs DQN and SAC, per figure."""
    out: dict[str, Any] = {"algorithms": {}, "gains": {}}
    for alg in CartPoleAlgorithm:
        mine = [r for r in rows if r["algorithm"] == alg.value]
        out["algorithms"][alg.value] = {
            key: dataclasses.asdict(t_interval([r[key] for r in mine]))
            for key in ("avg_train_return", "greedy_return", "wall_s")
        }
    for key in ("avg_train_return", "greedy_return"):
        out["gains"][key] = {
            "dsac_vs_dqn": _gain_pct(rows, "dsac", "dqn", key),
            "dsac_vs_sac": _gain_pct(rows, "dsac", "sac", key),
        }
    return out


def _pct(gain: dict[str, Any]) -> str:
    """`+1.23 % [+0.40, +2.06] (p = 0.012, significant)`."""
    if gain["pairs"] < 2:
        return f"{gain['gain_pct']:+.2f} % (no interval)"
    interval = f"[{gain['gain_low_pct']:+.2f}, {gain['gain_high_pct']:+.2f}]"
    return f"{gain['gain_pct']:+.2f} % {interval} ({format_p(gain['p_value'])}, {gain['verdict']})"


def render_report(rows: list[dict[str, Any]], summary: dict[str, Any], command: str) -> str:
    """report.md: the per-algorithm table, DSAC's paired gains beside the paper's."""
    from coordinator.stats import Interval

    seeds = sorted({r["seed"] for r in rows})
    steps = sorted({r["env_steps"] for r in rows})
    lines = [
        "# CartPole-v1: DSAC vs DQN vs discrete SAC",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds {seeds}; {', '.join(map(str, steps))} environment steps per run, the same for "
        "every algorithm. Means over seeds with 95 % Student-t intervals; gains are paired "
        "by seed (mean of per-seed differences, in % of the baseline's mean).",
        "",
        f"Shared settings: `{json.dumps(CARTPOLE_SHARED)}`; DSAC/SAC: "
        f"`{json.dumps(CARTPOLE_SAC)}` (SAC: the MLP actor); DQN: `{json.dumps(CARTPOLE_DQN)}`.",
        "",
        "| algorithm | average training return | final greedy return | wall s per run |",
        "|---|---|---|---|",
    ]
    for alg, figures in summary["algorithms"].items():
        cells = [format_interval(Interval(**figures[k]), 1)
                 for k in ("avg_train_return", "greedy_return", "wall_s")]  # fmt: skip
        lines.append(f"| {alg} | {' | '.join(cells)} |")
    lines += [
        "",
        "| DSAC's gain | average training return | final greedy return | the paper |",
        "|---|---|---|---|",
    ]
    for pair, paper in (("dsac_vs_dqn", PAPER_GAIN_VS_DQN_PCT),
                        ("dsac_vs_sac", PAPER_GAIN_VS_SAC_PCT)):  # fmt: skip
        train_gain = summary["gains"]["avg_train_return"][pair]
        greedy_gain = summary["gains"]["greedy_return"][pair]
        lines.append(
            f"| {pair.replace('_', ' ')} | {_pct(train_gain)} | {_pct(greedy_gain)} | "
            f"+{paper} % average reward |"
        )
    lines += ["", "Per run: `runs.csv`; figures: `summary.json`.", ""]
    return "\n".join(lines)


def _train_job(job: tuple[str, int, int, int]) -> dict[str, Any]:
    algorithm, seed, env_steps, eval_episodes = job
    row = train_one(CartPoleAlgorithm(algorithm), seed, env_steps, eval_episodes)
    print(json.dumps(row), flush=True)
    return row


def run_check(
    seeds: Sequence[int], env_steps: int, out: Path, *, eval_episodes: int = 10,
    workers: int = 1, command: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Train every algorithm on every seed; write runs.csv, summary.json, report.md."""
    jobs = [(alg.value, s, env_steps, eval_episodes) for s in seeds for alg in CartPoleAlgorithm]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_train_job, jobs))
    else:
        rows = [_train_job(job) for job in jobs]
    summary = summarise(rows)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "runs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "report.md").write_text(render_report(rows, summary, command))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coordinator.cartpole",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--steps", type=int, default=20_000, help="environment steps per run")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes per run")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("docs/results/cartpole"))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be positive")
    command = "python -m coordinator.cartpole " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    run_check(range(args.seeds), args.steps, args.out, eval_episodes=args.eval_episodes,
              workers=args.workers, command=command)  # fmt: skip
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
