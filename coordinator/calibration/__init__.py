"""Calibration: the live bench measured for the digital twin, and the twin's fidelity
gap in numbers (`testbed calibrate`, docs/twin.md).

    measure.py    the job on a live bench: `calibrate_bench` runs the heuristics and
                  the switch measurements, fits, writes calibration.json and the report
                  (the command, coordinator/commands/calibrate.py, only reads flags;
                  `testbed experiment` calls it too)
    replay.py     the same report for an earlier run without a bench (`--from`), with
                  the calibration fitted again from its records (`--refit`)
    switches.py   model switches timed with the edges' operator calls (switches.csv)
    fit.py        task records and switch samples → a `Calibration` (per-unit costs,
                  overheads, switch times, power)
    contention.py how busy the calibration runs kept a shared host's cores (the
                  calibration's `contention`), and the check of the twin's contention
                  model against a calibrate run's records
    mixed.py      what slots in which boards and edges both compute cost beyond the
                  twin's pricing, fitted on `random`'s calibration run (the
                  calibration's `mixed`)
    fidelity.py   the twin replayed on the live runs' seed and tasks; the gap report
    windows.py    the gap over several fidelity windows (`--windows`): each with its
                  95 % interval over windows, and whether it lies within ±10 %
    coedge.py     the same job on the live §B bench (`run.system: coedge`): the
                  heuristics' runs, the fit (coedge_fit.py: shares → per-edge and
                  per-link costs) and the §B twin's gap report (coedge_gap.py); its
                  file format is coordinator/coedge_calibration_file.py

The file format itself, `Calibration` and calibration.json, is
coordinator/calibration_file.py: the twin (coordinator/envs/twin_params.py) reads it,
and this package replays the twin, so the format sits below both. The live-bench
operations the job shares with the live env are coordinator/envs/bench_ops.py.
"""
