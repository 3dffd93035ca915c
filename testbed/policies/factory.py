"""A board's policy by name."""

from __future__ import annotations

from testbed.observation import ObservationSpec
from testbed.policies.actor import OnnxActor
from testbed.policies.base import Policy, PolicyKind
from testbed.policies.heuristics import AllOffload, Greedy, LocalOnly, RandomPolicy

_HEURISTICS: dict[PolicyKind, type[RandomPolicy | Greedy | LocalOnly | AllOffload]] = {
    PolicyKind.RANDOM: RandomPolicy,
    PolicyKind.GREEDY: Greedy,
    PolicyKind.LOCAL: LocalOnly,
    PolicyKind.OFFLOAD: AllOffload,
}


def make_policy(
    kind: PolicyKind | str, spec: ObservationSpec, *, onnx_model: bytes = b"", threads: int = 1
) -> Policy:
    """A policy by name; `onnx` needs the actor's bytes (checked against `spec`)."""
    kind = PolicyKind(kind)
    if kind is PolicyKind.ONNX:
        return OnnxActor(onnx_model, spec, threads=threads)
    return _HEURISTICS[kind](spec)
