"""The twin's static parameters: the bench of a config, priced by a calibration file
(measured on the live bench) or by the paper's analytical model (docs/twin.md).

Everything here is resolved once into numpy arrays indexed by task type (K), agent
(N), edge (M) and model (U: the task types' models first, in `ObservationSpec.models`
order, then any model only an edge's `preload` names), so the twin's step is array
arithmetic only.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.calibration_file import Calibration, MixedSlots
from coordinator.envs.twin_contention import HostSharing, host_sharing
from testbed import costs
from testbed.config import EmulationConfig, TestbedConfig
from testbed.config.runs import SharedHost
from testbed.emulation import stretch_factor
from testbed.exit_codes import ExitCode, InputError
from testbed.links import distance_m, shannon_rate_mbps
from testbed.observation import ObservationSpec
from testbed.zoo.catalog import Catalog, CatalogError, ModelFamily, UnknownModel

DEFAULT_LOAD_S_PER_MB = 1.4e-3
"""T_load,m of the paper model without a calibration: 1.4 ms per MB of model, the order
of ONNX Runtime session + warm-up (docs/cost-model.md; measured figures in
docs/performance.md, benchmark 2 `cold_admission`)."""

Array = np.ndarray[Any, Any]


class TwinSetupError(InputError):
    """The twin cannot be built from this config (a model it cannot price or size): a
    command that meets it exits ZOO_MISSING with the message, which says what to do."""

    exit_code = ExitCode.ZOO_MISSING


class CostModel(enum.StrEnum):
    CALIBRATED = "calibrated"
    """Per-unit compute, switch and overhead figures measured by `testbed calibrate`."""
    PAPER = "paper"
    """docs/papers.md §A: D·C/f compute, κf²·cycles energy, T_load = DEFAULT_LOAD_S_PER_MB·S_m."""


@dataclass(frozen=True)
class ModelFacts:
    """What the twin needs of a model besides its cost: size and work per unit."""

    model_id: str
    family: ModelFamily
    size_bytes: int
    flops_per_invocation: int
    default_steps: int

    @property
    def unit_flops(self) -> int:
        return self.flops_per_invocation * self.default_steps


@dataclass(frozen=True, eq=False)
class TwinParams:
    """A bench, resolved into arrays. Times in s, energies in J, sizes in bytes."""

    cfg: TestbedConfig
    spec: ObservationSpec
    cost_model: CostModel
    calibration: Calibration | None
    source: str
    """One line: where the prices come from (a calibration file, or the paper model)."""
    notes: tuple[str, ...]
    agent_ids: tuple[str, ...]
    models: tuple[str, ...]
    """U: the types' models (spec.models order), then preload-only models."""
    facts: tuple[ModelFacts, ...]
    # task types (K,)
    type_model: Array
    type_size_lo_mbit: Array
    type_size_hi_mbit: Array
    type_density: Array
    type_deadline_s: Array
    type_weight: Array
    type_step_factor: Array
    """Forward passes per sample relative to the default steps (diffusion `steps`)."""
    type_unit_flops: Array
    # agents (N,)
    agent_position_m: Array
    agent_ghz: Array
    agent_kappa: Array
    agent_transmit_w: Array
    rate_mbps: Array
    """(N, M) r_ij as the boards compute it (observation)."""
    pace_rate_mbps: Array
    """(N, M) the rate uploads are paced to: r_ij, or inf with link emulation off."""
    distance_m: Array
    # edges (M,)
    edge_position_m: Array
    edge_ghz: Array
    edge_kappa: Array
    edge_capacity_bytes: Array
    edge_servers: Array
    preload: tuple[tuple[int, ...], ...]
    # models (U,)
    model_size_bytes: Array
    # prices
    local_ghz_s_per_unit: Array  # (U,)
    local_j_per_unit: Array  # (U,)
    local_overhead_s: float
    edge_s_per_unit: Array  # (M, U) at each edge's clock
    edge_j_per_unit: Array  # (U,)
    switch_s: Array  # (M, U) fetch (paced) + verify + load + warm-up
    switch_j: Array  # (M, U) cloud_tx + load + warm-up
    too_large_s: Array  # (U,) until the manifest refuses a model larger than the cache
    upload_overhead_s: float
    reply_overhead_s: float
    sharing: HostSharing | None = None
    """Contention for the calibrated host's cores (twin_contention.py); None: one price
    per unit whatever the slot's mix (`twin.shared_host` off, or not recorded)."""
    mixed: MixedSlots | None = None
    """Factors on a mixed slot's compute time and energy (boards and edges both compute),
    fitted under this twin's pricing (`pricing_mode`); None: not fitted or not applied."""

    @property
    def pricing_mode(self) -> str:
        """How compute is priced per slot (`pricing_mode`)."""
        return pricing_mode(self.sharing)

    def with_seed(self, seed: int) -> TwinParams:
        """The same bench under another master seed (agents' positions and clocks are
        drawn from it, as the boards draw them), priced the same way."""
        if seed == self.cfg.seed:
            return self
        cfg = dataclasses.replace(self.cfg, seed=seed)
        return TwinParams.from_config(cfg, self.calibration, use_config_calibration=False)

    @property
    def num_agents(self) -> int:
        return len(self.agent_ids)

    @property
    def num_edges(self) -> int:
        return self.spec.num_edges

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def max_servers(self) -> int:
        return int(self.edge_servers.max()) if self.num_edges else 1

    @classmethod
    def from_config(
        cls,
        cfg: TestbedConfig,
        calibration: Calibration | str | Path | None = None,
        *,
        catalog: Catalog | None = None,
        use_config_calibration: bool = True,
    ) -> TwinParams:
        """Resolve `cfg` (and `twin.calibration`, unless `calibration` is given or
        `use_config_calibration` is False) into arrays.

        Model sizes and work per unit come from the calibration file, else from the
        zoo catalog (`catalog`, or `zoo.dir`/`zoo.scale`). Raises `TwinSetupError`.
        """
        if calibration is None and use_config_calibration and cfg.twin.calibration:
            calibration = cfg.twin.calibration
        if isinstance(calibration, str | Path):
            calibration = Calibration.load(calibration)
        return _build(cfg, calibration, catalog)


def _facts(
    cfg: TestbedConfig, needed: list[str], calibration: Calibration | None, catalog: Catalog | None
) -> list[ModelFacts]:
    out: dict[str, ModelFacts] = {}
    if calibration is not None:
        for m in calibration.models:
            out[m.model_id] = ModelFacts(
                m.model_id, m.family, m.size_bytes, m.flops_per_invocation, m.default_steps
            )
    missing = [m for m in needed if m not in out]
    if missing and catalog is None:
        zoo_dir = cfg.zoo_path()
        try:
            catalog = Catalog.load(zoo_dir)
        except (CatalogError, FileNotFoundError) as exc:
            raise TwinSetupError(
                f"the twin needs the size and work of {', '.join(missing)}: give it a "
                f"calibration file (`testbed calibrate`) or build the zoo ({exc})"
            ) from None
    for model_id in missing:
        assert catalog is not None
        try:
            e = catalog.get(model_id)
        except UnknownModel as exc:
            raise TwinSetupError(str(exc)) from None
        out[model_id] = ModelFacts(
            e.id, e.family, e.size_bytes, e.flops_per_invocation, e.default_steps
        )
    return [out[m] for m in needed]


def _f64(values: Any) -> Array:
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class _Geometry:
    """Where the nodes are and the rates between them."""

    agent_position_m: Array
    edge_position_m: Array
    distance_m: Array
    rate_mbps: Array
    pace_rate_mbps: Array
    cloud_pace_mbps: Array
    """(M,) the rate models are fetched at: r_cj, or inf with link emulation off."""


def _geometry(cfg: TestbedConfig) -> _Geometry:
    agents, edges, emu = cfg.agent_specs(), cfg.edge_specs(), cfg.emulation
    agent_pos = _f64([a.position_m for a in agents]).reshape(len(agents), 2)
    edge_pos = _f64([e.position_m for e in edges]).reshape(len(edges), 2)
    dist = distance_m(agent_pos[:, None, :], edge_pos[None, :, :])
    dist = _f64(dist).reshape(len(agents), len(edges))
    # the rate every board computes (agent_node/edges.py): the group's transmit power
    rate = _f64(shannon_rate_mbps(cfg.agents.transmit_power_w, dist, cfg.links)).reshape(dist.shape)
    cloud_rate = _f64([e.cloud_link_mbps for e in edges])
    paced = emu.links_paced(cfg.inventory.remote)
    return _Geometry(
        agent_position_m=agent_pos, edge_position_m=edge_pos, distance_m=dist, rate_mbps=rate,
        pace_rate_mbps=rate if paced else np.full_like(rate, np.inf),
        cloud_pace_mbps=cloud_rate if paced else np.full_like(cloud_rate, np.inf),
    )  # fmt: skip


@dataclass(frozen=True)
class _Prices:
    """TwinParams' prices (see there)."""

    local_ghz_s_per_unit: Array
    local_j_per_unit: Array
    local_overhead_s: float
    edge_s_per_unit: Array
    edge_j_per_unit: Array
    switch_s: Array
    switch_j: Array
    too_large_s: Array
    upload_overhead_s: float
    reply_overhead_s: float


def _paper_prices(cfg: TestbedConfig, size_bytes: Array, cloud_pace: Array) -> _Prices:
    """The paper model's switch prices; the compute is priced per task (D·C/f, κf²)."""
    edges = cfg.edge_specs()
    num_m, num_u = len(edges), len(size_bytes)
    size_mbit = costs.bytes_to_mbit(size_bytes)
    load_s = DEFAULT_LOAD_S_PER_MB * size_bytes / 1e6
    load_power = _f64([e.energy.power.idle_w + e.energy.power.active_w_per_core for e in edges])
    switch_s = costs.switch_latency_s(False, size_mbit[None, :], cloud_pace[:, None], load_s)
    switch_j = costs.switch_energy_j(
        False, size_mbit[None, :], cloud_pace[:, None], load_s,
        cfg.cloud.transmit_power_w, load_power[:, None],
    )  # fmt: skip
    zeros_u = np.zeros(num_u)
    return _Prices(
        local_ghz_s_per_unit=zeros_u, local_j_per_unit=zeros_u, local_overhead_s=0.0,
        edge_s_per_unit=np.zeros((num_m, num_u)), edge_j_per_unit=zeros_u,
        switch_s=_f64(switch_s).reshape(num_m, num_u),
        switch_j=_f64(switch_j).reshape(num_m, num_u),
        too_large_s=zeros_u, upload_overhead_s=0.0, reply_overhead_s=0.0,
    )  # fmt: skip


def _calibrated_prices(
    cfg: TestbedConfig,
    calibration: Calibration,
    models: tuple[str, ...],
    size_bytes: Array,
    cloud_pace: Array,
) -> _Prices:
    """The calibration's per-unit and switch figures (0 for a preload-only model it
    lacks: no task ever uses one)."""
    edges, emu = cfg.edge_specs(), cfg.emulation
    num_m, num_u = len(edges), len(models)
    size_mbit = costs.bytes_to_mbit(size_bytes)
    cal = [calibration.model(m) if calibration.has_model(m) else None for m in models]

    def per_model(name: str) -> Array:
        return _f64([getattr(c, name) if c is not None else 0.0 for c in cal])

    fetch_over = per_model("fetch_overhead_s")
    rest_s = per_model("verify_s") + per_model("load_s") + per_model("warmup_s")
    paced_s = costs.switch_latency_s(False, size_mbit[None, :], cloud_pace[:, None], 0.0)
    switch_s = paced_s + fetch_over[None, :] + rest_s[None, :]
    switch_j = (
        cfg.cloud.transmit_power_w * (paced_s + fetch_over[None, :])
        + (per_model("load_j") + per_model("warmup_j"))[None, :]
    )
    # an edge slower than the host is stretched to its clock (testbed/emulation.py);
    # the figures were measured at the calibration's edge clock
    rel = _f64([_stretch(e.cpu_ghz, emu) / _stretch(calibration.edge_ghz, emu) for e in edges])
    return _Prices(
        local_ghz_s_per_unit=per_model("local_ghz_s_per_unit"),
        local_j_per_unit=per_model("local_j_per_unit"),
        local_overhead_s=calibration.local_overhead_s,
        edge_s_per_unit=rel[:, None] * per_model("edge_s_per_unit")[None, :],
        edge_j_per_unit=per_model("edge_j_per_unit"),
        switch_s=_f64(switch_s).reshape(num_m, num_u),
        switch_j=_f64(switch_j).reshape(num_m, num_u),
        too_large_s=fetch_over,
        upload_overhead_s=calibration.upload_overhead_s,
        reply_overhead_s=calibration.reply_overhead_s,
    )


def _pricing(
    cfg: TestbedConfig,
    calibration: Calibration | None,
    spec: ObservationSpec,
    models: tuple[str, ...],
    size_bytes: Array,
    cloud_pace: Array,
) -> tuple[CostModel, str, list[str], _Prices]:
    """The cost model, the line saying where its prices come from, notes, the prices."""
    if calibration is None:
        source = (
            "paper model (docs/papers.md §A): compute D·C/f, energy κf²·cycles, "
            f"T_load = {DEFAULT_LOAD_S_PER_MB * 1e3:g} ms per MB of model; no calibration file"
        )
        return CostModel.PAPER, source, [], _paper_prices(cfg, size_bytes, cloud_pace)
    source = f"calibrated: {calibration.bench.run_dir or 'calibration file'}"
    source += f" ({calibration.bench.created_utc}, {calibration.bench.zoo_scale.value} zoo)"
    notes = [f"calibration differs from this bench: {m}" for m in calibration.mismatches(cfg)]
    unpriced = [m for m in spec.models if not calibration.has_model(m)]
    if unpriced:
        raise TwinSetupError(
            f"the calibration has no figures for {', '.join(unpriced)}: calibrate a bench "
            "whose task types use them"
        )
    prices = _calibrated_prices(cfg, calibration, models, size_bytes, cloud_pace)
    return CostModel.CALIBRATED, source, notes, prices


def _step_factors(cfg: TestbedConfig, facts: list[ModelFacts], index: dict[str, int]) -> Array:
    """(K,) forward passes per sample of each type relative to its model's default steps."""
    out = []
    for t in cfg.tasks.active_types:
        fm = facts[index[t.model]]
        steps = t.steps if (fm.family is ModelFamily.DIFFUSION and t.steps) else fm.default_steps
        out.append(steps / fm.default_steps if fm.family is ModelFamily.DIFFUSION else 1.0)
    return _f64(out)


def _build(
    cfg: TestbedConfig, calibration: Calibration | None, catalog: Catalog | None
) -> TwinParams:
    spec = ObservationSpec.from_config(cfg)
    types = cfg.tasks.active_types
    edges = cfg.edge_specs()
    agents = cfg.agent_specs()
    preload_only = [m for e in edges for m in e.preload if m not in spec.models]
    models = tuple(dict.fromkeys([*spec.models, *preload_only]))
    facts = _facts(cfg, list(models), calibration, catalog)
    index = {m: u for u, m in enumerate(models)}
    geo = _geometry(cfg)
    size_bytes = _f64([f.size_bytes for f in facts])
    cost_model, source, notes, prices = _pricing(
        cfg, calibration, spec, models, size_bytes, geo.cloud_pace_mbps
    )
    agent_ghz, edge_ghz = _f64([a.cpu_ghz for a in agents]), _f64([e.cpu_ghz for e in edges])
    sharing, sharing_notes = host_sharing(cfg, calibration, agent_ghz, edge_ghz)
    notes += sharing_notes
    mixed, mixed_notes = _mixed_slots(calibration, sharing, cost_model)
    notes += mixed_notes
    queue_cap = min((e.queue_capacity for e in edges), default=cfg.agents.count)
    if cfg.agents.count > queue_cap:
        notes.append(
            f"{cfg.agents.count} agents may exceed an edge queue of {queue_cap}: the twin "
            "does not model queue_full"
        )
    return TwinParams(
        cfg=cfg, spec=spec, cost_model=cost_model, calibration=calibration, source=source,
        notes=tuple(notes), agent_ids=tuple(a.id for a in agents), models=models,
        facts=tuple(facts),
        type_model=np.array([index[t.model] for t in types], dtype=np.int64),
        type_size_lo_mbit=_f64([t.size_mbit[0] for t in types]),
        type_size_hi_mbit=_f64([t.size_mbit[1] for t in types]),
        type_density=_f64([t.density_cycles_per_bit for t in types]),
        type_deadline_s=_f64([t.deadline_s for t in types]),
        type_weight=_f64([t.weight for t in types]),
        type_step_factor=_step_factors(cfg, facts, index),
        type_unit_flops=_f64([facts[index[t.model]].unit_flops for t in types]),
        agent_position_m=geo.agent_position_m,
        agent_ghz=agent_ghz,
        agent_kappa=_f64([a.kappa for a in agents]),
        agent_transmit_w=_f64([a.transmit_power_w for a in agents]),
        rate_mbps=geo.rate_mbps, pace_rate_mbps=geo.pace_rate_mbps, distance_m=geo.distance_m,
        edge_position_m=geo.edge_position_m,
        edge_ghz=edge_ghz,
        edge_kappa=_f64([e.kappa for e in edges]),
        edge_capacity_bytes=_f64([int(e.cache_capacity_mb * 1e6) for e in edges]),
        edge_servers=np.array([e.parallel_slots for e in edges], dtype=np.int64),
        preload=tuple(tuple(index[m] for m in e.preload) for e in edges),
        model_size_bytes=size_bytes,
        sharing=sharing,
        mixed=mixed,
        **vars(prices),
    )  # fmt: skip


def pricing_mode(sharing: HostSharing | None) -> str:
    """How a twin prices compute per slot: off (one price per unit), on (the slot's
    contention) or processor_sharing, as `twin.shared_host` resolved on its bench."""
    if sharing is None:
        return SharedHost.OFF.value
    return (SharedHost.PROCESSOR_SHARING if sharing.processor_sharing else SharedHost.ON).value


def _mixed_slots(
    calibration: Calibration | None, sharing: HostSharing | None, cost_model: CostModel
) -> tuple[MixedSlots | None, list[str]]:
    """The calibration's mixed-slot factors where they were fitted under the pricing
    this twin uses (else None, and a note saying how to fit them for it)."""
    if calibration is None or calibration.mixed is None or cost_model is not CostModel.CALIBRATED:
        return None, []
    mode = pricing_mode(sharing)
    if calibration.mixed.shared_host != mode:
        return None, [
            f"the calibration's mixed-slot factors were fitted under twin.shared_host "
            f"{calibration.mixed.shared_host}, this twin prices as {mode}: not applied "
            f"(`testbed calibrate --from FILE --refit --set twin.shared_host={mode}`)"
        ]
    return calibration.mixed, []


def _stretch(ghz: float, emu: EmulationConfig) -> float:
    return stretch_factor(ghz, emu)
