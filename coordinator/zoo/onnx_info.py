"""What an ONNX file says about itself: its signature and its FLOPs (onnx only, no torch).

Used for the zoo's own exports (the graph count cross-checks the architecture count)
and for files operators register (`testbed zoo register`), whose architecture the
testbed does not know.
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto

from testbed.zoo.catalog import BATCH_DIM, TensorDType, TensorSpec

_DTYPES: dict[int, TensorDType] = {
    TensorProto.FLOAT: TensorDType.FLOAT32,
    TensorProto.FLOAT16: TensorDType.FLOAT16,
    TensorProto.INT64: TensorDType.INT64,
    TensorProto.INT32: TensorDType.INT32,
    TensorProto.UINT8: TensorDType.UINT8,
    TensorProto.BOOL: TensorDType.BOOL,
}


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in _DTYPES:
        name = TensorProto.DataType.Name(tensor.elem_type)
        raise ValueError(f"tensor {value.name!r} has an unsupported element type {name}")
    shape: list[int | str] = []
    for i, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(BATCH_DIM if i == 0 else (dim.dim_param or f"d{i}"))
    return TensorSpec(value.name, _DTYPES[tensor.elem_type], shape)


def signature(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs (initializers excluded) and outputs of a model, first dimension "batch"
    when it is symbolic."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in weights]
    return inputs, [_spec(v) for v in model.graph.output]


def _shapes(model: onnx.ModelProto, inputs: list[TensorSpec]) -> dict[str, list[int]]:
    """Static shapes of every tensor after shape inference for ONE sample: the batch is
    1, the other dimensions of an input come from `inputs` (else symbolic ones are 1)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    given = {spec.name: spec.shape for spec in inputs}
    for value in model.graph.input:
        sizes = given.get(value.name, [])
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if i == 0:
                dim.dim_value = 1  # one sample
            elif i < len(sizes) and isinstance(sizes[i], int):
                dim.dim_value = int(sizes[i])
            elif not dim.HasField("dim_value"):
                dim.dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {
        init.name: list(init.dims) for init in inferred.graph.initializer
    }
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def graph_flops(model: onnx.ModelProto, inputs: list[TensorSpec] | None = None) -> tuple[int, int]:
    """FLOPs of one forward pass for one sample, counted from the graph.

    `inputs` gives sizes for the graph's symbolic dimensions (see `signature`); the
    batch is 1. Counts 2 per multiply-add of MatMul, Gemm, Conv and ConvTranspose (the same rule
    as the zoo's architecture count); other ops are left out. Returns (flops, nodes
    skipped because shape inference left their shapes unknown).
    """
    shapes = _shapes(model, inputs or [])
    flops, skipped = 0, 0
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv", "ConvTranspose"):
            continue
        a, b = (shapes.get(name) for name in node.input[:2])
        out = shapes.get(node.output[0])
        if a is None or b is None or out is None:
            skipped += 1
            continue
        if node.op_type == "MatMul":
            flops += 2 * math.prod(out) * a[-1]
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            flops += 2 * math.prod(out) * (a[0] if trans_a else a[-1])
        elif node.op_type == "Conv":
            flops += 2 * math.prod(out) * math.prod(b[1:])
        else:  # ConvTranspose: every input element meets every kernel weight of its group
            flops += 2 * math.prod(a) * math.prod(b[1:])
    return flops, skipped
