"""Benches that would run "successfully" without doing what was asked.

The schema refuses what is wrong whatever the policy (testbed/config/testbed_config.py:
no edge and no agent; `offload` with no edge). What is left depends on the policy or on
the model zoo, and may be meant (a baseline, a test of failures), so it is a warning,
said loudly: `bench_warnings(cfg, catalog)` returns one line per problem, each naming
the keys to change; `testbed config check` prints them, `testbed up` prints them and
writes them to `summary.json` ("warnings").
"""

from __future__ import annotations

from collections.abc import Iterator

from testbed.config import EdgeSpec, TestbedConfig
from testbed.policies import PolicyKind
from testbed.security.credentials import plaintext_warning
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound, ModelEntry

MB = 1e6
_OFFLOADING = {PolicyKind.RANDOM.value, PolicyKind.GREEDY.value, PolicyKind.OFFLOAD.value}


def catalog_if_built(cfg: TestbedConfig) -> Catalog | None:
    """The zoo's catalog, or None when it is not built (yet) or unreadable: the
    commands that need it say so themselves (coordinator/bench_setup.py)."""
    try:
        return Catalog.load(cfg.zoo_path())
    except (CatalogNotFound, CatalogError, OSError):
        return None


def bench_warnings(cfg: TestbedConfig, catalog: Catalog | None) -> list[str]:
    """Every way this bench would run without doing what was asked; [] when none.
    `catalog` None: only what the config alone tells."""
    found = list(_policy_warnings(cfg))
    if cfg.tasks.arrival_prob == 0:
        found.append("tasks.arrival_prob is 0: no task will ever arrive; the run records nothing")
    if cfg.edges.count > 0 and _edges_get_tasks(cfg):
        found += _limit_warnings(cfg)
        if catalog is not None:
            found += _cache_warnings(cfg, catalog)
    if catalog is not None:
        found += _preload_warnings(cfg, catalog)
    found += [w for w in [plaintext_warning(cfg)] if w]  # docs/security.md
    return found


def _edges_get_tasks(cfg: TestbedConfig) -> bool:
    """Whether tasks can reach an edge: a stream (no agents) or a policy that offloads
    (an ONNX actor may)."""
    return cfg.agents.count == 0 or cfg.run.policy != PolicyKind.LOCAL.value


def _policy_warnings(cfg: TestbedConfig) -> Iterator[str]:
    if cfg.agents.count == 0 or cfg.run.policy not in _OFFLOADING:
        return
    if cfg.edges.count == 0:
        yield (
            f"edges.count is 0 but run.policy is {cfg.run.policy!r}: with no edge every "
            "task runs on its agent (local); set edges.count ≥ 1 or run.policy: local"
        )
    elif cfg.run.policy == PolicyKind.GREEDY.value:
        needed = {t.model for t in cfg.tasks.active_types}
        if not any(needed & set(spec.preload) for spec in cfg.edge_specs()):
            yield (
                "run.policy is 'greedy', which offloads only to an edge already holding the "
                "task's model and never fetches one, but no edge preloads a model of the "
                "task types (edges.preload, edges.nodes[].preload): every task runs local"
            )


def _limit_warnings(cfg: TestbedConfig) -> list[str]:
    """Task types some edge refuses outright (edge_node/validation.py): more data or
    more denoising steps than its `max_task_data_mb` / `max_steps`."""
    found = []
    specs = cfg.edge_specs()
    for ttype in cfg.tasks.active_types:
        data_mb = ttype.size_mbit[1] / 8  # Mbit → MB
        too_much = [s.id for s in specs if data_mb > s.max_task_data_mb]
        if too_much:
            found.append(
                f"tasks.types: {ttype.name!r} sends up to {data_mb:g} MB, more than "
                f"edges.max_task_data_mb of {', '.join(too_much)}: offloaded, it is refused "
                "(invalid_request)"
            )
        steps = ttype.steps or 0
        too_many = [s.id for s in specs if steps > s.max_steps]
        if too_many:
            found.append(
                f"tasks.types: {ttype.name!r} asks {steps} steps, more than edges.max_steps "
                f"of {', '.join(too_many)}: offloaded, it is refused (invalid_request)"
            )
    return found


def _needed_models(cfg: TestbedConfig, catalog: Catalog) -> dict[str, tuple[ModelEntry, str]]:
    """Model id → (its entry, the first active task type that needs it); models the zoo
    lacks are left out (coordinator/bench_setup.py refuses those)."""
    out: dict[str, tuple[ModelEntry, str]] = {}
    ids = set(catalog.ids())
    for ttype in cfg.tasks.active_types:
        if ttype.model in ids and ttype.model not in out:
            out[ttype.model] = (catalog.get(ttype.model), ttype.name)
    return out


def _cache_key(cfg: TestbedConfig, index: int) -> str:
    override = cfg.edges.nodes[index] if index < len(cfg.edges.nodes) else {}
    return (
        f"edges.nodes[{index}].cache_capacity_mb"
        if "cache_capacity_mb" in override
        else "edges.cache_capacity_mb"
    )


def _cache_warnings(cfg: TestbedConfig, catalog: Catalog) -> list[str]:
    needed = _needed_models(cfg, catalog)
    if not needed:
        return []
    specs = cfg.edge_specs()
    smallest, _ = min(needed.values(), key=lambda pair: pair[0].size_bytes)
    found = []
    for i, spec in enumerate(specs):
        if spec.cache_capacity_mb * MB < smallest.size_bytes:
            found.append(
                f"{_cache_key(cfg, i)}: {spec.id}'s cache ({spec.cache_capacity_mb:g} MB) is "
                f"smaller than every model the task types need (smallest: {smallest.id}, "
                f"{smallest.size_mb:.3g} MB): every task offloaded to it fails with "
                "model_too_large"
            )
    if len(found) == len(specs):
        return found
    largest_cache = max(spec.cache_capacity_mb for spec in specs)
    for entry, type_name in needed.values():
        if entry.size_bytes > largest_cache * MB:
            found.append(
                f"edges.cache_capacity_mb: model {entry.id} ({entry.size_mb:.3g} MB, task type "
                f"{type_name!r}) fits in no edge's cache (the largest holds {largest_cache:g} "
                "MB): its tasks can never be offloaded"
            )
    return found


def _preload_warnings(cfg: TestbedConfig, catalog: Catalog) -> list[str]:
    found = []
    ids = set(catalog.ids())
    for i, spec in enumerate(cfg.edge_specs()):
        key = _preload_key(cfg, i)
        unknown = [m for m in spec.preload if m not in ids]
        if unknown:
            names = ", ".join(repr(m) for m in unknown)
            found.append(f"{key}: {spec.id} preloads {names}, which the zoo does not have")
        total_mb = sum(catalog.get(m).size_bytes for m in spec.preload if m in ids) / MB
        if total_mb > spec.cache_capacity_mb:
            found.append(_overfull(spec, key, total_mb))
    return found


def _preload_key(cfg: TestbedConfig, index: int) -> str:
    override = cfg.edges.nodes[index] if index < len(cfg.edges.nodes) else {}
    return f"edges.nodes[{index}].preload" if "preload" in override else "edges.preload"


def _overfull(spec: EdgeSpec, key: str, total_mb: float) -> str:
    return (
        f"{key}: {spec.id} preloads {total_mb:.3g} MB of models into a "
        f"{spec.cache_capacity_mb:g} MB cache: it starts having evicted some of them"
    )
