"""Measured energy, every reading labelled with how it was obtained (docs/energy.md).

meter = open_meter(spec.energy)          # auto-detects, or the configured kind
with meter.measure("compute") as span:
    run_model()
parts.append(span.part)                  # EnergyPart("compute", J, EnergyMethod.…)
parts.append(modeled("tx", p_w, t_s))    # radio: p·t, labelled `modeled`
"""

from testbed.energy.base import EnergyMeter, MeterError, MeterUnavailable, Poller, Span, modeled
from testbed.energy.detect import AUTO_ORDER, detect, open_kind, open_meter

__all__ = [
    "AUTO_ORDER",
    "EnergyMeter",
    "MeterError",
    "MeterUnavailable",
    "Poller",
    "Span",
    "detect",
    "modeled",
    "open_kind",
    "open_meter",
]
