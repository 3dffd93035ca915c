"""Typed-dataclass loading with errors that name the key path.

A config schema is a tree of frozen dataclasses. `load_dataclass(cls, data)` walks a
plain mapping (parsed YAML) against it and either returns the dataclass tree or raises
`SchemaError` listing *every* problem as `key.path: what was expected, what was found`.
Unknown keys are errors with a "did you mean". Fields carry their documentation and
range in `metadata` (see `meta`), so the default `testbed.yaml` and the docs can be
checked against the schema.

Kept free of the testbed's own types so it can be tested on its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def meta(
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_len: int | None = None,
) -> dict[str, Any]:
    """Field metadata: documentation and numeric bounds (also for list lengths)."""
    return {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "min_len": min_len}


class SchemaError(Exception):
    """One or more problems, each `(key_path, message)`."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{p}: {m}" for p, m in problems))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin is dict:
        return f"a mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _bounds_text(m: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if m.get(key) is not None:
            parts.append(f"{sym} {m[key]:g}")
    return " and ".join(parts)


class _Loader:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append((path or "<root>", message))

    def convert(self, tp: Any, value: Any, path: str, m: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) == 1:
                return self.convert(non_none[0], value, path, m)
            for arg in non_none:  # first alternative that loads without problems
                probe = _Loader()
                out = probe.convert(arg, value, path, m)
                if not probe.problems:
                    return out
            self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
            return None
        if origin is typing.Literal:
            if value in args:
                return value
            self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
            return None
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            for member in tp:
                if value == member.value or value == member:
                    return member
            hint = _did_you_mean(str(value), [str(mb.value) for mb in tp])
            self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}{hint}")
            return None
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.load(tp, value, path)
        if origin is list:
            if not isinstance(value, list):
                self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
                return []
            if m.get("min_len") is not None and len(value) < m["min_len"]:
                self.error(path, f"expected at least {m['min_len']} item(s), got {len(value)}")
            return [self.convert(args[0], v, _join(path, i), m) for i, v in enumerate(value)]
        if origin is tuple:
            if not isinstance(value, list | tuple) or len(value) != len(args):
                self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
                return None
            return tuple(
                self.convert(a, v, _join(path, i), m)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        if origin is dict:
            if not isinstance(value, dict):
                self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
                return {}
            return {
                self.convert(args[0], k, path, {}): self.convert(args[1], v, _join(path, str(k)), m)
                for k, v in value.items()
            }
        return self.scalar(tp, value, path, m)

    def scalar(self, tp: Any, value: Any, path: str, m: Mapping[str, Any]) -> Any:
        ok = False
        if tp is bool:
            ok = isinstance(value, bool)
        elif tp is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif tp is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok:
                value = float(value)
        elif tp is str:
            ok = isinstance(value, str)
        elif tp is Any:
            return value
        if not ok:
            bounds = _bounds_text(m)
            want = _type_name(tp) + (f" {bounds}" if bounds and tp in (int, float) else "")
            self.error(path, f"expected {want}, got {_describe(value)}")
            return value
        if tp in (int, float):
            bounds = _bounds_text(m)
            bad = (
                (m.get("ge") is not None and value < m["ge"])
                or (m.get("gt") is not None and value <= m["gt"])
                or (m.get("le") is not None and value > m["le"])
                or (m.get("lt") is not None and value >= m["lt"])
            )
            if bad:
                self.error(path, f"expected {_type_name(tp)} {bounds}, got {value!r}")
        return value

    def load(self, cls: type[T], data: Any, path: str) -> T:
        before = len(self.problems)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.error(path, f"expected a mapping, got {_describe(data)}")
            data = {}
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        hints = typing.get_type_hints(cls)
        for key in data:
            if key not in fields:
                hint = _did_you_mean(str(key), list(fields))
                self.error(_join(path, str(key)), f"unknown key{hint}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(path, name)
            if name in data:
                kwargs[name] = self.convert(hints[name], data[name], sub, f.metadata)
            elif f.default is _MISSING and f.default_factory is _MISSING:
                self.error(sub, f"missing; expected {_type_name(hints[name])}")
        try:
            obj = cls(**kwargs)
        except TypeError:  # a required field was missing: already reported
            return None  # type: ignore[return-value]
        check = getattr(obj, "check", None)
        if callable(check) and len(self.problems) == before:
            for sub_key, message in check():
                self.error(_join(path, sub_key) if sub_key else path, message)
        return obj


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_dataclass(cls: type[T], data: Any, path: str = "") -> T:
    """Load `data` into the dataclass tree `cls`; raise `SchemaError` on any problem.

    A dataclass may define `check(self) -> list[tuple[str, str]]` for cross-field rules;
    it runs once its own fields are valid, its paths relative to the dataclass.
    """
    loader = _Loader()
    obj = loader.load(cls, data, path)
    if loader.problems:
        raise SchemaError(loader.problems)
    return obj


def dump_dataclass(obj: Any) -> Any:
    """The plain (YAML-ready) form of a dataclass tree: enums by value, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump_dataclass(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, list | tuple):
        return [dump_dataclass(v) for v in obj]
    if isinstance(obj, dict):
        return {k: dump_dataclass(v) for k, v in obj.items()}
    return obj


def iter_field_docs(cls: type, path: str = "") -> typing.Iterator[tuple[str, str]]:
    """Every (key path, doc) of the schema, depth first; lists of dataclasses as `key[]`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        sub = _join(path, f.name)
        yield sub, f.metadata.get("doc", "")
        tp = hints[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is list and inner and _is_dataclass_type(inner[0]):
            yield from iter_field_docs(inner[0], sub + "[]")
        elif _is_dataclass_type(tp):
            yield from iter_field_docs(tp, sub)
        elif len(inner) == 1 and _is_dataclass_type(inner[0]):
            yield from iter_field_docs(inner[0], sub)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)
