"""`python -m benchmarks --quick` runs every benchmark end to end and prints, for each,
our figure, the bare reference and the ratio. No timing is asserted here: goals are
the benchmarks' business (a busy machine may miss them). The benchmarks that need a lab
of namespaced hosts (root, sshd) run in a test of their own, skipped where no lab can
be made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS
from benchmarks.common import REPO, TINY_ZOO_ENV

pytestmark = pytest.mark.slow


NEED_A_LAB = ("deploy_wall",)
ON_RAY = ("ray_sweep",)
"""Starts a Ray cluster (several seconds): a run of its own, under its own timeout."""


def _run_quick(names: list[str], tiny_zoo: Path, out_json: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *names, "--quick", "--json", str(out_json)],
        cwd=REPO,
        env={**os.environ, TINY_ZOO_ENV: str(tiny_zoo)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in names:
        line = re.compile(rf"^{name} \[.+\]: ours [\d.]+ \S+, reference [\d.]+ \S+, ratio [\d.]+,")
        assert any(line.match(row) for row in proc.stdout.splitlines()), (
            f"{name} printed no ours/reference/ratio line:\n{proc.stdout[-3000:]}"
        )
    return proc


def test_lab_benchmarks_print_ours_reference_and_ratio(tiny_zoo: Path, tmp_path: Path) -> None:
    from tests.lab_fixtures import skip_unless_lab_possible

    skip_unless_lab_possible()
    _run_quick(list(NEED_A_LAB), tiny_zoo, tmp_path / "bench.json")


def test_the_ray_benchmark_prints_ours_reference_and_ratio(tiny_zoo: Path, tmp_path: Path):
    _run_quick(list(ON_RAY), tiny_zoo, tmp_path / "bench.json")


def test_quick_benchmarks_print_ours_reference_and_ratio(tiny_zoo: Path, tmp_path: Path):
    out_json = tmp_path / "bench.json"
    names = [n for n in BENCHMARKS if n not in NEED_A_LAB + ON_RAY]
    proc = _run_quick(names, tiny_zoo, out_json)
    table = proc.stdout.split("\nbenchmark ", 1)
    assert len(table) == 2, "no final table"
    assert all(name in table[1] for name in names)
    assert out_json.is_file()
