"""The quality zoo's torch modules → ONNX bytes (deterministic, checked).

The generators get the zoo denoiser's names (`x`, `t`, `cond` → `eps`,
testbed/zoo/drivers.py) so edges run them with the zoo's DDIM sampler; the evaluator
gets `image`, `cond` → `score`, `features` (testbed/quality/evaluator.py). Same
exporter settings as the rest of the zoo (coordinator/zoo/export.py).
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from coordinator.zoo.export import EXAMPLE_BATCH, OPSET
from testbed.quality.conditions import CONDITION_SIZE, IMAGE_SHAPE
from testbed.quality.evaluator import BUILTIN_INPUTS, BUILTIN_OUTPUTS
from testbed.zoo.catalog import BATCH_DIM
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
    examples = _examples(evaluator)
    buffer = io.BytesIO()
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
        torch.onnx.export(
            model,
            examples,
            buffer,  # type: ignore[arg-type]  # a file-like object is accepted
            dynamo=False,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={name: {0: BATCH_DIM} for name in (*inputs, *outputs)},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    with torch.no_grad():
        results = model(*examples)
    if isinstance(results, torch.Tensor):
        results = (results,)
    for value, result in zip(proto.graph.output, results, strict=True):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = BATCH_DIM
        for size in result.shape[1:]:
            dims.add().dim_value = int(size)
    proto.doc_string = doc
    proto.graph.name = metadata.get("id", proto.graph.name)
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
