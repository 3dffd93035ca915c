"""How much CPU a model fetch costs the bench's processes (docs/twin.md, "Contention on
a shared host"): the default bench started, then each model evicted and prefetched
twice on the first edge with the operator calls, the CPU seconds of every process the
bench started (broker, cloud, edges, boards) read before and after each prefetch.

    .venv/bin/python docs/results/twin_fidelity/fetch_cpu.py [RUN_OUT_DIR]
"""

from __future__ import annotations

import os
import sys
import time

import psutil

from coordinator.envs import bench_ops
from coordinator.policy_choice import PolicySource
from testbed.config import load_config
from testbed.messages import ModelRef

ME = psutil.Process(os.getpid())


def bench_cpu_s() -> float:
    """CPU seconds (user + system) of every process this one started, so far."""
    total = 0.0
    for p in ME.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs"
    cfg = load_config("testbed.yaml", sets=[f"run.out_dir={out_dir}"], env={})
    bench = bench_ops.new_bench(cfg, "fetch_cpu")
    print(f"1-min load average before: {os.getloadavg()[0]:.2f}")
    with bench:
        bench.start(PolicySource("local"))
        time.sleep(3)
        with bench_ops.edge_client(bench, cfg.edge_specs()[0].id) as client:
            c0, t0 = bench_cpu_s(), time.monotonic()
            time.sleep(3)
            idle = (bench_cpu_s() - c0) / (time.monotonic() - t0)
            print(f"idle bench: {idle:.3f} cores")
            for model_id in ("diffusion-s", "cgan-s", "ae-s") * 2:
                ref = ModelRef(model_id)
                if model_id in {c.model.model_id for c in client.state(timeout_s=10).cached}:
                    client.evict(ref)
                    time.sleep(0.3)
                c0, t0 = bench_cpu_s(), time.monotonic()
                op = client.prefetch(ref)
                wall, cpu = time.monotonic() - t0, bench_cpu_s() - c0
                print(
                    f"{model_id}: prefetch {wall:.3f} s (fetch {op.timing.fetch_ms / 1e3:.3f} s), "
                    f"bench CPU {cpu:.3f} s = {cpu / wall:.2f} cores "
                    f"({(cpu - idle * wall) / wall:.2f} above the idle bench)"
                )
    print(f"1-min load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
