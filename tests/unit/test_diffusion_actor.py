"""The diffusion actor of docs/papers.md §B (coordinator/algorithms/diffusion_actor.py):
its schedule, that one step is an MLP policy, that the noise is an input, that the
gradient flows through the chain (its ONNX export: tests/unit/test_discrete_export.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coordinator.algorithms.diffusion_actor import (  # noqa: E402
    DiffusionActor,
    DiffusionSpec,
    MlpActor,
    vp_betas,
)

STATE_DIM, ACTIONS = 6, 7


def test_vp_schedule_grows_within_zero_one() -> None:
    betas = vp_betas(5, 0.1, 10.0)
    assert betas.shape == (5,)
    assert bool((betas > 0).all()) and bool((betas < 1).all())
    assert bool((betas[1:] > betas[:-1]).all())
    # α_1 = exp(−β_min/T − (β_max − β_min)/(2T²)) by hand
    assert float(betas[0]) == pytest.approx(1 - np.exp(-0.1 / 5 - 9.9 / 50), rel=1e-12)


def test_the_last_reverse_step_returns_the_predicted_clean_logits() -> None:
    actor = DiffusionActor(STATE_DIM, ACTIONS, DiffusionSpec(steps=5))
    assert float(actor.coef_x0[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(actor.coef_xt[0]) == pytest.approx(0.0, abs=1e-6)


def _as_one_step_diffusion(mlp_actor: MlpActor) -> DiffusionActor:
    """A one-step diffusion actor whose denoiser computes −MLP(s)/√(1/ᾱ_1 − 1) and
    ignores x_t and the step embedding (the equivalence the module doc states)."""
    spec = DiffusionSpec(steps=1, hidden=32, x0_clip=0.0)
    actor = DiffusionActor(STATE_DIM, ACTIONS, spec)
    src, dst = mlp_actor.net, actor.denoiser
    with torch.no_grad():
        first = torch.zeros_like(dst[0].weight)
        first[:, ACTIONS + spec.time_dim :] = src[0].weight
        dst[0].weight.copy_(first)
        dst[0].bias.copy_(src[0].bias)
        dst[2].load_state_dict(src[2].state_dict())
        scale = -1.0 / float(actor.sqrt_recip_abar_m1[0])
        dst[4].weight.copy_(src[4].weight * scale)
        dst[4].bias.copy_(src[4].bias * scale)
    return actor


def test_one_step_diffusion_is_an_mlp_policy() -> None:
    torch.manual_seed(0)
    mlp_actor = MlpActor(STATE_DIM, ACTIONS, hidden=32)
    diffusion = _as_one_step_diffusion(mlp_actor)
    states = torch.randn(64, STATE_DIM)
    zero_noise = torch.zeros(64, 1, ACTIONS)
    with torch.no_grad():
        ours = diffusion(states, zero_noise)
        theirs = mlp_actor(states)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    # With noise x_1 the logits shift by √(1/ᾱ_1)·x_1: the chain does read its noise.
    noise = torch.randn(64, 1, ACTIONS)
    with torch.no_grad():
        shifted = diffusion.logits(states, noise)
        expected = mlp_actor.logits(states) + diffusion.recip_sqrt_abar[0] * noise[:, 0]
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=1e-5)


def test_same_noise_same_policy_other_noise_another() -> None:
    torch.manual_seed(1)
    actor = DiffusionActor(STATE_DIM, ACTIONS, DiffusionSpec(steps=5, hidden=32))
    states = torch.randn(8, STATE_DIM)
    noise = actor.sample_noise(8, torch.Generator().manual_seed(3))
    with torch.no_grad():
        first, again = actor(states, noise), actor(states, noise.clone())
        other = actor(states, actor.sample_noise(8, torch.Generator().manual_seed(4)))
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other, atol=1e-4)
    torch.testing.assert_close(first.sum(-1), torch.ones(8))


def test_actor_gradient_reaches_every_step_through_the_chain() -> None:
    torch.manual_seed(2)
    actor = DiffusionActor(STATE_DIM, ACTIONS, DiffusionSpec(steps=5, hidden=32))
    states = torch.randn(16, STATE_DIM)
    q = torch.randn(16, ACTIONS)
    probs = actor(states, actor.sample_noise(16))
    loss = -(probs * q).sum(-1).mean()
    loss.backward()
    grad = actor.denoiser[0].weight.grad
    assert grad is not None
    # The x_t columns get a gradient only if later steps' inputs depend on earlier ones.
    assert float(grad[:, :ACTIONS].abs().sum()) > 0.0
    assert float(grad[:, ACTIONS + actor.spec.time_dim :].abs().sum()) > 0.0


def test_zero_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 step"):
        DiffusionActor(STATE_DIM, ACTIONS, DiffusionSpec(steps=0))
