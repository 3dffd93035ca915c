"""`python -m benchmarks [NAME ...] [--quick] [--json OUT] [--list] [--strict]`.

Runs the named benchmarks (default: all) in order, each printing its own lines, then
a table: benchmark, case, ours, reference, ratio, added, goal, PASS/MISS. Exits 0 when
every benchmark ran (a missed goal is a finding, not a crash: the machine may be
busy), 1 if one failed to run, and 2 with `--strict` if a goal was missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Result, fmt, machine

BENCHMARKS: dict[str, str] = {
    "model_fetch": "cloud→edge model fetch over MQTT vs raw 1 MiB QoS 1 throughput",
    "mqtt_tls": "model fetch through Mosquitto with TLS, logins and ACL vs plaintext",
    "cold_admission": "verify + session + warm-up vs bare InferenceSession + one run",
    "cached_switch": "ModelCache.acquire on a hit (µs) vs a bare locked LRU hit",
    "submit_task": "SubmitTask round trip, tiny model, units=1 vs bare gRPC unary echo",
    "orchestration": "slot overhead (wall − longest step), 10 agents vs a bare gRPC barrier",
    "actor_decision": "OnnxActor.decide on the board (µs) vs a bare ORT run of the actor",
    "edge_throughput": "tasks/s through one edge vs bare echo and bare ORT rates",
    "twin_throughput": "twin agent-steps/s, 4096 envs x 10 agents vs a plain Python slot loop",
    "maddpg_updates": "MADDPG updates, 10 agents, batch 1024: GFLOP/s vs fp32 matmul rate",
    "train_wall": "wall time to train MATO to a converged reward, paper set-up, twin",
    "grpc_tls": "gRPC unary p50 and 1 MiB streaming, mutual TLS vs plaintext",
    "telemetry_cost": "task latency p50, telemetry at 10 Hz from every node vs as good as off",
    "monitor_load": "500 telemetry streams at 1 Hz: exporter/monitor CPU per message, delay",
    "deploy_wall": "testbed deploy to 4 lab hosts vs 1 (parallel), a second deploy vs the first",
    "ray_sweep": "experiment cells on Ray vs sequential: overhead per cell, speed-up",
    "slot_optimum": "the exact per-slot optimum at 10 devices (s/slot) vs exhaustive at 4",
    "diffusion_actor": "DSAC update at 1/5/10 diffusion steps, ONNX 5-step decision vs MLP",
    "coedge_twin": "§B twin decisions/s, 4096 envs x 5 stations vs a plain Python loop",
    "allocation": "§C annealing's gap to the exhaustive optimum (%), SA vs exhaustive time",
    "share_executor": "§C share executor per task vs FIFO, latency vs steps and vs 1/share (R²)",
    "coedge_spread": "§B live: share finish spread and |delay − plan| vs home-only delay (ms)",
}


def _table(results: list[Result]) -> str:
    header = ("benchmark", "case", "ours", "reference", "ratio", "added", "goal", "")
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        for c in r.cases:
            rows.append(
                (
                    r.name,
                    c.label,
                    f"{fmt(c.ours)} {r.unit}",
                    f"{fmt(c.reference)} {r.unit}",
                    f"{c.ratio:.2f}",
                    f"{fmt(c.added)} {r.unit}",
                    r.goal.text,
                    "PASS" if r.passed_case(c) else "MISS",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="short variants (seconds each)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--strict", action="store_true", help="exit 2 if a goal was missed")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {list(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    print("benchmarks:")
    for name, what in BENCHMARKS.items():
        print(f"  {'*' if name in names else ' '} {name:15} {what}")
    if args.list:
        return 0
    facts = machine()
    print(
        f"machine: {facts['cpu']}, {facts['cores']} cores, load {facts['load_1min']}, "
        f"Python {facts['python']}{' (quick)' if args.quick else ''}",
        flush=True,
    )
    results: list[Result] = []
    failed: dict[str, str] = {}
    for name in names:
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            outcome = module.run(args.quick)  # one Result, or several (one per goal)
            results.extend(outcome if isinstance(outcome, list) else [outcome])
        except Exception:
            failed[name] = traceback.format_exc()
            print(f"{name}: FAILED TO RUN\n{failed[name]}", file=sys.stderr, flush=True)
        print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    print()
    if results:
        print(_table(results))
    for name in failed:
        print(f"{name}: did not run (see the error above)")
    if args.json:
        doc: dict[str, Any] = {
            "when_unix_s": round(time.time(), 3),
            "git_commit": _git_commit(),
            "quick": args.quick,
            "machine": facts,
            "results": [r.to_json() for r in results],
            "failed": failed,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False))
        print(f"wrote {args.json}")
    if failed:
        return 1
    if args.strict and not all(r.passed for r in results):
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
