"""Policies that run on the board (inference only): the ONNX actor runner and the
heuristics Random, Greedy, Local-only and All-offload."""

from testbed.policies.base import DecisionContext, EdgeView, Policy, PolicyKind, make_policy

__all__ = ["DecisionContext", "EdgeView", "Policy", "PolicyKind", "make_policy"]
