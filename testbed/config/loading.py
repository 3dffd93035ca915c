"""Reading a testbed file: YAML, then environment and `--set` overrides, then the schema.

`load_config(path)` returns a `TestbedConfig` or raises `ConfigError` whose message
names every bad key path and what was expected; the CLI turns that into exit code 2
with no traceback. Precedence: the file, then `TESTBED__SECTION__KEY=value`
environment variables, then `--set section.key=value` flags (values are YAML).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from testbed.config.errors import ConfigError
from testbed.config.overrides import SetItem, apply_overrides
from testbed.config.testbed_config import TestbedConfig
from testbed.schema import SchemaError, load_dataclass

DEFAULT_CONFIG_NAME = "testbed.yaml"


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping at the top of a YAML file; `ConfigError` naming the file if it is
    missing, unreadable, not YAML, empty (blanks and comments only) or not a mapping."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("<file>", f"no such file: {source}")], source) from None
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read: {exc.strerror}")], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("<yaml>", f"not valid YAML at {where}: {problem}")], source) from None
    if data is None:  # an empty file is a mistake, not "all defaults"
        empty = f"the file is empty: {source} holds no keys, only blanks or comments"
        raise ConfigError([("<file>", empty)], source)
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "expected a mapping at the top of the file")], source)
    return data


def config_from_dict(data: Mapping[str, Any], source: str = "") -> TestbedConfig:
    """Validate a plain mapping (parsed YAML) into a `TestbedConfig`, or `ConfigError`."""
    try:
        return load_dataclass(TestbedConfig, dict(data))
    except SchemaError as exc:
        raise ConfigError(exc.problems, source) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    sets: Iterable[SetItem] = (),
    env: Mapping[str, str] | None = None,
    inventory: str | os.PathLike[str] | None = None,
) -> TestbedConfig:
    """Load and validate a testbed file (default: ./testbed.yaml, else built-in defaults).

    Only the file given, or ./testbed.yaml if present, is read; an empty one is an
    error. A malformed `--set` item exits 3 (`TestbedExit`), a bad key or value 2.
    `inventory`: an inventory file (`testbed lab up` writes one; its top level holds the
    `inventory:` section's keys) replacing the file's inventory, before the `--set`s."""
    if path is None and Path(DEFAULT_CONFIG_NAME).exists():
        path = DEFAULT_CONFIG_NAME
    data = read_yaml(path) if path is not None else {}
    if inventory is not None:
        data["inventory"] = read_yaml(inventory)
    data = apply_overrides(data, env, sets)
    source = str(path) if path else "<defaults>"
    return config_from_dict(data, f"{source} + {inventory}" if inventory else source)
