"""Where the host's CPU goes while the default bench runs (docs/twin.md, "Known
differences"): each heuristic run live with `testbed up`, the CPU seconds of every
process of the bench read every 0.2 s, summed by role over the slots (from the line
"bench up" to the last slot's), and set beside the work the run's computations did,
priced at each model's cost per unit alone (measured first, one process, nothing
beside it). The twin prices only the computations; what the roles spend beyond them
(uploads and replies, the broker relaying models, the cloud serving them) it does not.
A second table takes the intervals in which the boards compute and shows who else
holds the cores then.

    .venv/bin/python docs/results/twin_fidelity/bench_cpu.py [SLOTS] [OUT_DIR]
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

from coordinator.records import read_records
from testbed.runtime import ModelRuntime, RuntimeKind
from testbed.zoo.catalog import Catalog

MATCH = (("agent_node", "agent_node"), ("edge_node", "edge_node"), ("cloud_node", "cloud_node"),
         ("testbed.broker", "broker"), ("mosquitto", "broker"), ("testbed", "testbed"))  # fmt: skip
"""(in the command line, role), matched in this order: the embedded broker is amqtt
(`testbed.broker`) or Mosquitto where it is installed; "testbed" is the coordinator."""
ROLES = ("agent_node", "edge_node", "broker", "cloud_node", "testbed")
POLICIES = ("local", "offload", "greedy", "random")


def alone_prices(catalog: Catalog, models: list[str]) -> dict[str, float]:
    """Seconds per unit of each model, one session, one thread, nothing beside it."""
    runtime = ModelRuntime(RuntimeKind.CPU, 1)
    data, prices = os.urandom(200_000), {}
    for model in models:
        loaded = runtime.load(catalog.path(model), catalog.get(model))
        loaded.warmup()
        units = 64 if "diffusion" in model else 1024
        took = []
        for _ in range(5):
            t = time.perf_counter()
            loaded.run(units, None, data, 32)
            took.append((time.perf_counter() - t) / units)
        prices[model] = sorted(took)[len(took) // 2]
    return prices


def role_of(proc: psutil.Process) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return None
    return next((role for mark, role in MATCH if mark in cmd), None)


class Sampler(threading.Thread):
    """Every 0.2 s: (time, {pid: (role, CPU s)}) of the bench's processes."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.root, self.stop = root, threading.Event()
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self.roles: dict[int, str | None] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            row: dict[int, tuple[str, float]] = {}
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                role = self.roles.setdefault(p.pid, role_of(p))
                try:
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                if role:
                    row[p.pid] = (role, t.user + t.system)
            self.samples.append((time.time(), row))
            time.sleep(0.2)


Samples = list[tuple[float, dict[int, tuple[str, float]]]]


def run_policy(
    policy: str, slots: int, out_dir: Path
) -> tuple[dict[str, float], float, str, Samples]:
    """CPU seconds by role over the run's slots, their wall time, the run folder and the
    samples taken over the slots."""
    testbed = str(Path(sys.executable).with_name("testbed"))
    argv = [testbed, "up", "--policy", policy, "--slots", str(slots),
            "--set", f"run.out_dir={out_dir}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(psutil.Process(proc.pid))
    sampler.start()
    marks: dict[str, float] = {}
    run_dir = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("run folder:"):
            run_dir = line.split(":", 1)[1].strip()
        elif line.startswith("bench up"):
            marks["up"] = time.time()
        elif re.match(rf"slots {slots}/{slots}\b", line.strip()):
            marks["end"] = time.time()
    proc.wait()
    sampler.stop.set()
    sampler.join()
    if proc.returncode or "up" not in marks or "end" not in marks:
        raise SystemExit(f"testbed up --policy {policy} failed (exit {proc.returncode})")

    def at(t: float) -> dict[int, tuple[str, float]]:
        return min(sampler.samples, key=lambda s: abs(s[0] - t))[1]

    first, last = at(marks["up"]), at(marks["end"])
    by_role: dict[str, float] = defaultdict(float)
    for pid, (role, cpu) in last.items():
        by_role[role] += cpu - first.get(pid, (role, 0.0))[1]
    window = [x for x in sampler.samples if marks["up"] <= x[0] <= marks["end"]]
    return dict(by_role), marks["end"] - marks["up"], run_dir, window


BOARD_PHASE_CORES = 1.0
"""The boards' processes together use at least this many cores: they compute."""


def board_phase(samples: Samples) -> tuple[int, dict[str, float]]:
    """The 0.2 s intervals in which the boards compute (`BOARD_PHASE_CORES`), and the
    mean cores each role used in them."""
    rates = []
    for (t0, a), (t1, b) in itertools.pairwise(samples):
        rate: dict[str, float] = defaultdict(float)
        for pid, (role, cpu) in b.items():
            if pid in a:
                rate[role] += (cpu - a[pid][1]) / (t1 - t0)
        rates.append(rate)
    phase = [r for r in rates if r["agent_node"] >= BOARD_PHASE_CORES]
    return len(phase), {k: sum(r[k] for r in phase) / len(phase) for k in ROLES} if phase else {}


def main() -> None:
    slots = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/bench_cpu")
    catalog = Catalog.load(Path(".zoo/demo"))
    size_mb = {entry.id: entry.size_mb for entry in catalog.entries}
    prices = alone_prices(catalog, ["ae-s", "cgan-s", "diffusion-s"])
    print("alone, ms per unit: " + ", ".join(f"{m} {p * 1e3:.4f}" for m, p in prices.items()))
    print(f"host: {os.cpu_count()} cores; {slots} slots per policy\n")
    print(
        "| policy | wall s | boards CPU s | their work alone s | ratio | edges CPU s | "
        "their work alone s | ratio | broker s | cloud s | coordinator s | MB moved |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    phases = {}
    for policy in POLICIES:
        cpu, wall, run_dir, samples = run_policy(policy, slots, out_dir)
        phases[policy] = board_phase(samples)
        records = read_records(Path(run_dir) / "tasks.csv")
        local = sum(r.local_units * prices[r.model_id] for r in records)
        edge = sum(r.edge_units * prices[r.model_id] for r in records)
        moved = sum(r.size_mbit * r.share for r in records) / 8
        moved += sum(size_mb[r.model_id] for r in records if r.fetch_ms > 0)
        a, e = cpu.get("agent_node", 0.0), cpu.get("edge_node", 0.0)
        print(f"| {policy} | {wall:.1f} | {a:.1f} | {local:.1f} | "
              f"{a / local if local else float('nan'):.2f} | {e:.1f} | {edge:.1f} | "
              f"{e / edge if edge else float('nan'):.2f} | {cpu.get('broker', 0.0):.1f} | "
              f"{cpu.get('cloud_node', 0.0):.1f} | {cpu.get('testbed', 0.0):.1f} | "
              f"{moved:.0f} |", flush=True)  # fmt: skip
    print(f"\nWhile the boards compute (intervals of 0.2 s in which their processes use "
          f"≥ {BOARD_PHASE_CORES:g} core), the mean cores each role uses:\n")  # fmt: skip
    print("| policy | intervals | boards | edges | broker | cloud | coordinator | all |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for policy, (n, cores) in phases.items():
        if n:
            each = " | ".join(f"{cores[k]:.2f}" for k in ROLES)
            print(f"| {policy} | {n} | {each} | {sum(cores.values()):.2f} |")


if __name__ == "__main__":
    main()
