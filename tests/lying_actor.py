"""An ONNX actor that lies about its output: for tests of what a board accepts."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from testbed.observation import ObservationSpec


def lying_actor(spec: ObservationSpec) -> bytes:
    """An ONNX actor that declares `spec.action_dim` outputs and gives 2: the slice's end
    is computed from the input, so ORT cannot see through it at load (and only warns)."""

    def const(name: str, dtype: int, value: float) -> onnx.TensorProto:
        return helper.make_tensor(name, dtype, [1], [value])

    nodes = [
        helper.make_node("Mul", ["obs", "zero"], ["zeros"]),
        helper.make_node("ReduceMax", ["zeros"], ["peak"], keepdims=1),
        helper.make_node("Add", ["peak", "two"], ["end_f"]),
        helper.make_node("Cast", ["end_f"], ["end_i"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["end_i", "one_d"], ["ends"]),
        helper.make_node("Slice", ["obs", "starts", "ends", "axes"], ["action"]),
    ]
    graph = helper.make_graph(
        nodes,
        "liar",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, spec.obs_dim])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, spec.action_dim])],
        initializer=[
            const("zero", TensorProto.FLOAT, 0.0), const("two", TensorProto.FLOAT, 2.0),
            const("one_d", TensorProto.INT64, 1), const("starts", TensorProto.INT64, 0),
            const("axes", TensorProto.INT64, 1),
        ],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
