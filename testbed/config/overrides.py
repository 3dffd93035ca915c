"""Overrides of a parsed testbed file: `TESTBED__SECTION__KEY=value` environment
variables and `--set section.key=value` items, values parsed as YAML.

One parser for every `--set`: `parse_set` splits an item, `set_path` writes a value at a
dotted key path, `apply_sets` does both for a list of items. A malformed item (no `=`,
an empty key, a key path through something that is not a mapping) is a command-line
mistake: `TestbedExit(ExitCode.USAGE)` (exit 3). A well-formed item with an unknown key
or a bad value is left for the schema, which names the key (`ConfigError`, exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from testbed.config.errors import ConfigError
from testbed.exit_codes import ExitCode, TestbedExit

ENV_PREFIX = "TESTBED__"

SetItem = str | tuple[str, Any]
"""A `--set` item: `"KEY.PATH=VALUE"` (the value is YAML) or `(key_path, value)`."""


class KeyPathError(ValueError):
    """A dotted key path that cannot be written (empty part, or through a non-mapping)."""


def parse_value(text: str) -> Any:
    """`text` as YAML (`3` → 3, `[1, 2]` → a list, `true` → True); unparsable: the text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_set(item: str) -> tuple[str, Any]:
    """`"KEY.PATH=VALUE"` → `(key_path, YAML-parsed value)`; a malformed item exits 3."""
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or not key or not all(part.strip() for part in key.split(".")):
        raise TestbedExit(ExitCode.USAGE, f"--set: expected KEY=VALUE, got {item!r}")
    return key, parse_value(value)


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Write `value` at the dotted key path in `data`, creating missing mappings;
    `KeyPathError` if a part is empty or the path runs through a non-mapping."""
    keys = dotted.split(".")
    if not all(keys):
        raise KeyPathError(f"expected a dotted key path, got {dotted!r}")
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise KeyPathError(f"{where!r} is not a mapping, so {dotted!r} cannot be set")
        node = child
    node[keys[-1]] = value


def apply_sets(data: dict[str, Any], sets: Iterable[SetItem]) -> dict[str, Any]:
    """Apply `--set` items in order (later ones win) to `data`, in place; return it."""
    for item in sets:
        key, value = parse_set(item) if isinstance(item, str) else item
        try:
            set_path(data, key, value)
        except KeyPathError as exc:
            shown = item if isinstance(item, str) else f"{key}={value!r}"
            raise TestbedExit(ExitCode.USAGE, f"--set {shown!r}: {exc}") from None
    return data


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Apply `TESTBED__A__B=value` variables (sorted by name) to `data`, in place."""
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            try:
                set_path(data, dotted, parse_value(value))
            except KeyPathError as exc:
                raise ConfigError([(dotted, f"{exc} (environment variable {name})")]) from None
    return data


def apply_overrides(
    data: dict[str, Any],
    env: Mapping[str, str] | None = None,
    sets: Iterable[SetItem] = (),
) -> dict[str, Any]:
    """Apply `TESTBED__A__B=value` environment variables, then `--set` items."""
    apply_env(data, os.environ if env is None else env)
    return apply_sets(data, sets)
