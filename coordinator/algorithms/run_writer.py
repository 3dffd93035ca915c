"""A training run's folder (docs/algorithms.md): metrics.csv, checkpoints, the reward
curve. The train command adds config.yaml, manifest.json, actors/ and summary.json.

    metrics.csv               one row per episode end / evaluation (columns: METRICS)
    reward_curve.png          episode and evaluation reward against the step
    checkpoints/step-N.pt     everything needed to resume after N steps: networks,
                              targets, optimisers, replay buffer, RNG states, step
    checkpoints/latest.pt     the newest of them (a hard link where possible)

Checkpoints hold tensors, numbers and strings only: `torch.load(weights_only=True)`
reads them.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.algorithms.rollout import Hooks
from coordinator.progress import ProgressBar

METRICS = (
    "step", "slots", "episode_reward", "eval_reward", "latency_s", "energy_j", "completion",
    "critic_loss", "actor_loss", "noise", "elapsed_s",
)  # fmt: skip
LATEST = "latest.pt"


class RunWriter(Hooks):
    """Writes what the training loop reports into `run_dir`."""

    def __init__(
        self, run_dir: Path, *, bar: ProgressBar | None = None, resume_step: int | None = None
    ) -> None:
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.csv"
        self.checkpoints = run_dir / "checkpoints"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.bar = bar
        self.last_checkpoint: Path | None = None
        if resume_step is None or not self.metrics_path.exists():
            with open(self.metrics_path, "w", newline="") as f:
                csv.writer(f).writerow(METRICS)
        else:  # rows after the checkpoint are written again by the resumed run
            rows = read_metrics(self.metrics_path)
            with open(self.metrics_path, "w", newline="") as f:
                writer = csv.DictWriter(f, METRICS)
                writer.writeheader()
                writer.writerows(r for r in rows if int(r["step"]) <= resume_step)

    def row(self, metrics: dict[str, float]) -> None:
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([_cell(metrics.get(k, math.nan)) for k in METRICS])

    def checkpoint(self, step: int, state: dict[str, Any], actors: Callable[[], list[Any]]) -> None:
        import torch

        path = self.checkpoints / f"step-{step}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        latest, tmp_latest = self.checkpoints / LATEST, self.checkpoints / "latest.tmp"
        tmp_latest.unlink(missing_ok=True)
        try:
            os.link(path, tmp_latest)
        except OSError:  # no hard links here: a copy
            import shutil

            shutil.copyfile(path, tmp_latest)
        os.replace(tmp_latest, latest)
        self.last_checkpoint = path

    def progress(self, step: int, note: str) -> None:
        if self.bar is not None:
            self.bar.update(1, note)

    def plot(self, title: str) -> Path:
        """reward_curve.png from metrics.csv."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = read_metrics(self.metrics_path)
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label, style in (("episode_reward", "training (with noise)", "-"),
                                  ("eval_reward", "evaluation (no noise)", "o-")):  # fmt: skip
            pts = [(int(r["step"]), float(r[key])) for r in rows if r[key] not in ("", "nan")]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=label, markersize=3)
        ax.set(xlabel="training step", ylabel="mean reward (18) per task", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = self.run_dir / "reward_curve.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state in `run_dir/checkpoints/latest.pt`."""
    import torch

    path = run_dir / "checkpoints" / LATEST
    return torch.load(path, weights_only=True)  # type: ignore[no-any-return]


def _cell(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if math.isnan(value) else f"{value:.6g}"
