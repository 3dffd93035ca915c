"""PNG plots of a run: latency and energy per slot (matplotlib, headless)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from coordinator.records import percentile
from testbed.messages import TaskRecord


def plot_run(run_dir: Path, records: Sequence[TaskRecord], title: str) -> list[Path]:
    """Write latency.png and energy.png into `run_dir`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_slot: dict[int, list[TaskRecord]] = defaultdict(list)
    for r in records:
        by_slot[r.slot].append(r)
    slots = sorted(by_slot)
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4))
    lat = [[r.latency_ms for r in by_slot[s] if r.latency_ms > 0] for s in slots]
    ax.plot(slots, [sum(v) / len(v) if v else float("nan") for v in lat], label="mean")
    ax.plot(slots, [percentile(v, 50) for v in lat], label="p50")
    ax.plot(slots, [percentile(v, 95) for v in lat], label="p95")
    done = [sum(r.completed for r in by_slot[s]) / len(by_slot[s]) for s in slots]
    ax2 = ax.twinx()
    ax2.plot(slots, [100 * d for d in done], color="grey", linestyle=":", label="completed %")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("completed (%)")
    ax.set(xlabel="slot", ylabel="latency (ms)", title=f"{title}: latency per slot")
    ax.legend(loc="upper left")
    fig.tight_layout()
    paths.append(run_dir / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    parts: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    methods: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for p in r.energy:
            parts[p.part][r.slot] += p.energy_j
            methods[p.part].add(p.method.value)
    bottom = [0.0] * len(slots)
    for part in sorted(parts):
        values = [parts[part].get(s, 0.0) for s in slots]
        label = f"{part} ({', '.join(sorted(methods[part]))})"
        ax.bar(slots, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set(xlabel="slot", ylabel="energy (J)", title=f"{title}: energy per slot by part and method")
    ax.legend(fontsize="small")
    fig.tight_layout()
    paths.append(run_dir / "energy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
