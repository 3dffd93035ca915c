"""Benchmark: `testbed deploy` wall time on a lab of namespaced hosts (docs/deploy.md).

Ours / reference, two goals:

- parallel: a first deploy to N hosts (4; quick: 2) vs to 1 host, the same work per
  host — host-1 runs the cloud and agent-0, host-i agent-(i-1): a venv with the `cpu`
  extra from the wheelhouse, the host's config and certificates, the tiny zoo, the
  supervisor, the daemons started and answering their gRPC health check over mutual
  TLS. Goal: ≤ 1.5× (the hosts are deployed at once).
- idempotent: a second deploy of the same bench (nothing to change: "0 changes") vs
  the first. Goal: ≤ 10 % of a first deploy.

The project wheel and the wheelhouse are made before the timings (a deploy makes them
once, then reuses them: tests/deploy_fixtures.py). Each first deploy starts from empty
prefixes (`--uninstall` in between). The lab's hosts share this machine's cores, where
real hosts each bring their own: the pip installs and daemon start-ups of N hosts
compete for the same CPUs here, which the parallel figure includes.

Needs what a lab needs (root, network namespaces, /usr/sbin/sshd) and the wheelhouse
(downloaded once from the index).
"""

from __future__ import annotations

import io
import os
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

from benchmarks.common import Case, Goal, GoalKind, Result, median, report, scratch, tiny_zoo

NAME = "deploy_wall"
PARALLEL_GOAL = Goal(GoalKind.RATIO_AT_MOST, 1.5, "≤ 1.5× the 1-host time")
RERUN_GOAL = Goal(GoalKind.RATIO_AT_MOST, 0.10, "≤ 10 % of a first deploy")


def _timed_deploy(config: Path, *flags: str) -> float:
    from coordinator.cli import main

    started = time.perf_counter()
    with redirect_stdout(io.StringIO()) as out:
        code = main(["deploy", "-c", str(config), *flags])
    if code != 0:
        raise RuntimeError(f"deploy {' '.join(flags)} exited {code}:\n{out.getvalue()[-3000:]}")
    return time.perf_counter() - started


def _placement(hosts: int) -> dict[str, list[str]]:
    nodes = {"host-1": ["cloud", "agent-0"]}
    nodes.update({f"host-{i + 1}": [f"agent-{i}"] for i in range(1, hosts)})
    return nodes


def _measure(lab: object, folder: Path, hosts: int, artifacts: object) -> tuple[float, float]:
    """(first deploy, second deploy) of a bench of `hosts` hosts, in s; left uninstalled."""
    from tests.deploy_fixtures import LabBench

    with LabBench(lab, folder, tiny_zoo(), _placement(hosts), artifacts,  # type: ignore[arg-type]
                  edges=0, agents=hosts) as bench:  # fmt: skip
        first = _timed_deploy(bench.config_path)
        again = _timed_deploy(bench.config_path)
        _timed_deploy(bench.config_path, "--uninstall")
    return first, again


def _artifacts() -> object:
    """The wheel and wheelhouse, or RuntimeError saying why this machine cannot run the
    benchmark (the fixtures skip a test instead, which is not an Exception)."""
    import pytest

    from coordinator.lab import check_can_host_lab
    from testbed.exit_codes import TestbedExit
    from tests.deploy_fixtures import deploy_artifacts

    try:
        check_can_host_lab()
        return deploy_artifacts()
    except TestbedExit as exc:
        raise RuntimeError(f"needs a lab on this machine: {exc.message}") from None
    except pytest.skip.Exception as exc:
        raise RuntimeError(str(exc)) from None


def run(quick: bool = False) -> list[Result]:
    from coordinator.lab import teardown
    from tests.lab_fixtures import start_lab

    hosts, repeats = (2, 1) if quick else (4, 2)
    artifacts = _artifacts()
    one: list[tuple[float, float]] = []
    many: list[tuple[float, float]] = []
    with scratch("deploy-wall") as tmp:
        lab = start_lab(tmp, hosts)
        try:
            for i in range(repeats):
                one.append(_measure(lab, tmp / f"one-{i}", 1, artifacts))
                many.append(_measure(lab, tmp / f"many-{i}", hosts, artifacts))
        finally:
            teardown(lab.state)
    first_1, first_n = median([f for f, _ in one]), median([f for f, _ in many])
    again_1, again_n = median([a for _, a in one]), median([a for _, a in many])
    cores = f"{os.cpu_count()} cores shared by the lab's hosts"
    parallel = Result(NAME, "s", PARALLEL_GOAL, [
        Case(f"first deploy, {hosts} hosts vs 1", first_n, first_1, repeats),
    ], [f"{cores}: real hosts each bring their own (see the module's docstring)",
        "per host: a venv with the cpu extra, config, certificates, the tiny zoo, "
        "1-2 daemons started and serving (mutual TLS)"])  # fmt: skip
    rerun = Result(NAME, "s", RERUN_GOAL, [
        Case("second deploy vs first, 1 host", again_1, first_1, repeats),
        Case(f"second deploy vs first, {hosts} hosts", again_n, first_n, repeats),
    ], ["a second deploy changes nothing: facts, one probe per host, health checks"])  # fmt: skip
    return [report(parallel), report(rerun)]


def main() -> int:
    results = run("--quick" in sys.argv[1:])
    for r in results:
        print(f"{r.name}: {'PASS' if r.passed else 'MISS'} (goal {r.goal.text})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
