"""The D, C → units rule (docs/workload.md) on hand-made catalog entries."""

from __future__ import annotations

import pytest

from testbed.config import ZooScale
from testbed.zoo.catalog import ModelEntry, ModelFamily, TensorDType, TensorSpec
from testbed.zoo.workload import (
    forward_passes,
    invocations,
    nominal_flops,
    split_units,
    unit_flops,
    units_for,
    work_flops,
)


def entry(family: ModelFamily, flops: int, steps: int = 1) -> ModelEntry:
    return ModelEntry(
        id=f"{family.value}-test",
        family=family,
        version="1",
        file="m.onnx",
        size_bytes=1,
        sha256="0" * 64,
        inputs=[TensorSpec("x", TensorDType.FLOAT32, ["batch", 4])],
        outputs=[TensorSpec("y", TensorDType.FLOAT32, ["batch", 4])],
        default_steps=steps,
        flops_per_invocation=flops,
        trained=True,
        scale=ZooScale.TINY,
    )


DIFFUSION = entry(ModelFamily.DIFFUSION, flops=1_000_000, steps=20)
CGAN = entry(ModelFamily.CGAN, flops=400_000)


def test_units_are_nominal_work_over_the_cost_of_one_sample():
    # D = 2 Mbit, C = 60 cycles/bit: 1.2e8 cycles = 1.2e8 FLOPs; a sample is 20 × 1e6
    assert nominal_flops(2.0, 60.0, 1.0) == pytest.approx(1.2e8)
    assert unit_flops(DIFFUSION) == 20_000_000
    assert units_for(2.0, 60.0, DIFFUSION, flops_per_cycle=1.0) == 6
    assert units_for(2.0, 60.0, CGAN, flops_per_cycle=1.0) == 300


def test_units_grow_with_size_density_and_flops_per_cycle():
    base = units_for(1.0, 40.0, CGAN, 1.0)
    assert units_for(2.0, 40.0, CGAN, 1.0) == 2 * base
    assert units_for(1.0, 80.0, CGAN, 1.0) == 2 * base
    assert units_for(1.0, 40.0, CGAN, 3.0) == 3 * base


def test_units_round_half_up_and_never_fall_below_one():
    # 2.5 samples of work: 3 units (Python's round would give 2)
    assert units_for(2.5 * 400_000 / 1e6, 1.0, CGAN, 1.0) == 3
    assert units_for(2.49 * 400_000 / 1e6, 1.0, CGAN, 1.0) == 2
    assert units_for(1e-6, 1.0, CGAN, 1.0) == 1
    assert units_for(0.0, 60.0, DIFFUSION, 1.0) == 1


def test_units_reject_nonsense():
    with pytest.raises(ValueError):
        units_for(-1.0, 60.0, CGAN, 1.0)
    with pytest.raises(ValueError):
        units_for(1.0, 60.0, CGAN, 0.0)


@pytest.mark.parametrize(
    ("units", "share", "local", "edge"),
    [
        (10, 0.0, 10, 0),
        (10, 1.0, 0, 10),
        (10, 0.34, 7, 3),
        (5, 0.5, 2, 3),
        (1, 0.49, 1, 0),
        (0, 0.7, 0, 0),
    ],
)
def test_split_gives_the_edge_its_rounded_share(units, share, local, edge):
    assert split_units(units, share) == (local, edge)


def test_split_never_loses_or_invents_units():
    for units in range(0, 40):
        for i in range(101):
            local, edge = split_units(units, i / 100)
            assert local + edge == units and local >= 0 and edge >= 0


@pytest.mark.parametrize("share", [-0.01, 1.01, float("nan")])
def test_split_rejects_a_share_outside_zero_one(share):
    with pytest.raises(ValueError):
        split_units(10, share)


def test_diffusion_samples_cost_their_steps():
    assert forward_passes(DIFFUSION, 6, None) == 120
    assert forward_passes(DIFFUSION, 6, 40) == 240
    assert work_flops(DIFFUSION, 6, 40) == 2 * work_flops(DIFFUSION, 6, None)
    with pytest.raises(ValueError):
        forward_passes(DIFFUSION, 6, 0)


def test_other_families_ignore_steps():
    assert forward_passes(CGAN, 7, None) == 7
    assert forward_passes(CGAN, 7, 50) == 7
    assert work_flops(CGAN, 7, 50) == 7 * 400_000


def test_invocations_are_batches_times_steps():
    assert invocations(DIFFUSION, 70, None, max_batch=32) == 3 * 20
    assert invocations(DIFFUSION, 64, 10, max_batch=32) == 2 * 10
    assert invocations(CGAN, 70, 10, max_batch=32) == 3
    assert invocations(CGAN, 0, None, max_batch=32) == 0
    with pytest.raises(ValueError):
        invocations(CGAN, 1, None, max_batch=0)
