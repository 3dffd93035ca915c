"""What a bench needs before it starts: its model zoo, found and checked against the
task types. `testbed up`, `testbed calibrate`, the live env and the evaluation all
check a bench this one way (errors are `TestbedExit`s with the fix: testbed/exit_codes.py).
"""

from __future__ import annotations

from pathlib import Path

from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound


def load_catalog(cfg: TestbedConfig) -> tuple[Path, Catalog]:
    """The bench's zoo folder (as configured) and its catalog; ZOO_MISSING with the
    command that builds it."""
    zoo_dir = cfg.zoo_path()
    try:
        return zoo_dir, Catalog.load(zoo_dir)
    except CatalogNotFound:
        raise TestbedExit(
            ExitCode.ZOO_MISSING,
            f"no model zoo at {zoo_dir}: run `testbed zoo build --scale {cfg.zoo.scale.value}`",
        ) from None
    except CatalogError as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None


def check_models(cfg: TestbedConfig, catalog: Catalog) -> None:
    """CONFIG_INVALID when a task type names a model the zoo does not have."""
    missing = sorted({t.model for t in cfg.tasks.active_types} - set(catalog.ids()))
    if missing:
        raise TestbedExit(
            ExitCode.CONFIG_INVALID,
            f"tasks.types name models the zoo does not have: {', '.join(missing)} "
            f"(it has {', '.join(catalog.ids())})",
        )


def zoo_dir_of(cfg: TestbedConfig) -> tuple[Path, Catalog]:
    """The bench's zoo folder (absolute) and catalog, checked as `testbed up` checks them:
    TestbedExit(ZOO_MISSING) with the fix, or CONFIG_INVALID for models it lacks."""
    zoo_dir, catalog = load_catalog(cfg)
    check_models(cfg, catalog)
    return zoo_dir.resolve(), catalog
