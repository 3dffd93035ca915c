"""The Ray executor without Ray (coordinator/ray_executor.py): what each step asks the
cluster for — a live cell its bench (capacity 1) and the bench machine's CPUs, a
training its threads and a GPU share where there are GPUs — a cluster without the
bench refused before anything is sent, and `--executor ray` without the extra naming
it (tests/integration/test_ray_executor.py runs it on a real Ray)."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.cli import main
from coordinator.experiment_plan import Plan, make_plan
from coordinator.experiment_results import Results
from coordinator.experiment_spec import load_spec
from coordinator.ray_executor import (
    LOCAL_BENCH_RESOURCE,
    RaySweep,
    _check_reachable,
    _connect,
    _keeping_signal_handlers,
    bench_resource,
    import_ray,
    training_gpus,
)
from testbed.config import config_from_dict
from testbed.exit_codes import ExitCode, TestbedExit


class FakeRay:
    """What RaySweep and _connect call on `ray`, recording every task sent."""

    def __init__(self, cluster: dict[str, float], node_cpus: float = 8.0) -> None:
        self.cluster = cluster
        self.node = {"Alive": True, "Resources": {**cluster, "CPU": node_cpus}}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.after: dict[str, list[str]] = {}  # a live cell → the trainings it waits for
        self._options: dict[str, Any] = {}

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return self.cluster

    def nodes(self) -> list[dict[str, Any]]:
        return [self.node]

    def put(self, value: Any) -> Any:
        return value

    def remote(self, _fn: Any) -> FakeRay:
        return self

    def options(self, **options: Any) -> FakeRay:
        self._options = options
        return self

    def remote_call(self, _folder: str, step: Any, _plan: Any, cell: Any, *args: Any) -> Any:
        name = f"{step.__name__} {cell}"
        self.sent.append((name, self._options))
        if step.__name__ == "evaluate_after_trainings":
            self.after[name] = list(args[3:])
        return name  # the "object ref": what a later step receives as an argument


def _plan(tmp_path: Path, devices: list[int]) -> Plan:
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({"agents": {"count": 3}}))
    doc = {"name": "probe", "config": "bench.yaml", "algorithms": ["mato", "greedy"],
           "sweep": {"key": "agents.count", "values": devices}, "seeds": [0],
           "evaluate": {"max_live_agents": 2, "oracle_max_agents": 0}}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(doc))
    return make_plan(load_spec(tmp_path / "spec.yaml"), tmp_path / "spec.yaml")


def _sent(ray: FakeRay, plan: Plan, tmp_path: Path) -> dict[str, dict[str, Any]]:
    sweep = RaySweep(ray, plan, tmp_path, Results(tmp_path / "results.json", plan.spec))
    sweep.step.remote = ray.remote_call  # type: ignore[attr-defined]
    from coordinator.executors import pending_cells

    sweep.submit(pending_cells(plan, sweep.results, tmp_path))
    return dict(ray.sent)


def test_live_cells_hold_the_bench_and_its_machine_trainings_their_threads(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, [2, 3])  # 2 devices: live; 3: the twin (max_live_agents 2)
    sent = _sent(FakeRay({"CPU": 8.0, LOCAL_BENCH_RESOURCE: 1.0}), plan, tmp_path)
    live = {"num_cpus": 8.0, "resources": {LOCAL_BENCH_RESOURCE: 1}}
    greedy, mato = "evaluate_after_trainings greedy 2/0", "evaluate_after_trainings mato 2/0"
    assert sent[greedy] == live and sent[mato] == live
    assert sent["evaluate_cell greedy 3/0"] == {"num_cpus": 1}
    assert sent["train_cell mato 3/0"] == {"num_cpus": 2.0, "num_gpus": 0.0}  # train.threads
    assert len(sent) == 6


def test_a_seeds_live_cells_wait_for_all_its_trainings(tmp_path: Path) -> None:
    """Greedy needs no training, yet its live cell waits for MATO's of the same seed:
    the pair meets the bench together, not a sweep's trainings apart."""
    plan = _plan(tmp_path, [2])
    ray = FakeRay({"CPU": 8.0, LOCAL_BENCH_RESOURCE: 1.0})
    _sent(ray, plan, tmp_path)
    assert ray.after == {
        "evaluate_after_trainings greedy 2/0": ["train_cell mato 2/0"],
        "evaluate_after_trainings mato 2/0": ["train_cell mato 2/0"],
    }


def test_trainings_share_the_gpus_without_limiting_the_packing() -> None:
    assert training_gpus({"CPU": 16.0}, 2.0) == 0.0
    assert training_gpus({"CPU": 16.0, "GPU": 1.0}, 2.0) == pytest.approx(0.125)
    assert training_gpus({"CPU": 2.0, "GPU": 4.0}, 2.0) == 1.0
    assert training_gpus({"CPU": 100000.0, "GPU": 1.0}, 1.0) == pytest.approx(1e-4)


def test_a_bench_of_hosts_is_one_resource_whoever_drives_it() -> None:
    def bench(*addresses: str) -> str:
        nodes = [["agent-0", "edge-0", "cloud"]] + [[]] * (len(addresses) - 1)
        hosts = [{"name": f"h{i}", "address": a, "nodes": n}
                 for i, (a, n) in enumerate(zip(addresses, nodes, strict=True))]  # fmt: skip
        bench = {"agents": {"count": 1}, "edges": {"count": 1}, "inventory": {"hosts": hosts}}
        return bench_resource(config_from_dict(bench))

    assert bench_resource(config_from_dict({})) == LOCAL_BENCH_RESOURCE
    assert bench("10.0.0.1", "10.0.0.2") == bench("10.0.0.2", "10.0.0.1")
    assert bench("10.0.0.1") != bench("10.0.0.2") != LOCAL_BENCH_RESOURCE


def test_a_cluster_without_the_bench_is_refused_before_anything_runs() -> None:
    with pytest.raises(TestbedExit) as caught:
        _connect(FakeRay({"CPU": 4.0}), "10.0.0.9:6379", {LOCAL_BENCH_RESOURCE})
    assert caught.value.code == ExitCode.USAGE
    assert f"""ray start --resources='{{"{LOCAL_BENCH_RESOURCE}": 1}}'""" in caught.value.message
    assert _connect(FakeRay({"CPU": 4.0}), None, set()) is False  # the caller's Ray: kept


def test_ray_without_the_extra_exits_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when not installed
    with pytest.raises(TestbedExit) as caught:
        import_ray()
    assert caught.value.code == ExitCode.DEPENDENCY_MISSING
    _plan(tmp_path, [3])
    spec, out = str(tmp_path / "spec.yaml"), str(tmp_path / "out")
    code = main(["experiment", "run", spec, "--out", out, "--executor", "ray"])
    assert code == ExitCode.DEPENDENCY_MISSING
    assert "pip install 'aigc-testbed[cluster]'" in capsys.readouterr().err
    assert main(["experiment", "run", spec, "--address", "x:1"]) == ExitCode.USAGE


def test_a_calibration_path_from_a_ray_task_configures_the_cells(tmp_path: Path) -> None:
    # The calibration step returns a Path; on Ray the trainings and evaluations get it as
    # such (the sequential executor keeps a str): both configure the twin alike.
    plan = _plan(tmp_path, [2])
    calibration = tmp_path / "calibration" / "2" / "calibration.json"
    as_path = plan.cell_config(2, 0, tmp_path, calibration)
    assert as_path.twin.calibration == str(calibration)
    assert as_path == plan.cell_config(2, 0, tmp_path, str(calibration))


def test_a_connected_driver_cancels_only_the_steps_not_done(tmp_path: Path) -> None:
    # A driver on a caller's own Ray cancels what is queued or running; a step already
    # done is not cancelled (cancelling one racing its completion aborts Ray's core).
    plan = _plan(tmp_path, [2])
    ray = FakeRay({"CPU": 8.0, LOCAL_BENCH_RESOURCE: 1.0})
    sweep = RaySweep(ray, plan, tmp_path, Results(tmp_path / "results.json", plan.spec))
    sweep.pending = {"done": ("cell", None), "running": ("cell", None)}
    cancelled: list[str] = []
    ray.wait = lambda refs, num_returns, timeout: (["done"], ["running"])  # type: ignore[attr-defined]
    ray.cancel = lambda ref, force: cancelled.append(ref)  # type: ignore[attr-defined]
    sweep.cancel()
    assert cancelled == ["running"] and not sweep.pending
    sweep.cancel()  # nothing pending: Ray is not asked
    assert cancelled == ["running"]


def test_ray_init_does_not_take_the_drivers_signal_handlers() -> None:
    # ray.init installs its own SIGTERM handler (a `kill`ed driver then exited 15, not
    # 130 with the folder marked); the CLI's handlers are put back after it.
    def ours(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    before, sigint = signal.signal(signal.SIGTERM, ours), signal.getsignal(signal.SIGINT)
    try:
        with _keeping_signal_handlers():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init does
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, sigint)


def test_an_address_where_nothing_answers_is_said_at_once() -> None:
    # ray.init retried for minutes, printing only Ray's own warnings
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _check_reachable(f"127.0.0.1:{port}")  # something answers: on to ray.init
        _check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(TestbedExit) as caught:  # closed now
        _check_reachable(f"127.0.0.1:{port}", timeout_s=2.0)
    assert caught.value.code == ExitCode.FAILURE
    assert caught.value.message.startswith(f"--address 127.0.0.1:{port}: nothing answers")
    _check_reachable("auto")  # Ray's own forms: left to Ray
