"""How a task's size D and density C become real model work (docs/workload.md).

The paper's task has size D (Mbit) and density C (cycles/bit): D·10^6·C cycles of
nominal work. On the testbed that work is a number of *units*, one unit being one
generated sample of the task's model:

    units = max(1, round(D·10^6·C · flops_per_cycle / (flops_per_invocation · default_steps)))

A share x of the task is round(x·units) units on the edge, the rest locally. A diffusion
sample costs `steps` forward passes (the task's steps, default `default_steps`), so a
task that asks for more steps costs proportionally more than its nominal work. Units
run in batches of at most `max_batch` samples per invocation.

Rounding is half up (2.5 → 3), not Python's half-to-even `round`.
"""

from __future__ import annotations

import math

from testbed.zoo.catalog import ModelEntry, ModelFamily


def round_half_up(value: float) -> int:
    """Nearest integer, halves rounded up (for the non-negative values used here)."""
    return math.floor(value + 0.5)


def nominal_flops(size_mbit: float, density_cycles_per_bit: float, flops_per_cycle: float) -> float:
    """Model FLOPs a task stands for: D (Mbit) · 10^6 · C (cycles/bit) · FLOPs per cycle."""
    if size_mbit < 0 or density_cycles_per_bit < 0 or flops_per_cycle <= 0:
        raise ValueError(
            "expected size_mbit ≥ 0, density_cycles_per_bit ≥ 0, flops_per_cycle > 0; got "
            f"{size_mbit}, {density_cycles_per_bit}, {flops_per_cycle}"
        )
    return size_mbit * 1e6 * density_cycles_per_bit * flops_per_cycle


def unit_flops(entry: ModelEntry) -> int:
    """FLOPs of one unit (one sample at the model's default steps)."""
    return entry.flops_per_invocation * entry.default_steps


def units_for(
    size_mbit: float, density_cycles_per_bit: float, entry: ModelEntry, flops_per_cycle: float
) -> int:
    """Units (samples) of a whole task of D = `size_mbit`, C = `density_cycles_per_bit`
    on model `entry`, with `flops_per_cycle` model FLOPs per cycle; at least 1."""
    work = nominal_flops(size_mbit, density_cycles_per_bit, flops_per_cycle)
    return max(1, round_half_up(work / unit_flops(entry)))


def split_units(units: int, share: float) -> tuple[int, int]:
    """(local units, edge units) of a task of `units` units offloading a share `share`
    ∈ [0, 1]: the edge gets round(share·units), the device the rest."""
    if units < 0:
        raise ValueError(f"expected units ≥ 0, got {units}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"expected a share in [0, 1], got {share}")
    edge = round_half_up(share * units)
    return units - edge, edge


def effective_steps(entry: ModelEntry, steps: int | None) -> int:
    """Forward passes per sample: `steps` (or the default) for diffusion, else 1."""
    if entry.family is not ModelFamily.DIFFUSION:
        return 1
    if steps is not None and steps < 1:
        raise ValueError(f"expected steps ≥ 1, got {steps}")
    return entry.default_steps if steps is None else steps


def forward_passes(entry: ModelEntry, units: int, steps: int | None) -> int:
    """Per-sample forward passes of `units` units: units · steps for diffusion, else units."""
    return units * effective_steps(entry, steps)


def invocations(entry: ModelEntry, units: int, steps: int | None, max_batch: int) -> int:
    """Model invocations (runtime calls) of `units` units: ⌈units / max_batch⌉ batches,
    each `steps` calls for diffusion and one call otherwise."""
    if max_batch < 1:
        raise ValueError(f"expected max_batch ≥ 1, got {max_batch}")
    return math.ceil(units / max_batch) * effective_steps(entry, steps)


def work_flops(entry: ModelEntry, units: int, steps: int | None) -> int:
    """FLOPs the model really performs for `units` units at `steps` steps."""
    return forward_passes(entry, units, steps) * entry.flops_per_invocation
