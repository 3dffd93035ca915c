"""How much longer a mixed run's computations took than processor sharing predicts
(docs/twin.md, "Known differences"): per model, the price alone of a board's and an
edge's unit is fitted on a `local` and an `offload` run (Σ time alone by processor
sharing on the run's measured timeline / Σ units, coordinator/calibration/contention.py
`ps_slowdowns`), and each computation of the mixed run (`random`) is predicted as its
units × that price × its own overlap on the mixed run's timeline. Prints, per kind,
Σ measured / Σ predicted and the median of the per-computation ratios. Σ measured /
Σ predicted is what `python -m coordinator.calibration.contention` reports as its
"processor sharing" column for a calibrate folder; this script takes any three runs
(a `testbed up` run has no calibration runs beside it) and adds the median.

    .venv/bin/python docs/results/twin_fidelity/mixed_ratio.py LOCAL OFFLOAD MIXED

each a `testbed up` run folder (tasks.csv, config.yaml) or a task records CSV beside
the run's config.yaml (a calibrate run's tasks-<purpose>-<policy>.csv).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from coordinator.calibration.contention import FETCH_CORES, _Demand, ps_slowdowns
from coordinator.records import read_records
from testbed.config import load_config
from testbed.messages import TaskRecord


def _records(path: Path) -> tuple[list[TaskRecord], Path]:
    csv = path / "tasks.csv" if path.is_dir() else path
    return read_records(csv), csv.parent / "config.yaml"


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    (local, cfg_path), (offload, _), (mixed, _) = (_records(Path(a)) for a in sys.argv[1:])
    cfg = load_config(cfg_path)
    demand = _Demand.of(cfg)
    cores = float(os.cpu_count() or 1)  # run it on the host the runs ran on
    ghz = {a.id: a.cpu_ghz or 1.0 for a in cfg.agent_specs()}

    def rows(records: list[TaskRecord]) -> list[tuple[TaskRecord, str, float, float, int]]:
        out = []
        for r, kind, took, alone in ps_slowdowns(demand, records, cores, 0.0, FETCH_CORES):
            g = ghz[r.agent_id] if kind == "local" else 1.0
            units = r.local_units if kind == "local" else r.edge_units
            out.append((r, kind, took * g, alone * g, units))
        return out

    price: dict[tuple[str, str], float] = {}
    for records, kind in ((local, "local"), (offload, "edge")):
        alone: dict[str, float] = defaultdict(float)
        units: dict[str, int] = defaultdict(int)
        for r, k, _, w, u in rows(records):
            if k == kind:
                alone[r.model_id] += w
                units[r.model_id] += u
        price.update({(kind, m): alone[m] / units[m] for m in alone if units[m]})
    print(f"host {cores:.0f} cores; the mixed run's computations, measured / predicted")
    for kind in ("local", "edge"):
        pairs = [
            (took, u * price[kind, r.model_id] * took / w)
            for r, k, took, w, u in rows(mixed)
            if k == kind and w > 0 and (kind, r.model_id) in price
        ]
        if not pairs:
            continue
        total = sum(a for a, _ in pairs) / sum(b for _, b in pairs)
        median = float(np.median([a / b for a, b in pairs]))
        print(f"{kind}: {len(pairs)} computations, Σ ratio {total:.2f}, median {median:.2f}")


if __name__ == "__main__":
    main()
