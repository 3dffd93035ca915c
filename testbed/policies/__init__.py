"""Policies that run on the board (inference only): the ONNX actor runner and the
heuristics Random, Greedy, Local-only and All-offload."""

from testbed.policies.base import HEURISTICS, DecisionContext, EdgeView, Policy, PolicyKind
from testbed.policies.factory import make_policy

__all__ = ["HEURISTICS", "DecisionContext", "EdgeView", "Policy", "PolicyKind", "make_policy"]
