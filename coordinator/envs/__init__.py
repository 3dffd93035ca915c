"""Environments: the digital twin and the live bench behind one API (PettingZoo
ParallelEnv for other MARL libraries, and a vectorised interface for our trainers).

    env = make_env("twin", "testbed.yaml")          # or "live": the real bench
    obs, infos = env.reset(seed=0)
    obs, rewards, terms, truncs, infos = env.step({a: env.action_space(a).sample()
                                                   for a in env.agents})

    vec = make_vec_env("testbed.yaml", num_envs=256, seed=0)   # the trainers' twin

Both backends have the same agents, observation and action spaces (docs/twin.md).
Imports are lazy: `make_env("twin", …)` never loads the live bench's gRPC stack.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from testbed.config import TestbedConfig, load_config

if TYPE_CHECKING:
    from coordinator.envs.parallel import TestbedParallelEnv
    from coordinator.envs.vector import VecEnv

BACKENDS = ("twin", "live")

__all__ = ["BACKENDS", "make_env", "make_vec_env"]


def _config(config: str | os.PathLike[str] | TestbedConfig | None) -> TestbedConfig:
    if isinstance(config, TestbedConfig):
        return config
    return load_config(config)


def _twin(cfg: TestbedConfig, num_envs: int, options: dict[str, Any], **defaults: Any) -> Any:
    from coordinator.envs.twin import TwinEnv
    from coordinator.envs.twin_params import TwinParams

    calibration = options.pop("calibration", None)
    catalog = options.pop("catalog", None)
    params = TwinParams.from_config(cfg, calibration, catalog=catalog)
    kwargs = {**defaults, **options}
    return TwinEnv(params, num_envs, **kwargs)


def make_env(
    backend: str, config: str | os.PathLike[str] | TestbedConfig | None = None, **options: Any
) -> TestbedParallelEnv:
    """A PettingZoo ParallelEnv of the bench in `config` (a testbed YAML path or a
    loaded `TestbedConfig`; None: ./testbed.yaml).

    backend "twin" — options: `calibration` (path or Calibration; default
    `twin.calibration`, None there: the paper model), `catalog` (a zoo `Catalog` for the
    models' sizes and work; default: the one of `zoo.dir`/`zoo.scale`), `tasks` ("crn",
    default: the live bench's task sequence of the seed; or "sampled"), `episode_slots`,
    `model_aware`.
    backend "live" — the real bench, started on the first reset, stopped by `close`
    (one at a time); options: `episode_slots`, `restore_caches` (default True).
    `reset(seed)` takes the bench's master seed on both.
    """
    from coordinator.envs.parallel import TestbedParallelEnv

    cfg = _config(config)
    if backend == "twin":
        vec = _twin(cfg, 1, dict(options), tasks="crn", seed_moves_agents=True)
        return TestbedParallelEnv(vec, backend, vec.source)
    if backend == "live":
        from coordinator.envs.live_env import LiveVecEnv

        live = LiveVecEnv(cfg, **options)
        return TestbedParallelEnv(live, backend, "live bench: measured latency and energy")
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def make_vec_env(
    config: str | os.PathLike[str] | TestbedConfig | None,
    num_envs: int,
    seed: int | None = None,
    *,
    backend: str = "twin",
    **options: Any,
) -> VecEnv:
    """The trainers' vectorised env: the twin with `num_envs` environments and sampled
    tasks (options as `make_env`'s, plus `tasks="crn"`), or with `backend="live"` the
    real bench (num_envs must be 1)."""
    cfg = _config(config)
    if backend == "twin":
        env: VecEnv = _twin(cfg, num_envs, dict(options), tasks="sampled", seed=seed)
        return env
    if backend == "live":
        if num_envs != 1:
            raise ValueError(f"the live bench is one environment, got num_envs={num_envs}")
        from coordinator.envs.live_env import LiveVecEnv

        if seed is not None and seed != cfg.seed:
            import dataclasses

            cfg = dataclasses.replace(cfg, seed=seed)
        return LiveVecEnv(cfg, **options)
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
