"""Registering an operator's own ONNX file in a zoo catalog (`testbed zoo register`).

The file is checked with `onnx.checker`, copied into the zoo folder (unless it is in
there already), and listed with its checksum, its signature as the graph states it
(symbolic dimensions other than the batch can be fixed with `input_shapes`) and its
FLOPs — counted from the graph unless given. The runtime drives such a model with its
generic driver: every input filled from the task's payload (docs/zoo.md).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import onnx

from coordinator.zoo.onnx_info import graph_flops, signature
from testbed.config import ZooScale
from testbed.zoo.catalog import (
    BATCH_DIM,
    Catalog,
    CatalogNotFound,
    ModelEntry,
    ModelFamily,
    ModelOrigin,
    TensorSpec,
    file_sha256,
    model_name_problem,
)


class RegisterError(Exception):
    """A file that cannot be registered, with the reason."""


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def _fix_shapes(inputs: list[TensorSpec], input_shapes: dict[str, list[int]]) -> list[TensorSpec]:
    out = []
    for spec in inputs:
        if spec.name in input_shapes:
            spec = dataclasses.replace(spec, shape=[BATCH_DIM, *input_shapes[spec.name]])
        if not all(isinstance(d, int) for d in spec.shape[1:]):
            raise RegisterError(
                f"input {spec.name!r} has symbolic dimensions {spec.shape[1:]}: give them "
                f"sizes with --input-shape {spec.name}=D1,D2,..."
            )
        out.append(spec)
    unknown = set(input_shapes) - {s.name for s in inputs}
    if unknown:
        raise RegisterError(
            f"--input-shape names no input of the model: {', '.join(sorted(unknown))}"
        )
    return out


def register_model(
    zoo_dir: Path,
    source: Path,
    model_id: str,
    family: ModelFamily,
    *,
    version: str = "1",
    default_steps: int = 1,
    flops_per_invocation: int | None = None,
    description: str = "",
    input_shapes: dict[str, list[int]] | None = None,
    scale: ZooScale = ZooScale.DEMO,
) -> ModelEntry:
    """Add `source` to the catalog in `zoo_dir` (created for `scale` if absent).

    Replaces an entry of the same id and version. Raises `RegisterError` for a file
    that fails the checks or whose FLOPs cannot be counted and were not given.
    """
    zoo_dir, source = Path(zoo_dir), Path(source)
    for key, name in (("id", model_id), ("version", version)):  # they name the copied file
        if problem := model_name_problem(name):
            raise RegisterError(f"{key} {name!r}: {problem}")
    if not source.is_file():
        raise RegisterError(f"no such file: {source}")
    if family is not ModelFamily.DIFFUSION and default_steps != 1:
        raise RegisterError("only diffusion models take steps; use --steps 1 (the default)")
    try:
        onnx.checker.check_model(str(source))
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # onnx raises several types (parse, validation, inference)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegisterError(f"{source} is not a valid ONNX model: {first}") from None
    inputs, outputs = signature(model)
    inputs = _fix_shapes(inputs, input_shapes or {})
    if flops_per_invocation is None:
        flops_per_invocation, skipped = graph_flops(model, inputs)
        if flops_per_invocation <= 0 or skipped:
            raise RegisterError(
                f"cannot count the FLOPs of {source.name} from its graph "
                f"({skipped} matrix ops of unknown shape): give them with --flops"
            )
    try:
        catalog = Catalog.load(zoo_dir)
    except CatalogNotFound:
        catalog = Catalog(scale, [], root=zoo_dir)

    target = source.resolve()
    if not target.is_relative_to(zoo_dir.resolve()):
        if _has_external_data(model):
            raise RegisterError(
                f"{source.name} keeps its weights in external data files: copy the model and "
                f"its data files into {zoo_dir} first, then register it there"
            )
        target = zoo_dir.resolve() / f"{model_id}-v{version}.onnx"
        zoo_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    entry = ModelEntry(
        id=model_id,
        family=family,
        version=version,
        file=target.relative_to(zoo_dir.resolve()).as_posix(),
        size_bytes=target.stat().st_size,
        sha256=file_sha256(target),
        inputs=inputs,
        outputs=outputs,
        default_steps=default_steps,
        flops_per_invocation=flops_per_invocation,
        trained=True,
        scale=catalog.scale,
        origin=ModelOrigin.OPERATOR,
        description=description or f"operator model {source.name}",
        params=sum(math.prod(t.dims) for t in model.graph.initializer),
    )
    problems = entry.check()
    if problems:
        raise RegisterError("; ".join(f"{key}: {message}" for key, message in problems))
    catalog.with_entry(entry).save(zoo_dir)
    return entry
