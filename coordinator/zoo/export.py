"""torch module → ONNX bytes, deterministically, with the zoo's signature and metadata.

Uses torch's TorchScript-based exporter (`dynamo=False`: the dynamo exporter needs
onnxscript, which the testbed does not install). Every input and output gets a
symbolic first dimension "batch"; the file carries the model's id, family, version and
scale as metadata, and passes `onnx.checker` (full check, with shape inference).
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from coordinator.zoo.models import (
    CONTEXT_SIZE,
    LATENT_SIZE,
    QUALITY_SIZE,
    SENSOR_CHANNELS,
    WINDOW_LENGTH,
)
from testbed.zoo.catalog import BATCH_DIM, ModelFamily
from testbed.zoo.drivers import (
    AUTOENCODER_INPUTS,
    AUTOENCODER_OUTPUTS,
    CGAN_INPUTS,
    CGAN_OUTPUTS,
    DIFFUSION_INPUTS,
    DIFFUSION_OUTPUTS,
)

OPSET = 17
"""ONNX opset of the zoo (LayerNormalization is a single op from 17 on)."""
EXAMPLE_BATCH = 2
"""Batch of the tracing inputs (not 1, so that no size-1 dimension gets specialised)."""


def example_inputs(family: ModelFamily, batch: int = EXAMPLE_BATCH) -> tuple[torch.Tensor, ...]:
    """Zero inputs of a family's model (the shapes the exporter traces)."""
    if family is ModelFamily.DIFFUSION:
        return (
            torch.zeros(batch, SENSOR_CHANNELS, WINDOW_LENGTH),
            torch.zeros(batch),
            torch.zeros(batch, CONTEXT_SIZE),
        )
    if family is ModelFamily.CGAN:
        return torch.zeros(batch, LATENT_SIZE), torch.zeros(batch, QUALITY_SIZE)
    return (torch.zeros(batch, SENSOR_CHANNELS, WINDOW_LENGTH),)


def io_names(family: ModelFamily) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Input and output names of a family's model (testbed.zoo.drivers)."""
    return {
        ModelFamily.DIFFUSION: (DIFFUSION_INPUTS, DIFFUSION_OUTPUTS),
        ModelFamily.CGAN: (CGAN_INPUTS, CGAN_OUTPUTS),
        ModelFamily.AUTOENCODER: (AUTOENCODER_INPUTS, AUTOENCODER_OUTPUTS),
    }[family]


def export_onnx(
    model: nn.Module, family: ModelFamily, metadata: dict[str, str], doc: str = ""
) -> bytes:
    """The serialised ONNX model of `model`, checked by `onnx.checker`.

    The same module and metadata give the same bytes: the exporter is deterministic,
    and nothing time- or path-dependent is written.
    """
    inputs, outputs = io_names(family)
    return export_module(model, example_inputs(family), inputs, outputs, metadata, doc)


def export_module(
    model: nn.Module,
    examples: tuple[torch.Tensor, ...],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    metadata: dict[str, str],
    doc: str = "",
) -> bytes:
    """Any zoo module as checked ONNX bytes (the quality zoo's too,
    coordinator/zoo/quality/export.py): traced on `examples`, every input and output
    with a symbolic batch dimension, `metadata` as the model's properties."""
    buffer = io.BytesIO()
    model.eval()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo (needs onnxscript)
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
    _set_output_shapes(proto, model, examples)
    proto.doc_string = doc
    proto.graph.name = metadata.get("id", proto.graph.name)
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _set_output_shapes(
    proto: onnx.ModelProto, model: nn.Module, examples: tuple[torch.Tensor, ...]
) -> None:
    """Give every output its static sample shape (the exporter leaves the dimensions
    behind a reshape symbolic), keeping the batch dimension symbolic."""
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
