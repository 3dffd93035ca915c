"""What the board checks in a request before it touches anything.

A request that fails a check is refused whole (`BadRequest`, answered as gRPC
`INVALID_ARGUMENT` by agent_node/servicer.py) before a task is drawn, queued or
popped and before any of the board's state changes: a malformed call costs the run
nothing, and the message says what was wrong and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import yaml

from testbed.config import TestbedConfig, config_from_dict
from testbed.observation import ObservationSpec
from testbed.policies import PolicyKind


class BadRequest(ValueError):
    """A malformed request: refused before anything changed (INVALID_ARGUMENT)."""


def parse_config(config_yaml: str) -> TestbedConfig:
    """The run's config from Configure's YAML: a mapping of sections (empty: defaults).
    Raises `BadRequest` for YAML that is not a mapping, `ConfigError` for a bad key."""
    try:
        raw = yaml.safe_load(config_yaml)
    except yaml.YAMLError as exc:
        raise BadRequest(f"config_yaml is not YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest(
            f"config_yaml: expected a mapping of config sections, got a {type(raw).__name__}"
        )
    return config_from_dict(raw, "Configure")


def check_endpoints(
    cfg: TestbedConfig, edges: Sequence[tuple[str, str, tuple[float, float]]]
) -> None:
    """Configure's edges, as (edge id, address, position in m): exactly the config's
    edges in its order (edge j of the observation is the config's edge j), each with an
    address and a finite position."""
    expected = [s.id for s in cfg.edge_specs()]
    given = [edge_id for edge_id, _, _ in edges]
    if given != expected:
        raise BadRequest(f"edges: expected the config's edges {expected} in order, got {given}")
    for edge_id, address, position_m in edges:
        if not address:
            raise BadRequest(f"edges: {edge_id} has no address")
        if not all(math.isfinite(v) for v in position_m):
            raise BadRequest(f"edges: {edge_id}'s position {position_m} m is not finite")


def policy_kind(name: str) -> PolicyKind:
    """LoadPolicy's policy name as a `PolicyKind`; `BadRequest` naming the known ones."""
    try:
        return PolicyKind(name)
    except ValueError:
        known = ", ".join(k.value for k in PolicyKind)
        raise BadRequest(f"name: unknown policy {name!r}; expected one of {known}") from None


def check_step(noise_std: float, observe_only: bool, has_action: bool, drain: bool) -> None:
    """Step's flags: a finite noise ≥ 0, and no two uses at once (phase one observes,
    phase two acts, a drain serves nothing)."""
    if not math.isfinite(noise_std) or noise_std < 0:
        raise BadRequest(f"noise_std: expected a finite number ≥ 0, got {noise_std}")
    if observe_only and has_action:
        raise BadRequest("observe_only and action exclude each other (observe, then act)")
    if drain and (observe_only or has_action):
        raise BadRequest("drain serves nothing: it takes neither observe_only nor an action")


def check_action(spec: ObservationSpec, raw: Any) -> np.ndarray:
    """Step's action vector as float32: `spec.action_dim` finite numbers."""
    values = np.asarray(raw, dtype=np.float32)
    if values.shape != (spec.action_dim,):
        raise BadRequest(
            f"action: expected {spec.action_dim} numbers (scores for none and "
            f"{spec.num_edges} edges, the ratio x, the download flag d), got {values.size}"
        )
    for i, value in enumerate(values.tolist()):
        if not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "infinite"
            raise BadRequest(f"action[{i}] is {what}: expected finite numbers")
    return values
