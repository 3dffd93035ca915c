"""What every benchmark shares: the result type, statistics, machine facts, zoo lookup
and a small bench of real node processes (broker, cloud, edge) started by the real
launcher.

A benchmark measures our path and the bare reference in the same run, interleaved
where it can, and reports medians (other work may share the machine).
"""

from __future__ import annotations

import enum
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
ZOO_ROOT = REPO / ".zoo"


# ---------------------------------------------------------------------- results


class GoalKind(enum.StrEnum):
    RATIO_AT_LEAST = "ratio_at_least"
    """ours / reference ≥ limit (rates: higher is better)."""
    RATIO_AT_MOST = "ratio_at_most"
    """ours / reference ≤ limit (times: lower is better)."""
    ADDED_AT_MOST = "added_at_most"
    """ours − reference ≤ limit, in the result's unit."""
    BELOW = "below"
    """ours < limit, in the result's unit (the reference is context only)."""


@dataclass(frozen=True)
class Goal:
    kind: GoalKind
    limit: float
    text: str
    """How the issue states it, e.g. "≥ 0.7"."""

    def met(self, ours: float, reference: float) -> bool:
        if self.kind is GoalKind.RATIO_AT_LEAST:
            return ours / reference >= self.limit
        if self.kind is GoalKind.RATIO_AT_MOST:
            return ours / reference <= self.limit
        if self.kind is GoalKind.ADDED_AT_MOST:
            return ours - reference <= self.limit
        return ours < self.limit


@dataclass(frozen=True)
class Case:
    """One measured configuration of a benchmark (a broker, a model, ...)."""

    label: str
    ours: float
    """Median of our path, in the result's unit."""
    reference: float
    """Median of the bare reference, same unit, same run."""
    samples: int
    """Repeats (or calls) behind each median."""
    details: dict[str, float] = field(default_factory=dict)
    """Extra figures (p95, the parts of our time, ...), each name with its unit."""

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else math.inf

    @property
    def added(self) -> float:
        return self.ours - self.reference


@dataclass
class Result:
    """What one benchmark measured. The headline figures are those of its worst case."""

    name: str
    unit: str
    goal: Goal
    cases: list[Case]
    notes: list[str] = field(default_factory=list)

    def passed_case(self, case: Case) -> bool:
        return self.goal.met(case.ours, case.reference)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(self.passed_case(c) for c in self.cases)

    @property
    def headline(self) -> Case:
        """The case furthest from (or least inside) the goal."""
        key: Callable[[Case], float] = {
            GoalKind.RATIO_AT_LEAST: lambda c: -c.ratio,
            GoalKind.RATIO_AT_MOST: lambda c: c.ratio,
            GoalKind.ADDED_AT_MOST: lambda c: c.added,
            GoalKind.BELOW: lambda c: c.ours,
        }[self.goal.kind]
        return max(self.cases, key=key)

    @property
    def ours(self) -> float:
        return self.headline.ours

    @property
    def reference(self) -> float:
        return self.headline.reference

    @property
    def ratio(self) -> float:
        return self.headline.ratio

    @property
    def added(self) -> float:
        return self.headline.added

    def case_line(self, case: Case) -> str:
        """The line every benchmark prints per case (the smoke test looks for it)."""
        verdict = "PASS" if self.passed_case(case) else "MISS"
        return (
            f"{self.name} [{case.label}]: ours {fmt(case.ours)} {self.unit}, "
            f"reference {fmt(case.reference)} {self.unit}, ratio {case.ratio:.2f}, "
            f"added {fmt(case.added)} {self.unit} (goal {self.goal.text}: {verdict}; "
            f"median of {case.samples})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "goal": {
                "kind": self.goal.kind.value,
                "limit": self.goal.limit,
                "text": self.goal.text,
            },
            "passed": self.passed,
            "cases": [
                {
                    **asdict(c),
                    "ratio": c.ratio,
                    "added": c.added,
                    "passed": self.passed_case(c),
                }
                for c in self.cases
            ],
            "notes": self.notes,
        }


def fmt(value: float) -> str:
    """A figure with three significant digits, never in exponent form for our ranges."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def report(result: Result) -> Result:
    """Print every case line and the notes; returns `result`."""
    for case in result.cases:
        print(result.case_line(case), flush=True)
    for note in result.notes:
        print(f"  note: {note}", flush=True)
    return result


# ---------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linearly interpolated (numpy's default)."""
    if not len(values):
        raise ValueError("no values")
    return float(np.percentile(values, q))


def machine() -> dict[str, Any]:
    """Facts that decide the figures: CPU, cores, load, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_1min": round(load[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------- zoos


def zoo_folder(scale: str) -> Path | None:
    """`.zoo/<scale>` when it holds a catalog (built by `testbed zoo build`), else None."""
    folder = ZOO_ROOT / scale
    return folder if (folder / "catalog.json").is_file() else None


TINY_ZOO_ENV = "TESTBED_BENCH_TINY_ZOO"
"""A tiny zoo folder to use instead of looking for one (the smoke test passes its own)."""


def tiny_zoo() -> Path:
    """The tiny zoo: $TESTBED_BENCH_TINY_ZOO, else `.zoo/tiny` if built, else the tests'
    cached one (built if needed, ≈ 15 s once)."""
    if os.environ.get(TINY_ZOO_ENV):
        return Path(os.environ[TINY_ZOO_ENV])
    folder = zoo_folder("tiny")
    if folder is not None:
        return folder
    from tests.zoo_fixtures import build_tiny_zoo  # builds once (≈ 15 s), then cached

    return build_tiny_zoo()


def demo_zoo_or_tiny(notes: list[str]) -> Path:
    """The demo zoo; the tiny one (with a note) when `testbed zoo build --scale demo`
    has not been run."""
    folder = zoo_folder("demo")
    if folder is not None:
        return folder
    notes.append("demo zoo not built (testbed zoo build --scale demo): used the tiny zoo")
    return tiny_zoo()


def catalog_models(zoo_dir: Path) -> list[dict[str, Any]]:
    """The catalog's model entries (as JSON objects), smallest file first."""
    doc = json.loads((zoo_dir / "catalog.json").read_text())
    return sorted(doc["models"], key=lambda m: int(m["size_bytes"]))


# ---------------------------------------------------------------------- node bench


def write_node_config(path: Path, broker_url: str, zoo_dir: Path, **sections: Any) -> Path:
    """A testbed.yaml for benchmark nodes: this broker and zoo, no link or compute
    emulation (pacing off), estimated energy; `sections` are merged in."""
    from testbed.config import load_config

    catalog = json.loads((zoo_dir / "catalog.json").read_text())
    data: dict[str, Any] = {
        "broker": {"url": broker_url},
        "zoo": {"scale": catalog.get("scale", "tiny"), "dir": str(zoo_dir.parent)},
        "emulation": {"links": False, "compute": False},
        "edges": {"count": 1, "energy": {"meter": "estimated"}, "runtime": "cpu"},
        "agents": {"count": 0},
        "cloud": {"energy": {"meter": "estimated"}},
        "telemetry": {"interval_s": 5.0},
        "run": {"start_timeout_s": 60.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    load_config(path, env={})  # fail here, not in a node
    return path


@contextmanager
def broker(kind: str, workdir: Path) -> Iterator[Any]:
    """A fresh embedded broker of `kind` ("mosquitto" or "amqtt") for one benchmark."""
    from testbed.broker import EmbeddedBroker
    from testbed.config import BrokerConfig, BrokerKind

    with EmbeddedBroker.start(BrokerConfig(), workdir, kind=BrokerKind(kind)) as running:
        yield running


def broker_kinds(quick: bool) -> list[str]:
    """Mosquitto (when installed) and amqtt; only the first of them with `quick`."""
    import shutil

    kinds = [*(["mosquitto"] if shutil.which("mosquitto") else []), "amqtt"]
    return kinds[:1] if quick else kinds


@contextmanager
def node_bench(
    workdir: Path,
    broker_url: str,
    zoo_dir: Path,
    *,
    cloud: bool,
    edges: int,
    start_edges: bool = True,
    **sections: Any,
) -> Iterator[Any]:
    """The real launcher with a cloud node and/or edges, torn down on exit.
    `start_edges` False: the config has the edges (the cloud serves only the edges of
    its config) but their processes are not started (a benchmark stands in for one)."""
    from coordinator.launcher import Launcher
    from testbed.config import load_config

    edge_section = {**sections.pop("edges", {}), "count": edges}
    config_path = write_node_config(
        workdir / "testbed.yaml", broker_url, zoo_dir, edges=edge_section, **sections
    )
    cfg = load_config(config_path, env={})
    launcher = Launcher(cfg, workdir / "run", config_path, zoo_dir=zoo_dir)
    try:
        nodes = [launcher.start_cloud()] if cloud else []
        nodes += [launcher.start_edge(spec) for spec in cfg.edge_specs() if start_edges]
        launcher.wait_ready(nodes)
        yield launcher
    finally:
        launcher.stop_all()


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for one benchmark's files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as tmp:
        yield Path(tmp)


def standalone(run: Callable[[bool], Result]) -> int:
    """`python -m benchmarks.<name> [--quick]`: run one benchmark, exit 0."""
    quick = "--quick" in sys.argv[1:]
    result = run(quick)
    print(f"{result.name}: {'PASS' if result.passed else 'MISS'} (goal {result.goal.text})")
    return 0
