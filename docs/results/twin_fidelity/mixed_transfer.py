"""Does a mixed-slot fit carry over to another policy's mix? (docs/twin.md, "Mixed
slots"). Replays every heuristic's fidelity run of a committed calibration in the twin
without and with mixed-slot factors: the calibration's own (fitted on its `random`
calibration run) where it has them for the pricing asked for, else fitted here on its
`random` fidelity run (slots 0 ... S-1, the boards' generators fresh,
coordinator/calibration/mixed.py `fit_mixed(first_slot=0)`), which makes `random`
in-sample. The other heuristics are what the factors do to a policy that mixes
otherwise (or not at all).

    .venv/bin/python docs/results/twin_fidelity/mixed_transfer.py CALIBRATION [MODE]

CALIBRATION is a calibration file with bench.yaml and its records beside it (e.g.
docs/results/mato_models/calibration/4/calibration.json); MODE is a `twin.shared_host`
(default: the bench file's).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from coordinator.calibration.fidelity import POLICIES, live_metrics, policy_gap
from coordinator.calibration.mixed import MIXED_POLICY, fit_mixed
from coordinator.calibration_file import Calibration
from coordinator.envs.twin_params import TwinParams
from coordinator.records import read_records
from testbed.config import load_config
from testbed.config.runs import SharedHost


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    path = Path(sys.argv[1])
    cfg = load_config(path.parent / "bench.yaml")
    if len(sys.argv) == 3:
        twin = dataclasses.replace(cfg.twin, shared_host=SharedHost(sys.argv[2]))
        cfg = dataclasses.replace(cfg, twin=twin)
    calibration = Calibration.load(path)
    records = calibration.records(path)
    mixed = calibration.mixed
    source = f"its own, from its {MIXED_POLICY} calibration run"
    plain = dataclasses.replace(calibration, mixed=None)
    pricing = TwinParams.from_config(cfg, plain, use_config_calibration=False).pricing_mode
    if mixed is None or mixed.shared_host != pricing:
        mixed_run = read_records(records / f"tasks-fidelity-{MIXED_POLICY}.csv")
        mixed = fit_mixed(cfg, None, calibration, mixed_run, first_slot=0)
        source = f"fitted on its {MIXED_POLICY} fidelity run"
    if mixed is None:
        raise SystemExit(f"{path}: no mixed slot in its {MIXED_POLICY} run")
    print(f"{path}, twin.shared_host {mixed.shared_host}, {calibration.bench.slots} slots "
          f"per run; factors {source} ({mixed.slots} mixed slots): "
          f"board time x {mixed.local_time:.2f}, energy x {mixed.local_energy:.2f}; "
          f"edge time x {mixed.edge_time:.2f}, energy x {mixed.edge_energy:.2f}")  # fmt: skip
    print("| policy | latency gap, without → with | energy gap, without → with |")
    print("|---|---|---|")
    slots = calibration.bench.slots
    with_mixed = dataclasses.replace(calibration, mixed=mixed)
    for policy in POLICIES:
        live = live_metrics(read_records(records / f"tasks-fidelity-{policy}.csv"))
        before = policy_gap(cfg, policy, slots, live, plain, None)
        after = policy_gap(cfg, policy, slots, live, with_mixed, None)
        cells = [
            f"{100 * before.gap(m)[1]:+.1f} % → {100 * after.gap(m)[1]:+.1f} %"
            for m in ("latency_mean_s", "energy_mean_j")
        ]
        print(f"| {policy} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
