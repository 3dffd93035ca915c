"""`testbed experiment run SPEC --executor ray [--address ADDR]`: the cells of a plan as
Ray Core tasks (the optional `cluster` extra; this module is imported only for
`--executor ray`, so the default path never loads Ray).

The tasks run the very steps of the sequential executor (coordinator/executors.py):
- a training in the twin asks for `train.threads` CPUs (and a share of a GPU where the
  cluster has GPUs), so trainings are packed onto the cluster's cores;
- an evaluation in the twin asks for one CPU; it waits for its training (the training's
  result is its argument);
- a live evaluation, and a calibration (which runs the live bench), hold the bench's
  custom resource, capacity 1 (`bench_resource`), so two never overlap on one bench,
  and every CPU of the machine that holds it: trainings beside a live bench would load
  the cores whose latencies and energies it measures;
- a live evaluation waits for every training of its seed, so the algorithms of one
  seed become ready together and meet the bench minutes apart, not a whole sweep's
  trainings apart (a heuristic's cell needs no training and would otherwise run first).
Only the driver writes: `results.json` grows cell by cell as results come back, in the
sequential executor's format (and, once all are in, its order). A stopped driver
(Ctrl-C, SIGTERM, or killed) loses only the cells in flight, which Ray stops with the
driver's job: run the same command again and the cells already written are skipped,
the trainings already recorded reused.

Without `--address` a local Ray is started, sized to this machine, and stopped at the
end; with it, the driver joins a running cluster (`ray start --head --resources=...` on
the lab machine, docs/experiments.md). The run folders are written by the workers: on a
cluster of several machines the experiment folder must be on a file system all of them
share, at the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.executors import (
    Cell,
    Executor,
    announce,
    calibrate_value,
    cell_backend,
    cell_note,
    evaluate_cell,
    pending_cells,
    plan_order,
    reusable_training,
    train_cell,
    trained_algorithms,
)
from coordinator.experiment_plan import Plan
from coordinator.experiment_results import Results
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit

LOCAL_BENCH_RESOURCE = "testbed_bench"
"""The custom resource of a bench of local processes: one per machine that can hold one."""

INSTALL_HINT = "pip install 'aigc-testbed[cluster]'"

RESOURCE_QUANTUM = 1e-4
"""Ray keeps fractional resources to four decimals."""


def import_ray() -> Any:
    """The `ray` module, or the exit DEPENDENCY_MISSING naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING, f"--executor ray needs Ray: {INSTALL_HINT}"
        ) from None
    return ray


def bench_resource(cfg: TestbedConfig) -> str:
    """The Ray resource (capacity 1) a live cell of `cfg` holds: `testbed_bench` for a
    bench of local processes (the machine the task lands on runs it), one named after
    the hosts for a bench of deployed hosts (whichever machine drives it, it is one
    bench)."""
    if not cfg.inventory.remote:
        return LOCAL_BENCH_RESOURCE
    hosts = ",".join(sorted(f"{h.address}:{h.ssh_port}" for h in cfg.inventory.hosts))
    return f"{LOCAL_BENCH_RESOURCE}_{hashlib.sha256(hosts.encode()).hexdigest()[:10]}"


def training_gpus(cluster: dict[str, float], cpus_per_training: float) -> float:
    """The GPU share a training asks for: none without GPUs; else the cluster's GPUs
    spread over as many trainings as its CPUs hold, so GPUs never limit the packing
    (Ray then sets CUDA_VISIBLE_DEVICES for the task)."""
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 0.0)
    if gpus <= 0 or cpus <= 0:
        return 0.0
    share = min(1.0, gpus * cpus_per_training / cpus)
    return max(RESOURCE_QUANTUM, math.floor(share / RESOURCE_QUANTUM) * RESOURCE_QUANTUM)


@dataclass(frozen=True)
class StepFailed:
    """A step that ended in a `TestbedExit` in a worker, carried back as a value (the
    exception itself does not survive pickling) and passed on to the steps after it."""

    code: int
    message: str


def run_step(folder: str, step: Callable[..., Any], *args: Any) -> Any:
    """In a worker: `step(*args)` in the driver's working folder (relative paths of the
    spec and the bench mean the same there); a failure earlier in the chain passes on."""
    failed = next((a for a in args if isinstance(a, StepFailed)), None)
    if failed is not None:
        return failed
    os.chdir(folder)
    try:
        return step(*args)
    except TestbedExit as exc:
        return StepFailed(int(exc.code), exc.message)


def evaluate_after_trainings(
    plan: Plan, cell: Cell, out_dir: Path, calibration: str | Path | None,
    run_dir: Path | None, *_trainings: Any,
) -> Any:  # fmt: skip
    """`evaluate_cell`, sent with the results of its seed's trainings as arguments only
    so that Ray starts it once they are all done (a failed one passes on)."""
    return evaluate_cell(plan, cell, out_dir, calibration, run_dir)


@contextlib.contextmanager
def _keeping_signal_handlers() -> Iterator[None]:
    """Put back the SIGINT and SIGTERM handlers `ray.init` replaces: it installs its own
    for SIGTERM (Ray 2.60), with which a `kill`ed driver exited 15 at once, without the
    interrupted mark and exit 130 that Ctrl-C gives (the CLI's handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread owns signal handlers (a caller's own thread: as is)
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """FAILURE naming `--address` when nothing answers at HOST:PORT (`ray.init` itself
    retries for minutes, printing only its own warnings); "auto" and the like pass."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise TestbedExit(ExitCode.FAILURE, (
            f"--address {address}: nothing answers there ({exc}): is Ray running "
            "(`ray start --head` on that machine)?")) from None  # fmt: skip


def _connect(ray: Any, address: str | None, benches: set[str]) -> bool:
    """Join or start Ray; whether this call did (and so the driver disconnects at the
    end). A cluster without a bench resource the plan needs is refused before any
    task is sent (its live cells would wait forever)."""
    if ray.is_initialized():  # a caller's own Ray (tests, notebooks): used as it is
        joined = False
    elif address:
        _check_reachable(address)
        try:
            with _keeping_signal_handlers():
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise TestbedExit(ExitCode.FAILURE, f"--address {address}: {exc}") from None
        joined = True
    else:
        resources = {name: 1 for name in benches | {LOCAL_BENCH_RESOURCE}}
        with _keeping_signal_handlers():
            ray.init(resources=resources, include_dashboard=False, log_to_driver=False)
        joined = True
    cluster = ray.cluster_resources()
    missing = sorted(b for b in benches if cluster.get(b, 0) < 1)
    if missing:
        if joined:
            ray.shutdown()
        declare = ", ".join(f'"{b}": 1' for b in missing)
        raise TestbedExit(ExitCode.USAGE, (
            f"the Ray cluster has no {', '.join(missing)} resource for the live cells: "
            f"start Ray on the machine that holds the bench with `ray start "
            f"--resources='{{{declare}}}'` (docs/experiments.md)"))  # fmt: skip
    return joined


def _bench_cpus(ray: Any, bench: str) -> float:
    """The CPUs of the (smallest) machine holding `bench`: what a live cell holds."""
    cpus = [node["Resources"].get("CPU", 1.0) for node in ray.nodes()
            if node.get("Alive") and node["Resources"].get(bench, 0) >= 1]  # fmt: skip
    return min(cpus) if cpus else 1.0


class RaySweep:
    """The driver's side: submits the plan's missing steps, writes what comes back."""

    def __init__(self, ray: Any, plan: Plan, out_dir: Path, results: Results) -> None:
        self.ray, self.plan, self.out_dir, self.results = ray, plan, out_dir, results
        self.step = ray.remote(run_step)
        self.folder = os.getcwd()
        self.plan_ref = ray.put(plan)  # sent once, not with every task
        self.pending: dict[Any, tuple[str, Any]] = {}  # ref → (calibration|train|cell, key)
        self.cluster: dict[str, float] = ray.cluster_resources()

    def _submit(self, kind: str, key: Any, options: dict[str, Any], *args: Any) -> Any:
        ref = self.step.options(**options).remote(self.folder, *args)
        self.pending[ref] = (kind, key)
        return ref

    def _live_options(self, cfg: TestbedConfig) -> dict[str, Any]:
        bench = bench_resource(cfg)
        return {"num_cpus": _bench_cpus(self.ray, bench), "resources": {bench: 1}}

    def submit(self, todo: list[Cell]) -> int:
        """Send every step of `todo`; the number of trainings. A live cell waits for
        every training of its seed (and sweep value): on a host that drifts over an
        hour, a Greedy cell run while MATO still trained was compared with a MATO cell
        half an hour later."""
        plan, out_dir, results = self.plan, self.out_dir, self.results
        trained = trained_algorithms(plan)
        calibrations: dict[str, Any] = {}
        runs: dict[tuple[str, str, int], Any] = {}  # (algorithm, value, seed) → run
        seed_trainings: dict[tuple[str, int], list[Any]] = {}
        configs: dict[tuple[str, int], TestbedConfig] = {}  # (value, seed) → its config
        for cell in todo:
            key = str(cell.value)
            cfg = configs.get((key, cell.seed)) or plan.cell_config(cell.value, cell.seed, out_dir)
            configs[(key, cell.seed)] = cfg
            if key not in calibrations:
                calibrations[key] = results.calibration(cell.value)
                if plan.spec.calibrate_slots and calibrations[key] is None:
                    calibrations[key] = self._submit(
                        "calibration", cell.value, self._live_options(cfg),
                        calibrate_value, self.plan_ref, cell.value, out_dir,
                    )  # fmt: skip
                elif not plan.spec.calibrate_slots:
                    calibrations[key] = None
            if cell.algorithm in trained:
                run = reusable_training(results, cell)
                if run is None:
                    threads = min(float(cfg.train.threads), self.cluster.get("CPU", 1.0))
                    options = {"num_cpus": threads,
                               "num_gpus": training_gpus(self.cluster, threads)}  # fmt: skip
                    run = self._submit("train", cell, options, train_cell, self.plan_ref, cell,
                                       out_dir, calibrations[key])  # fmt: skip
                    seed_trainings.setdefault((key, cell.seed), []).append(run)
                runs[(cell.algorithm, key, cell.seed)] = run
        for cell in todo:
            key = str(cell.value)
            run = runs.get((cell.algorithm, key, cell.seed))
            args = (self.plan_ref, cell, out_dir, calibrations[key], run)
            if cell_backend(plan, cell, out_dir)[0] == "live":
                options = self._live_options(configs[(key, cell.seed)])
                self._submit("cell", cell, options, evaluate_after_trainings,
                             *args, *seed_trainings.get((key, cell.seed), []))  # fmt: skip
            else:
                self._submit("cell", cell, {"num_cpus": 1}, evaluate_cell, *args)
        return sum(len(t) for t in seed_trainings.values())

    def collect(self, bar: Any) -> None:
        """Write each step's result as it comes back; the first failure ends the run."""
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1)
            kind, key = self.pending.pop(ready[0])
            value = self.ray.get(ready[0])
            if isinstance(value, StepFailed):
                raise TestbedExit(ExitCode(value.code), value.message)
            if kind == "calibration":
                self.results.add_calibration(key, Path(value))
            elif kind == "train":
                self.results.add_training(key.algorithm, key.value, key.seed, Path(value))
                bar.update(1, f"trained {key}")
            else:
                self.results.add(value)
                bar.update(1, cell_note(value))

    def cancel(self) -> None:
        """Stop the steps still queued or running, for a driver that stays connected (a
        caller's own Ray). A driver that leaves Ray does not call this: Ray ends a job
        with its driver (the job's workers killed, its queued tasks dropped), and
        `ray.cancel` racing a task's completion aborts the driver inside Ray's core
        ("Tried to complete task that was not pending", Ray 2.60) instead of the
        interrupted exit a stopped run owes its user. Steps already done are left be."""
        refs = list(self.pending)
        self.pending.clear()
        if not refs:
            return
        _, running = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in running:
            with contextlib.suppress(Exception):  # finished meanwhile, or its worker is gone
                self.ray.cancel(ref, force=True)


def run_on_ray(plan: Plan, out_dir: Path, address: str | None = None) -> Results:
    """Train and evaluate every missing cell of `plan` into `out_dir` on Ray."""
    from coordinator.progress import ProgressBar

    ray = import_ray()
    out_dir = out_dir.resolve()  # the workers may start elsewhere
    out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(out_dir / "results.json", plan.spec)
    todo = pending_cells(plan, results, out_dir)
    benches = {bench_resource(plan.cell_config(c.value, c.seed, out_dir)) for c in todo
               if cell_backend(plan, c, out_dir)[0] == "live"}  # fmt: skip
    if plan.spec.calibrate_slots:
        benches |= {bench_resource(plan.cell_config(v, plan.seeds[0], out_dir))
                    for v in {c.value for c in todo} if results.calibration(v) is None}  # fmt: skip
    if not todo:
        announce(plan, todo, 0, Executor.RAY)
        return results
    joined = _connect(ray, address, benches)
    sweep: RaySweep | None = None
    try:
        sweep = RaySweep(ray, plan, out_dir, results)
        trainings = sweep.submit(todo)
        announce(plan, todo, trainings, Executor.RAY)
        cpus = sweep.cluster.get("CPU", 0)
        print(f"ray: {cpus:.0f} CPUs, {sweep.cluster.get('GPU', 0):.0f} GPUs; "
              f"{len(sweep.pending)} tasks sent")  # fmt: skip
        sweep.collect(ProgressBar(len(todo) + trainings, f"experiment {plan.spec.name}",
                                  every_s=0.0))  # fmt: skip
    finally:
        if joined:  # leaving Ray ends the job's tasks (RaySweep.cancel says why not cancel)
            ray.shutdown()
        elif sweep is not None:
            sweep.cancel()
    order = plan_order(plan, out_dir)
    results.doc["cells"].sort(
        key=lambda c: order.get((c["algorithm"], str(c["value"]), c["seed"]), len(order))
    )
    results.save()
    return results
