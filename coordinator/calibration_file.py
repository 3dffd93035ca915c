"""`calibration.json`: what `testbed calibrate` measured on the live bench, for the twin.

The twin (coordinator/envs/twin_params.py) charges a slot's work with these numbers
instead of the paper's D·C/f and κf²: per model, what one unit of work (one generated
sample, docs/workload.md) costs on an agent and on an edge, and what a model switch
costs (fetch beyond the paced transfer, verify, load, warm-up, their energy); per
bench, the fixed overheads of a task's upload and of the edge's reply. Each figure
says how many samples it came from and whether it was measured or scaled from another
model.

The file is versioned (`version`); `Calibration.load` refuses a newer one and names
every bad key. `bench` records the facts of the bench it was measured on, so a twin
can say when it runs with numbers from another bench (`Calibration.mismatches`).
See docs/twin.md for how each figure is measured.

This module is the format only, so the twin can read it without the calibration job:
measuring, fitting and the fidelity report are coordinator/calibration/.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from testbed.config import TestbedConfig, ZooScale
from testbed.exit_codes import InputError
from testbed.schema import SchemaError, dump_dataclass, load_dataclass, meta
from testbed.zoo.catalog import ModelFamily, write_atomic

CALIBRATION_VERSION = 1
CALIBRATION_NAME = "calibration.json"
RECORDS = "records"
"""A calibration file's run records copied beside it (the run folder is not kept)."""


class CalibrationError(InputError):
    """A calibration file that cannot be read or does not follow the format (exit
    CONFIG_INVALID)."""


class FigureSource:
    """How a figure in `ModelCalibration.sources` was obtained (plain strings in JSON)."""

    MEASURED = "measured"
    SCALED = "scaled"  # no sample of this model: scaled by FLOPs from the measured ones
    CONFIGURED = "configured"  # taken from the configured power model


@dataclass(frozen=True)
class ModelCalibration:
    """What one model costs on this bench; a unit is one sample at the default steps."""

    model_id: str = field(metadata=meta("Model id (catalog)."))
    family: ModelFamily = field(metadata=meta("Model family."))
    size_bytes: int = field(metadata=meta("Model file size (catalog).", ge=0))
    flops_per_invocation: int = field(metadata=meta("FLOPs of one forward pass (catalog).", ge=1))
    default_steps: int = field(metadata=meta("Forward passes per sample by default.", ge=1))
    local_ghz_s_per_unit: float = field(
        metadata=meta("Agent: GHz·s per unit; T_loc = local_units × this / f_i (f_i in GHz).")
    )
    local_j_per_unit: float = field(metadata=meta("Agent: J per unit of the local share."))
    edge_s_per_unit: float = field(
        metadata=meta("Edge: s per unit at the calibration's edge clock `edge_ghz`.")
    )
    edge_j_per_unit: float = field(metadata=meta("Edge: J per unit of the edge share."))
    fetch_overhead_s: float = field(
        metadata=meta("Fetch time beyond the paced transfer S_m·8/r_cj (request, manifest, MQTT).")
    )
    verify_s: float = field(metadata=meta("sha256 verification of the fetched file."))
    load_s: float = field(metadata=meta("Runtime session creation."))
    warmup_s: float = field(metadata=meta("First inference after loading."))
    load_j: float = field(metadata=meta("Edge energy while loading."))
    warmup_j: float = field(metadata=meta("Edge energy while warming up."))
    samples: dict[str, int] = field(
        default_factory=dict, metadata=meta("Records or repeats behind each figure.")
    )
    sources: dict[str, str] = field(
        default_factory=dict, metadata=meta("measured | scaled | configured, per figure.")
    )

    @property
    def unit_flops(self) -> int:
        """FLOPs of one unit (docs/workload.md)."""
        return self.flops_per_invocation * self.default_steps

    @property
    def switch_s(self) -> float:
        """T_load,m of the twin: everything of a switch but the paced transfer."""
        return self.fetch_overhead_s + self.verify_s + self.load_s + self.warmup_s


@dataclass(frozen=True)
class ClassPower:
    """Power of a node class, where the meters give it."""

    busy_w: float | None = field(
        default=None, metadata=meta("Mean power while computing (compute J / compute s).")
    )
    idle_w: float | None = field(
        default=None, metadata=meta("Idle power (the estimated meter's configured idle_w).")
    )
    method: str = field(default="", metadata=meta("Energy method of the class's meter."))


@dataclass(frozen=True)
class HostContention:
    """How busy the host's cores were in the calibration runs, for a bench whose nodes
    are processes of one host (docs/twin.md, "Contention on a shared host").

    A slot's CPU demand is the cores its computations ask for at once: every task with a
    local share (1 / its board's emulation stretch: a stretched board sleeps the rest)
    and every edge with work. Its slowdown is max(1, (demand + background) / cores), and
    a measured per-unit figure is the run's units-weighted mean slowdown times the cost
    of a unit alone. Of a unit's energy only the part drawn over wall time (a meter's
    idle power) grows with the slowdown; the CPU time's part does not."""

    host_cores: int = field(metadata=meta("Cores of the host the nodes shared.", ge=1))
    background_load: float = field(
        metadata=meta("Runnable processes besides the bench: 1-min load average before it.", ge=0)
    )
    local_demand: float = field(
        metadata=meta("`local` calibration run: units-weighted mean CPU demand of its slots.")
    )
    edge_demand: float = field(
        metadata=meta("`offload` calibration run: units-weighted mean CPU demand of its slots.")
    )
    local_slowdown: float = field(
        metadata=meta("`local` run: units-weighted mean slowdown the local figures hold.", ge=1)
    )
    edge_slowdown: float = field(
        metadata=meta("`offload` run: units-weighted mean slowdown the edge figures hold.", ge=1)
    )
    local_wall_share: float = field(
        default=1.0,
        metadata=meta(
            "Share of the local compute energy that grows with wall time (the estimated "
            "meter's idle power × compute time; 1: the meter does not say).",
            ge=0,
            le=1,
        ),
    )
    edge_wall_share: float = field(
        default=1.0,
        metadata=meta("The same for the edges' compute energy.", ge=0, le=1),
    )
    fetch_cores: float = field(
        default=0.15,
        metadata=meta(
            "Cores an edge in a model switch loads the host with (processor sharing; "
            "docs/results/twin_fidelity/fetch_cpu.txt measured 0.06-0.21).",
            ge=0,
        ),
    )
    local_ps_slowdown: float | None = field(
        default=None,
        metadata=meta(
            "`local` run, processor sharing: Σ measured / Σ alone compute time of its local "
            "shares, each alone time from what overlapped it (null: not fitted)."
        ),
    )
    edge_ps_slowdown: float | None = field(
        default=None,
        metadata=meta("The same for the `offload` run's edge computations (null: not fitted)."),
    )

    def slowdown(self, demand: float) -> float:
        """How much longer a unit takes in a slot of this CPU demand than alone."""
        return max(1.0, (demand + self.background_load) / self.host_cores)


@dataclass(frozen=True)
class MixedSlots:
    """What slots in which the boards and the edges both compute cost beyond what the
    twin predicts for them (docs/twin.md, "Mixed slots"), fitted on the `random`
    calibration run: Σ measured / Σ twin over that run's computations in such slots,
    the twin replaying the run's tasks and draws under `shared_host`. The twin multiplies
    a mixed slot's local and edge compute time and energy by these factors."""

    shared_host: str = field(
        metadata=meta("The twin.shared_host the factors were fitted under (off, on, "
                      "processor_sharing); a twin under another one does not apply them.")
    )  # fmt: skip
    local_time: float = field(metadata=meta("Board compute time factor.", gt=0))
    local_energy: float = field(metadata=meta("Board compute energy factor.", gt=0))
    edge_time: float = field(metadata=meta("Edge compute time factor.", gt=0))
    edge_energy: float = field(metadata=meta("Edge compute energy factor.", gt=0))
    slots: int = field(default=0, metadata=meta("Mixed slots in the run.", ge=0))
    local_shares: int = field(default=0, metadata=meta("Board computations compared.", ge=0))
    edge_shares: int = field(default=0, metadata=meta("Edge computations compared.", ge=0))


@dataclass(frozen=True)
class BenchFacts:
    """The bench the calibration was measured on."""

    created_utc: str = field(metadata=meta("When, ISO 8601 UTC."))
    host: dict[str, str] = field(metadata=meta("Coordinator host facts (CPU, cores, OS)."))
    zoo_scale: ZooScale = field(metadata=meta("Zoo scale."))
    zoo_models: list[str] = field(metadata=meta("Catalog models, id@version."))
    broker: str = field(metadata=meta("MQTT broker the bench ran on."))
    config_digest: str = field(metadata=meta("sha256 of the bench-defining config sections."))
    git_commit: str = field(default="", metadata=meta("Commit of the testbed."))
    seed: int = field(default=0, metadata=meta("Master seed."))
    slots: int = field(default=0, metadata=meta("Slots per measured run."))
    agents: int = field(default=0, metadata=meta("Agents on the bench."))
    edges: int = field(default=0, metadata=meta("Edges on the bench."))
    emulation_links: bool = field(default=True, metadata=meta("Links paced."))
    emulation_compute: bool = field(default=True, metadata=meta("Compute stretched."))
    host_ghz: float = field(default=3.0, metadata=meta("emulation.host_ghz."))
    run_dir: str = field(default="", metadata=meta("Run folder of the measurement."))


@dataclass(frozen=True)
class Calibration:
    """Everything the twin takes from the live bench (docs/twin.md)."""

    version: int = field(metadata=meta("File format version.", ge=1))
    bench: BenchFacts = field(metadata=meta("The bench it was measured on."))
    edge_ghz: float = field(metadata=meta("Edge clock the edge figures were measured at.", gt=0))
    upload_overhead_s: float = field(
        metadata=meta("Per task: measured upload time beyond share·D / r_ij.")
    )
    reply_overhead_s: float = field(
        metadata=meta("Per task: end to end minus upload, edge queue, switch and compute.")
    )
    local_overhead_s: float = field(
        metadata=meta("Per task with a local share: end to end minus the local compute.")
    )
    models: list[ModelCalibration] = field(metadata=meta("Per model."))
    power: dict[str, ClassPower] = field(
        default_factory=dict, metadata=meta("Per node class (agent, edge).")
    )
    notes: list[str] = field(default_factory=list, metadata=meta("What the figures rest on."))
    contention: HostContention | None = field(
        default=None,
        metadata=meta("The host's cores and how busy the runs kept them (null: not recorded)."),
    )
    mixed: MixedSlots | None = field(
        default=None,
        metadata=meta("Mixed slots' cost beyond the twin's (null: no `random` calibration run)."),
    )

    def model(self, model_id: str) -> ModelCalibration:
        for m in self.models:
            if m.model_id == model_id:
                return m
        have = ", ".join(m.model_id for m in self.models)
        raise KeyError(f"the calibration has no model {model_id!r} (it has {have})")

    def has_model(self, model_id: str) -> bool:
        return any(m.model_id == model_id for m in self.models)

    def records(self, path: Path) -> Path:
        """Where the records of the run this file (at `path`) was fitted on are: the run
        folder it names, or, where that folder is gone, `records/` beside the file (a
        committed calibration)."""
        run = Path(self.bench.run_dir)
        beside = path.parent / RECORDS
        return beside if not run.is_dir() and beside.is_dir() else run

    def summary(self) -> str:
        """The figures as a table for people (overheads, per model, per node class)."""
        lines = [
            f"overheads: upload {self.upload_overhead_s * 1e3:.1f} ms, reply "
            f"{self.reply_overhead_s * 1e3:.1f} ms, local {self.local_overhead_s * 1e3:.1f} ms",
            "model          agent GHz·s/unit  J/unit   edge ms/unit  J/unit   fetch+ ms  load ms  "
            "warm-up ms",
        ]
        for m in self.models:
            ms = [v * 1e3 for v in (m.edge_s_per_unit, m.fetch_overhead_s, m.load_s, m.warmup_s)]
            lines.append(
                f"{m.model_id:<14} {m.local_ghz_s_per_unit:>16.5f}  {m.local_j_per_unit:>6.4f}   "
                f"{ms[0]:>12.3f}  {m.edge_j_per_unit:>6.4f}   "
                f"{ms[1]:>9.1f}  {ms[2]:>7.1f}  {ms[3]:>10.1f}"
            )
        for name, p in self.power.items():
            busy = f"{p.busy_w:.1f} W" if p.busy_w is not None else "–"
            idle = f"{p.idle_w:.1f} W" if p.idle_w is not None else "–"
            lines.append(f"power {name}: busy {busy}, idle {idle} ({p.method})")
        if (c := self.contention) is not None:
            lines.append(
                f"host: {c.host_cores} cores, background load {c.background_load:g}; CPU "
                f"demand {c.local_demand:.2f} (local run) / {c.edge_demand:.2f} (offload run), "
                f"slowdown {c.local_slowdown:.2f} / {c.edge_slowdown:.2f}"
                + (
                    f", processor sharing {c.local_ps_slowdown:.2f} / {c.edge_ps_slowdown:.2f}"
                    if c.local_ps_slowdown is not None and c.edge_ps_slowdown is not None
                    else ""
                )
            )
        if (x := self.mixed) is not None:
            lines.append(
                f"mixed slots ({x.slots}, twin.shared_host {x.shared_host}): board compute "
                f"time × {x.local_time:.2f}, energy × {x.local_energy:.2f}; edge compute time "
                f"× {x.edge_time:.2f}, energy × {x.edge_energy:.2f}"
            )
        return "\n".join(lines)

    def mismatches(self, cfg: TestbedConfig) -> list[str]:
        """How `cfg`'s bench differs from the calibrated one (empty: the same)."""
        out = []
        if cfg.zoo.scale is not self.bench.zoo_scale:
            out.append(
                f"zoo scale {cfg.zoo.scale.value} (calibrated: {self.bench.zoo_scale.value})"
            )
        if config_digest(cfg) != self.bench.config_digest:
            out.append("the bench sections of the config differ from the calibrated bench's")
        return out

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        return json.dumps(dump_dataclass(self), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "") -> Calibration:
        where = f"{source}: " if source else ""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"{where}not valid JSON: {exc}") from None
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > CALIBRATION_VERSION:
            raise CalibrationError(
                f"{where}calibration format {version} is newer than this testbed reads "
                f"({CALIBRATION_VERSION}); update the testbed or calibrate again"
            )
        try:
            return load_dataclass(cls, data)
        except SchemaError as exc:
            lines = "\n".join(f"  {p}: {m}" for p, m in exc.problems)
            raise CalibrationError(f"{where}invalid calibration file:\n{lines}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        write_atomic(target, self.to_json().encode("utf-8"))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalibrationError(
                f"no calibration file at {path}: run `testbed calibrate` (docs/twin.md)"
            ) from None
        except OSError as exc:
            raise CalibrationError(f"cannot read {path}: {exc.strerror}") from None
        return cls.from_json(text, str(path))


_BENCH_SECTIONS = ("zoo", "topology", "links", "emulation", "cloud", "edges", "agents", "tasks")


def config_digest(cfg: TestbedConfig) -> str:
    """sha256 of the config sections that define the bench (not run, twin, train)."""
    data = cfg.to_dict()
    data["zoo"].pop("dir", None)  # where the zoo lies does not change the bench
    data["emulation"]["links"] = cfg.emulation.links_paced(cfg.inventory.remote)  # as paced
    doc = {"seed": data["seed"], **{k: data[k] for k in _BENCH_SECTIONS}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
