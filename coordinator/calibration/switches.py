"""Model switches measured on the live bench for the twin: each model evicted and
prefetched again with an edge's operator calls, timed by the edge (fetch, verify, load,
warm-up), and kept as `switches.csv` in the calibrate run's folder so a later `--refit`
can fit them again (fit.py)."""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordinator.envs.bench_ops import edge_client
from coordinator.live import LiveBench
from testbed.messages import ModelRef

log = logging.getLogger(__name__)

SWITCHES_CSV = "switches.csv"
"""The switch samples' file in a calibrate run's folder."""


@dataclass(frozen=True)
class SwitchSample:
    """One operator prefetch of a model that was not cached (times in s)."""

    model_id: str
    edge_id: str
    fetch_s: float
    verify_s: float
    load_s: float
    warmup_s: float
    total_s: float


def measure_switches(
    bench: LiveBench,
    models: list[str],
    repeats: int,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[SwitchSample]:
    """Evict and prefetch each model `repeats` times on the first edge (the edges are
    one class); the cache is left as it was found only by `restore_caches`
    (coordinator/envs/bench_ops.py)."""
    spec = bench.cfg.edge_specs()[0]
    samples = []
    with edge_client(bench, spec.id) as client:
        for model_id in models:
            for n in range(repeats):
                ref = ModelRef(model_id)
                held = {c.model.model_id for c in client.state(timeout_s=10).cached}
                if model_id in held:
                    client.evict(ref)
                op = client.prefetch(ref)
                if not op.ok:
                    log.warning("prefetch of %s failed: %s %s", model_id, op.reason, op.detail)
                    break
                t = op.timing
                samples.append(
                    SwitchSample(
                        model_id, spec.id, t.fetch_ms / 1e3, t.verify_ms / 1e3, t.load_ms / 1e3,
                        t.warmup_ms / 1e3, t.total_ms / 1e3,
                    )
                )  # fmt: skip
                progress(f"switch {model_id} {n + 1}/{repeats}: {t.total_ms:.0f} ms")
    return samples


def write_switches(path: Path, samples: list[SwitchSample]) -> None:
    """The switch measurements as CSV (one row per prefetch, times in s)."""
    fields = [f.name for f in dataclasses.fields(SwitchSample)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(s) for s in samples)


def read_switches(path: Path) -> list[SwitchSample]:
    """The switch measurements back from `write_switches`' CSV."""
    with open(path, newline="") as f:
        return [
            SwitchSample(
                r["model_id"],
                r["edge_id"],
                *(float(r[k]) for k in ("fetch_s", "verify_s", "load_s", "warmup_s", "total_s")),
            )
            for r in csv.DictReader(f)
        ]
