"""What `testbed up` runs for `run.system: coedge` (docs/coedge.md, "On the live
bench"): the §B bench (coordinator/coedge_live.py) driven for `run.slots` slots, each
handed to a `RunRecorder` with its shares (shares.csv) and its clock (slots.csv), the
summary's §B part (coordinator/coedge_shares.py), and the policy the schedulers run.

The schedulers' policies, by name on the boards: `random` (uniform over the action
set), `least-queue` (the edge with the least queued work), `home` (the home edge
only), `split-all` (every edge, split by the finish-together rule); or `PATH.onnx`, a
discrete actor exported for this bench (testbed/policies/discrete_actor.py), its spec
read from the file and checked against the bench before it is sent: greedy (argmax of
its logits), or `sampled:PATH.onnx`, each action drawn from the actor's softmax.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from coordinator.actors import ActorFile
from coordinator.bench_run import live_summary, write_run_manifest
from coordinator.coedge_live import CoedgeBench, CoedgeSlot
from coordinator.coedge_shares import CLOCKED_SLOT_FIELDS, coedge_summary
from coordinator.monitor.recorder import TelemetryRecorder, start_recording
from coordinator.policy_choice import PolicySource
from coordinator.progress import ProgressBar
from coordinator.recorder import RunRecorder
from coordinator.records import percentile
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.observation import ObservationSpec
from testbed.policies.actor import ActorMismatch
from testbed.zoo.catalog import Catalog

COEDGE_HEURISTICS = ("random", "least-queue", "home", "split-all")
"""The §B schedulers' heuristics, run on the boards by name (docs/live-loop.md)."""

SAMPLED_PREFIX = "sampled:"
"""`sampled:PATH.onnx`: the actor's actions drawn from its softmax, not its argmax."""

RECORDER_FILES: dict[str, Any] = {"slot_fields": CLOCKED_SLOT_FIELDS, "shares_name": "shares.csv"}
"""`RunRecorder`'s options for a §B run: its slots.csv columns and shares.csv."""


def coedge_policy(cfg: TestbedConfig, text: str) -> tuple[str, PolicySource]:
    """(label, what the boards load) for `text`: a §B heuristic by name, or an ONNX
    discrete actor whose spec fits this bench (`LABEL=` prefixes a label). USAGE for
    an unknown name, MODEL_INVALID for an actor that cannot be read or does not fit."""
    label, sep, what = text.partition("=")
    what = what.strip() if sep else text.strip()
    if what in COEDGE_HEURISTICS:
        return (label if sep else what), PolicySource(what)
    sampled = what.startswith(SAMPLED_PREFIX)
    path = Path(what.removeprefix(SAMPLED_PREFIX))
    if not path.is_file():
        known = ", ".join(COEDGE_HEURISTICS)
        raise TestbedExit(
            ExitCode.USAGE,
            f"run.policy: unknown §B policy {text!r}: expected {known}, an ONNX discrete actor "
            "(PATH.onnx) or sampled:PATH.onnx",
        )
    name = "onnx-sampled" if sampled else "onnx"  # the boards' names (agent_node/coedge_policy.py)
    return (label if sep else path.stem), PolicySource(name, _discrete_actor(cfg, path))


def _discrete_actor(cfg: TestbedConfig, path: Path) -> ActorFile:
    """The actor file with its spec JSON; a `DiscreteActorSpec` stands in the
    `ActorFile`'s spec: `LoadPolicy` sends `spec.to_json()`, all a board needs."""
    from testbed.policies.discrete_actor import SPEC_METADATA_KEY, DiscreteActor

    model = path.read_bytes()
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        spec_json = session.get_modelmeta().custom_metadata_map.get(SPEC_METADATA_KEY)
        if spec_json is None:
            raise ActorMismatch(f"no {SPEC_METADATA_KEY} in its metadata")
        actor = DiscreteActor.load(model, spec_json)
        c = cfg.coedge
        actor.spec.check_bench(cfg.edges.count, c.action_mode, c.top_k)
    except ActorMismatch as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, f"{path}: {exc}") from None
    except Exception as exc:  # ONNX Runtime raises its own (pybind) exception types
        raise TestbedExit(ExitCode.MODEL_INVALID, f"{path}: not an ONNX actor: {exc}") from None
    return ActorFile(model, cast(ObservationSpec, actor.spec), str(path))


def summary_line(summary: dict[str, Any]) -> str:
    """The line `testbed up` prints under its table: mean delay, tasks split, and how
    far apart a split task's shares finished (p50, p95 over tasks split)."""
    spread = summary["share_finish_spread_ms"]
    line = f"§B             mean delay {summary['mean_delay_s']:.3f} s, "
    if not spread["tasks"]:
        return line + f"{summary['tasks_split']} task(s) split, none with every share completed"
    return line + (
        f"{summary['tasks_split']} task(s) split, share finish spread p50 {spread['p50']:.1f} "
        f"ms, p95 {spread['p95']:.1f} ms"
    )


class CoedgeRun:
    """`testbed up` on the live §B bench (the `BenchRun` shape of coordinator/bench_run.py)."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 keep: bool, policy: PolicySource, label: str) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.policy, self.label = cfg, run_dir, policy, label
        self.bench = CoedgeBench(cfg, run_dir, config_path, zoo_dir, keep=keep)
        self.launcher = self.bench.launcher
        self.records: list[TaskRecord] = []
        self._lateness_ms: list[float] = []
        self._t0 = time.monotonic()
        self.telemetry: TelemetryRecorder | None = None

    def start(self, catalog: Catalog) -> None:
        self._t0 = time.monotonic()
        self.bench.start(self.policy)
        self.telemetry = start_recording(self.launcher.broker_url, self.cfg, self.run_dir)
        print(f"broker: {self.launcher.broker_description}")
        print(
            f"§B bench up in {time.monotonic() - self._t0:.1f} s: cloud, {self.cfg.edges.count} "
            f"edge(s), {self.cfg.agents.count} scheduler(s), {self.cfg.run.slot_mode} slots "
            f"of {self.cfg.coedge.slot_s:g} s; policy {self.label}"
        )
        write_run_manifest(
            self.cfg, self.launcher, self.run_dir, catalog, self.bench.nodes, policy=self.label,
            system="coedge", slot_mode=str(self.cfg.run.slot_mode),
        )  # fmt: skip

    def run(self, recorder: RunRecorder) -> None:
        bar = ProgressBar(self.cfg.run.slots, "slots")
        for slot in range(self.cfg.run.slots):
            result: CoedgeSlot = self.bench.step(slot)
            self.records += result.records
            self._lateness_ms.append(result.lateness_ms)
            recorder.add_slot(slot, result.records, result.timing())
            done = sum(r.completed for r in self.records)
            bar.update(1, f"tasks {len(self.records)}, completed {done}, "
                          f"in flight {result.in_flight}")  # fmt: skip

    def end(self) -> list[TaskRecord]:
        records = self.bench.drain()
        self.records += records
        return records

    def interrupted(self) -> list[TaskRecord]:
        records = self.bench.interrupted("the run was stopped (Ctrl-C or SIGTERM)")
        self.records += records
        return records

    def extra(self, final: bool) -> dict[str, Any]:
        summary = coedge_summary(self.records)
        out = live_summary(self.bench, self.label, self.cfg.run.slots, self._t0, final)
        out["node_lines"].append(summary_line(summary))
        return {
            "mode": f"live §B: schedulers decide on the boards, {self.cfg.run.slot_mode} slots",
            "system": "coedge",
            "slot_mode": str(self.cfg.run.slot_mode),
            "slot_s": self.cfg.coedge.slot_s,
            **out,
            "coedge": summary,
            "slot_lateness_ms": {
                "p50": percentile(self._lateness_ms, 50),
                "p95": percentile(self._lateness_ms, 95),
                "max": max(self._lateness_ms, default=0.0),
            },
        }

    def close(self, keep: bool) -> None:
        if self.telemetry is not None:
            self.telemetry.stop()
            self.telemetry = None
        self.bench.keep = keep
        self.bench.close()
