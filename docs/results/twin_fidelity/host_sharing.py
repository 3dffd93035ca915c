"""Does the host share its cores the way the twin's processor sharing says when boards
and edges compute together (docs/twin.md, "Known differences")? No bench: processes
shaped like the bench's nodes, each in its own session as the launcher starts them,
running the demo zoo's models with ONNX Runtime (one thread):

- boards: 10 processes, one computation each (ae-s, cgan-s, diffusion-s in turn), then
  a sleep as long again (an emulation stretch of 2, testbed/emulation.py);
- edges: 3 processes, 3 computations back to back each;
- mixed: both at once.

Every process loads its model and warms up before a common start, so nothing but the
computations runs. Each computation's time alone on the host is its measured span
integrated at the rate processor sharing gives it (coordinator/calibration/contention.py
`alone_times`: 2 cores shared by the spans running); the ratio is that over its units ×
its model's price alone (measured first, one process). Processor sharing holds where
the ratio is 1 in every scenario.

    .venv/bin/python docs/results/twin_fidelity/host_sharing.py [REPEATS]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coordinator.calibration.contention import _Span, alone_times
from testbed.runtime import ModelRuntime, RuntimeKind
from testbed.zoo.catalog import Catalog

ZOO = Path(".zoo/demo")
MODELS = ("ae-s", "cgan-s", "diffusion-s")
ALONE_S = 0.15
"""Each computation's length alone."""
SCENARIOS = {"boards": (10, 0), "edges": (0, 3), "mixed": (10, 3)}


def _load(model: str) -> object:
    catalog = Catalog.load(ZOO)
    loaded = ModelRuntime(RuntimeKind.CPU, 1).load(catalog.path(model), catalog.get(model))
    loaded.warmup()
    return loaded


def worker(model: str, units: int, jobs: int, stretch: float, folder: Path, name: str) -> None:
    loaded, data = _load(model), os.urandom(100_000)
    (folder / f"{name}.ready").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    t0 = float((folder / "go").read_text())
    while time.time() < t0:
        time.sleep(0.001)
    spans = []
    for _ in range(jobs):
        a = time.time()
        loaded.run(units, None, data, 32)  # type: ignore[attr-defined]
        b = time.time()
        time.sleep((b - a) * (stretch - 1.0))
        spans.append((a - t0, b - t0))
    (folder / f"{name}.json").write_text(json.dumps(spans))


def alone_prices() -> dict[str, float]:
    prices = {}
    for model in MODELS:
        loaded, data = _load(model), os.urandom(100_000)
        units, took = (32 if "diffusion" in model else 512), []
        for _ in range(7):
            t = time.perf_counter()
            loaded.run(units, None, data, 32)  # type: ignore[attr-defined]
            took.append((time.perf_counter() - t) / units)
        prices[model] = float(np.median(took))
    return prices


def scenario(boards: int, edges: int, prices: dict[str, float]) -> dict[str, list[float]]:
    """Each kind's ratios (time alone by processor sharing / units × price alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, procs, meta = Path(tmp), [], {}
        for kind, count, jobs, stretch in (("board", boards, 1, 2.0), ("edge", edges, 3, 1.0)):
            for i in range(count):
                model = MODELS[i % len(MODELS)]
                units = max(1, round(ALONE_S / prices[model]))
                name = f"{kind}{i}"
                meta[name] = (kind, model, units)
                argv = [sys.executable, __file__, "worker", model, str(units), str(jobs),
                        str(stretch), tmp, name]  # fmt: skip
                procs.append(subprocess.Popen(argv, start_new_session=True))
        while len(list(folder.glob("*.ready"))) < len(procs):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a worker failed")
            time.sleep(0.05)
        time.sleep(0.5)  # the last one to load has gone to sleep too
        (folder / "go.tmp").write_text(str(time.time() + 0.2))
        (folder / "go.tmp").rename(folder / "go")  # whole, never read half written
        if any(p.wait() for p in procs):
            raise SystemExit("a worker failed")
        spans, owners = [], []
        for name, (kind, model, units) in meta.items():
            for a, b in json.loads((folder / f"{name}.json").read_text()):
                spans.append(_Span(a, b, 1.0, True))
                owners.append((kind, units * prices[model]))
    alone = alone_times(spans, float(os.cpu_count() or 1), 0.0)
    out: dict[str, list[float]] = {}
    for (kind, price), w in zip(owners, alone, strict=True):
        out.setdefault(kind, []).append(w / price)
    return out


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    prices = alone_prices()
    print("alone, ms per unit: " + ", ".join(f"{m} {p * 1e3:.4f}" for m, p in prices.items()))
    print(f"host: {os.cpu_count()} cores; {repeats} repeats, the scenarios interleaved\n")
    got: dict[tuple[str, str], list[float]] = {}
    for rep in range(repeats):
        for name, (boards, edges) in SCENARIOS.items():
            for kind, ratios in scenario(boards, edges, prices).items():
                got.setdefault((name, kind), []).append(float(np.mean(ratios)))
        print(f"repeat {rep + 1}/{repeats} done", file=sys.stderr, flush=True)
    print("| scenario | kind | mean ratio | per repeat |")
    print("|---|---|---:|---|")
    for (name, kind), values in got.items():
        each = " ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {kind} | {np.mean(values):.2f} | {each} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        model, units, jobs, stretch, tmp, name = sys.argv[2:8]
        worker(model, int(units), int(jobs), float(stretch), Path(tmp), name)
    else:
        main()
