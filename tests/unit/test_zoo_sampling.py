"""The runtime's pure parts: noise schedule, DDIM sampler, payload windows, providers."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.config import RuntimeKind, ZooScale
from testbed.runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    TENSORRT_PROVIDER,
    RuntimeUnavailable,
    choose_providers,
)
from testbed.zoo.catalog import ModelEntry, ModelFamily, TensorDType, TensorSpec
from testbed.zoo.drivers import (
    FALLBACK_PAYLOAD,
    DiffusionSampler,
    Payload,
    RunState,
    noise_generator,
)
from testbed.zoo.schedule import alpha_bar, ddim_plan, time_input

T = 1000


def test_alpha_bar_falls_from_one_to_nearly_zero():
    abar = alpha_bar(T)
    assert abar.shape == (T,)
    assert np.all(np.diff(abar) < 0)
    assert 0.99 < abar[0] < 1 and 0 < abar[-1] < 1e-3


@pytest.mark.parametrize("steps", [1, 2, 20, 50, 1500])
def test_ddim_plan_walks_down_to_zero_and_ends_on_the_clean_sample(steps: int):
    plan = ddim_plan(T, steps)
    assert len(plan.timesteps) == steps
    assert plan.timesteps[0] == T - 1 and plan.timesteps[-1] == (0 if steps > 1 else T - 1)
    assert np.all(np.diff(plan.timesteps) <= 0)
    assert plan.keep[-1] == 0 and plan.x0_weight[-1] == pytest.approx(1)
    assert np.all(plan.keep >= 0) and np.all(plan.keep <= 1 + 1e-6)


def diffusion_entry() -> ModelEntry:
    return ModelEntry(
        id="diffusion-test",
        family=ModelFamily.DIFFUSION,
        version="1",
        file="d.onnx",
        size_bytes=1,
        sha256="0" * 64,
        inputs=[
            TensorSpec("x", TensorDType.FLOAT32, ["batch", 2, 8]),
            TensorSpec("t", TensorDType.FLOAT32, ["batch"]),
            TensorSpec("cond", TensorDType.FLOAT32, ["batch", 3]),
        ],
        outputs=[TensorSpec("eps", TensorDType.FLOAT32, ["batch", 2, 8])],
        default_steps=20,
        flops_per_invocation=1,
        trained=True,
        scale=ZooScale.TINY,
        train_timesteps=T,
    )


@pytest.mark.parametrize("steps", [1, 5, 20, 100])
def test_ddim_with_an_exact_denoiser_lands_on_its_target(steps: int):
    """A denoiser that knows the clean sample x0 (here: the context, tiled) returns the
    exact noise; DDIM must then end on x0 whatever the step count."""
    abar = alpha_bar(T)
    calls = []

    def exact(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x, t, cond = feeds["x"], feeds["t"], feeds["cond"]
        a = abar[np.rint(t.astype(np.float64) * T).astype(int)][:, None, None]
        target = np.resize(cond, x.shape) * 0.9
        calls.append(len(x))
        return [((x - np.sqrt(a) * target) / np.sqrt(1 - a)).astype(np.float32)]

    data = bytes(range(0, 250, 7))
    sampler = DiffusionSampler(diffusion_entry(), exact)
    hashed = Capture()
    payload = Payload(data, units=4, per_sample=16, max_batch=4)
    run = RunState(payload, hashed, noise_generator(payload.seed))
    assert sampler.run_batch(run, 0, 4, steps) == steps
    assert calls == [4] * steps
    cond = Payload(data, 4, 16, 4).window(0, 4, 3).reshape(4, 3)
    expected = np.resize(cond, (4, 2, 8)) * 0.9
    final = np.frombuffer(hashed.chunks[-1], dtype=np.float32).reshape(4, 2, 8)
    # float32 noise is amplified by 1/√ᾱ (≈ 160 at τ = T−1): a wrong update is off by ≫ 0.01
    np.testing.assert_allclose(final, expected, atol=3e-3)


class Capture:
    """A digest that keeps what it is fed (to see the sampler's final output)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def update(self, data: object, /) -> None:
        self.chunks.append(bytes(memoryview(data)))  # type: ignore[arg-type]


def test_payload_windows_are_cyclic_and_scaled():
    payload = Payload(bytes([0, 255, 51]), units=4, per_sample=2, max_batch=4)
    np.testing.assert_allclose(
        payload.window(0, 4, 2), np.array([0, 255, 51, 0, 255, 51, 0, 255]) * 2 / 255 - 1
    )
    np.testing.assert_allclose(payload.window(1, 1, 2), np.array([51, 0]) * 2 / 255 - 1)
    assert payload.window(0, 4, 2).min() >= -1 and payload.window(0, 4, 2).max() <= 1


def test_payload_reads_only_what_the_run_needs():
    data = bytes(range(256)) * 40
    payload = Payload(data, units=3, per_sample=4, max_batch=2)
    assert payload.values.size == 12
    assert payload.seed == Payload(data[:12] + b"x" * 100, 3, 4, 2).seed
    assert payload.seed != Payload(b"\x01" + data[1:], 3, 4, 2).seed


def test_an_empty_payload_falls_back_deterministically():
    a, b = Payload(b"", 2, 8, 2), Payload(b"", 2, 8, 2)
    np.testing.assert_array_equal(a.window(0, 2, 8), b.window(0, 2, 8))
    np.testing.assert_array_equal(a.raw, np.frombuffer(FALLBACK_PAYLOAD[:16], np.uint8))


def test_noise_is_reseeded_per_run():
    a = noise_generator(42).standard_normal(5)
    noise_generator(7).standard_normal(100)
    np.testing.assert_array_equal(noise_generator(42).standard_normal(5), a)
    assert not np.array_equal(noise_generator(43).standard_normal(5), a)


def test_time_input_is_the_fraction_of_the_schedule():
    assert time_input(500, 1000).dtype == np.float32
    assert float(time_input(500, 1000)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kind", "available", "expected"),
    [
        (RuntimeKind.AUTO, [CPU_PROVIDER], [CPU_PROVIDER]),
        (RuntimeKind.AUTO, [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),
        (
            RuntimeKind.AUTO,
            [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER],
            [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER],
        ),
        (RuntimeKind.CPU, [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER]),
        (
            RuntimeKind.CUDA,
            [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER],
            [CUDA_PROVIDER, CPU_PROVIDER],
        ),
        (
            RuntimeKind.TENSORRT,
            [TENSORRT_PROVIDER, CPU_PROVIDER],
            [TENSORRT_PROVIDER, CPU_PROVIDER],
        ),
    ],
)
def test_provider_choice(kind: RuntimeKind, available: list[str], expected: list[str]):
    assert choose_providers(kind, available) == expected


@pytest.mark.parametrize("kind", [RuntimeKind.CUDA, RuntimeKind.TENSORRT])
def test_asking_for_a_missing_gpu_provider_is_an_error(kind: RuntimeKind):
    with pytest.raises(RuntimeUnavailable, match="cpu"):
        choose_providers(kind, ["AzureExecutionProvider", CPU_PROVIDER])
