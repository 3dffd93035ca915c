"""Choosing a meter: automatic detection, or the one the config names."""

from __future__ import annotations

import logging

from testbed.config import EnergyConfig, MeterKind
from testbed.energy.base import EnergyMeter, MeterUnavailable
from testbed.energy.estimated import EstimatedMeter
from testbed.energy.jetson import JetsonMeter
from testbed.energy.nvml import NvmlMeter
from testbed.energy.rapl import RaplMeter

log = logging.getLogger(__name__)

AUTO_ORDER = (MeterKind.NVML, MeterKind.JETSON, MeterKind.RAPL)
"""Measuring meters in the order `auto` tries them; `estimated` comes last."""


def open_kind(kind: MeterKind, cfg: EnergyConfig, *, gpu_index: int = 0) -> EnergyMeter:
    """Open one meter kind; raises MeterUnavailable with the reason it cannot read."""
    interval_s = cfg.poll_interval_ms / 1e3
    if kind is MeterKind.NVML:
        return NvmlMeter(gpu_index, interval_s)
    if kind is MeterKind.JETSON:
        return JetsonMeter(cfg.jetson_sysfs_root, interval_s)
    if kind is MeterKind.RAPL:
        return RaplMeter(cfg.rapl_sysfs_root)
    if kind is MeterKind.ESTIMATED:
        return EstimatedMeter(cfg.power)
    raise ValueError(f"not a single meter kind: {kind!r}")


def open_meter(cfg: EnergyConfig, *, gpu_index: int = 0) -> EnergyMeter:
    """The node's energy meter.

    `cfg.meter` names one kind: that meter, or MeterUnavailable saying why it cannot
    read here (the node exits with that message; it never reports zeros instead).
    `auto`: the first of nvml, jetson, rapl that reads, else `estimated`; the choice
    and why the others were passed over are logged at INFO.
    """
    if cfg.meter is not MeterKind.AUTO:
        meter = open_kind(cfg.meter, cfg, gpu_index=gpu_index)
        log.info("energy meter (configured %s): %s", cfg.meter.value, meter.describe())
        return meter
    skipped: list[str] = []
    chosen: EnergyMeter | None = None
    for kind in AUTO_ORDER:
        try:
            chosen = open_kind(kind, cfg, gpu_index=gpu_index)
            break
        except MeterUnavailable as exc:
            skipped.append(f"{kind.value}: {exc.reason}")
    if chosen is None:
        chosen = open_kind(MeterKind.ESTIMATED, cfg)
    log.info("energy meter (auto): %s; passed over: %s", chosen.describe(), "; ".join(skipped))
    return chosen


def detect(cfg: EnergyConfig, *, gpu_index: int = 0) -> list[tuple[MeterKind, str | None]]:
    """Every meter kind in `auto`'s order with why it cannot read here (None: it can).

    Each meter is opened and closed again, so this takes a fraction of a second.
    """
    report: list[tuple[MeterKind, str | None]] = []
    for kind in (*AUTO_ORDER, MeterKind.ESTIMATED):
        try:
            open_kind(kind, cfg, gpu_index=gpu_index).close()
        except MeterUnavailable as exc:
            report.append((kind, exc.reason))
        else:
            report.append((kind, None))
    return report
