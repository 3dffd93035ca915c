"""The §B calibration file: what `testbed calibrate` measured on the live §B bench
(`run.system: coedge`) for the §B twin (docs/coedge.md, "Calibration and the twin's
gap"). The twin reads it through `coedge.calibration: PATH`
(coordinator/envs/coedge_twin.py `CoedgeParams.from_config`).

Per edge j: seconds per Gcycle of work on this bench (its effective capacity
f_j = 1 / that) and the fixed compute cost of one share (the edge's per-invocation
overhead). Per link b → j (station b's board to edge j): the effective rate and the
fixed cost of one transfer (gRPC streaming setup; at the home edge the whole upload
is this, it is never paced); and what a share costs beyond transfer, queue and
compute (the reply, the board's dispatch). A share's fixed cost, as the twin charges
it, is the sum of the three (`share_overhead_s`), plus `per_sibling_s` for each other
share of the same task: a task split n ways has its n shares streamed, answered and
judged by one board at once, and on a shared host each waits for its siblings'
client-side work; and a task split n ways ends with the latest of n noisy shares,
later than their common modelled finish by `split_excess_s[n − 1]`. Each figure
says how many shares it came from and how it was obtained (`FitMethod`).

This module is the format only, so the twin can read it without the calibration job
(coordinator/calibration/coedge.py measures and fits).
"""

from __future__ import annotations

import enum
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed.exit_codes import InputError
from testbed.zoo.catalog import write_atomic

COEDGE_CALIBRATION_VERSION = 1
COEDGE_CALIBRATION_SYSTEM = "coedge"


class CoedgeCalibrationError(InputError):
    """A §B calibration file that cannot be read or does not follow the format (exit
    CONFIG_INVALID)."""


class FitMethod(enum.StrEnum):
    """How a slope and intercept were obtained."""

    LEAST_SQUARES = "least-squares"
    """Ordinary least squares with an intercept over the shares' measurements."""
    THROUGH_ORIGIN = "through-origin"
    """Too few shares or too little spread for an intercept (or a negative one): the
    slope through the origin, no fixed part."""
    CONFIGURED_RATE = "configured-rate"
    """A link whose transfer times show no usable slope (its share sizes vary too
    little against the noise): the configured rate r_bj, the fixed part the mean of
    what is left."""
    NOT_MEASURED = "not-measured"
    """No share used it: the configured value, no fixed part."""


@dataclass(frozen=True)
class EdgeFit:
    """Edge j's compute: t_compute = compute_fixed_s + s_per_gcycle × Gcycles."""

    edge_id: str
    s_per_gcycle: float
    compute_fixed_s: float
    method: FitMethod
    shares: int
    r2: float

    @property
    def effective_ghz(self) -> float:
        """f_j on this bench: Gcycles per second of compute."""
        return 1.0 / self.s_per_gcycle


@dataclass(frozen=True)
class LinkFit:
    """Station b's board → edge j: t_tx = tx_fixed_s + Mbit / rate_mbps (inf at home),
    and `reply_s`: the mean of finish − (queue + compute + Mbit / rate + per_sibling_s
    × siblings) of its shares, less tx_fixed_s."""

    station: int
    edge: int
    rate_mbps: float
    tx_fixed_s: float
    reply_s: float
    method: FitMethod
    shares: int


@dataclass(frozen=True)
class CoedgeCalibration:
    edges: list[EdgeFit]
    links: list[LinkFit]
    """One per (station, edge), station-major."""
    per_sibling_s: float = 0.0
    """What each other share of the same task adds to a share's finish (s)."""
    split_excess_s: list[float] = field(default_factory=list)
    """[n − 1]: how much later than its shares' modelled finish a task split n ways
    ends on average — the largest of n noisy share finishes (s; 0 for one share)."""
    split_tasks: list[int] = field(default_factory=list)
    """[n − 1]: the tasks behind `split_excess_s` (0: not measured, 0 s)."""
    measured: dict[str, Any] = field(default_factory=dict)
    """What was measured: policies, slots, shares, the run folder, the host's load."""
    method: str = ""
    version: int = COEDGE_CALIBRATION_VERSION
    system: str = COEDGE_CALIBRATION_SYSTEM

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def link(self, station: int, edge: int) -> LinkFit:
        return self.links[station * self.num_edges + edge]

    def edge_ghz(self) -> list[float]:
        """f_j: each edge's effective capacity (Gcycles/s)."""
        return [e.effective_ghz for e in self.edges]

    def rate_matrix_mbps(self) -> list[list[float]]:
        """r_bj: the fitted (or configured) rates, inf on the diagonal."""
        b = self.num_edges
        return [[self.link(i, j).rate_mbps for j in range(b)] for i in range(b)]

    def share_overhead_s(self) -> list[list[float]]:
        """o_bj: the fixed cost of one share from station b at edge j (transfer setup,
        the edge's per-invocation compute, reply and dispatch), seconds."""
        b = self.num_edges
        return [
            [max(0.0, (ln := self.link(i, j)).tx_fixed_s + self.edges[j].compute_fixed_s
                 + ln.reply_s) for j in range(b)]
            for i in range(b)
        ]  # fmt: skip

    def split_excess(self) -> list[float]:
        """[n − 1] for n = 1 … B: the task's delay beyond its shares' modelled finish."""
        given = list(self.split_excess_s)
        return given + [0.0] * (self.num_edges - len(given))

    def summary(self) -> str:
        """The figures as a table for people."""
        excess = ", ".join(
            f"{n + 1}: {x * 1e3:.1f} ms ({k} tasks)"
            for n, (x, k) in enumerate(zip(self.split_excess_s, self.split_tasks, strict=True))
        )
        lines = [f"per other share of the same task: {self.per_sibling_s * 1e3:.2f} ms",
                 f"latest share beyond the model, by share count: {excess}"]  # fmt: skip
        lines += ["edge      f_j (GHz, effective)  fixed compute ms  R²     shares  method"]
        for e in self.edges:
            lines.append(
                f"{e.edge_id:<9} {e.effective_ghz:>20.2f}  {e.compute_fixed_s * 1e3:>16.2f}  "
                f"{e.r2:>5.2f}  {e.shares:>6}  {e.method}"
            )
        lines.append("station→edge  rate Mbit/s  tx fixed ms  reply ms  share fixed ms  shares")
        overhead = self.share_overhead_s()
        for ln in self.links:
            rate = "home" if math.isinf(ln.rate_mbps) else f"{ln.rate_mbps:.0f}"
            lines.append(
                f"{ln.station}→{ln.edge}          {rate:>11}  {ln.tx_fixed_s * 1e3:>11.2f}  "
                f"{ln.reply_s * 1e3:>8.2f}  {overhead[ln.station][ln.edge] * 1e3:>14.2f}  "
                f"{ln.shares:>6}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        def finite(x: Any) -> Any:  # JSON has no inf: the home link's rate is null
            return None if isinstance(x, float) and math.isinf(x) else x

        doc = asdict(self)
        for link in doc["links"]:
            link["rate_mbps"] = finite(link["rate_mbps"])
        doc["twin"] = {
            "edge_ghz": self.edge_ghz(),
            "share_overhead_s": self.share_overhead_s(),
            "per_sibling_s": self.per_sibling_s,
            "split_excess_s": self.split_excess(),
        }
        return json.dumps(doc, indent=2, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "calibration") -> CoedgeCalibration:
        try:
            doc = json.loads(text)
            if doc.get("system") != COEDGE_CALIBRATION_SYSTEM:
                raise CoedgeCalibrationError(
                    f"{where}: not a §B calibration (system {doc.get('system')!r}); "
                    "run `testbed calibrate` with run.system: coedge"
                )
            if int(doc["version"]) > COEDGE_CALIBRATION_VERSION:
                raise CoedgeCalibrationError(
                    f"{where}: version {doc['version']} is newer "
                    f"than this testbed's {COEDGE_CALIBRATION_VERSION}"
                )
            edges = [EdgeFit(**{**e, "method": FitMethod(e["method"])}) for e in doc["edges"]]
            links = [
                LinkFit(**{**ln, "method": FitMethod(ln["method"]),
                           "rate_mbps": math.inf if ln["rate_mbps"] is None else ln["rate_mbps"]})
                for ln in doc["links"]
            ]  # fmt: skip
        except CoedgeCalibrationError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CoedgeCalibrationError(f"{where}: not a §B calibration file: {exc!r}") from None
        if len(links) != len(edges) ** 2 or any(e.s_per_gcycle <= 0 for e in edges):
            raise CoedgeCalibrationError(f"{where}: expected B edges with a positive cost "
                                         "per Gcycle and B×B links")  # fmt: skip
        return cls(edges, links, float(doc.get("per_sibling_s", 0.0)),
                   [float(x) for x in doc.get("split_excess_s", [])],
                   [int(x) for x in doc.get("split_tasks", [])], doc.get("measured", {}),
                   doc.get("method", ""), int(doc["version"]))  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        write_atomic(target, self.to_json().encode("utf-8"))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CoedgeCalibration:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CoedgeCalibrationError(
                f"cannot read the §B calibration {path}: {exc.strerror or exc}; run "
                "`testbed calibrate` with run.system: coedge (docs/coedge.md)"
            ) from None
        return cls.from_json(text, str(path))
