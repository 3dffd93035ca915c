"""The quality zoo's torch modules → ONNX bytes (deterministic, checked).

The generators get the zoo denoiser's names (`x`, `t`, `cond` → `eps`,
testbed/zoo/drivers.py) so edges run them with the zoo's DDIM sampler; the evaluator
gets `image`, `cond` → `score`, `features` (testbed/quality/evaluator.py). Same
exporter settings as the rest of the zoo (coordinator/zoo/export.py).
"""

from __future__ import annotations

import torch
from torch import nn

from coordinator.zoo.export import EXAMPLE_BATCH, export_module
from testbed.quality.conditions import CONDITION_SIZE, IMAGE_SHAPE
from testbed.quality.evaluator import BUILTIN_INPUTS, BUILTIN_OUTPUTS
from testbed.zoo.drivers import DIFFUSION_INPUTS, DIFFUSION_OUTPUTS


def _examples(evaluator: bool) -> tuple[torch.Tensor, ...]:
    b = EXAMPLE_BATCH
    cond = torch.zeros(b, CONDITION_SIZE)
    if evaluator:
        return torch.zeros(b, *IMAGE_SHAPE), cond
    return torch.zeros(b, *IMAGE_SHAPE), torch.zeros(b), cond


def export_quality_model(
    model: nn.Module, evaluator: bool, metadata: dict[str, str], doc: str
) -> bytes:
    """The serialised, checked ONNX model of a generator or (`evaluator`) the evaluator."""
    inputs, outputs = (
        (BUILTIN_INPUTS, BUILTIN_OUTPUTS) if evaluator else (DIFFUSION_INPUTS, DIFFUSION_OUTPUTS)
    )
    return export_module(model, _examples(evaluator), inputs, outputs, metadata, doc)
