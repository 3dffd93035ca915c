"""Typed-dataclass loading with errors that name the key path.

A config schema is a tree of frozen dataclasses. `load_dataclass(cls, data)` walks a
plain mapping (parsed YAML) against it and either returns the dataclass tree or raises
`SchemaError` listing *every* problem as `key.path: what was expected, what was found`.
Unknown keys are errors with a "did you mean". Fields carry their documentation and
range in `metadata` (see `meta`), so the default `testbed.yaml` and the docs can be
checked against the schema. NaN and infinities pass every comparison, so a float is
finite unless its field says otherwise, and an integer fits in 64 bits whatever its
bounds: a value no bound was written for still cannot reach the code unchecked.

Kept free of the testbed's own types so it can be tested on its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hmac
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING
INT64_MIN, INT64_END = -(2**63), 2**63
"""Every integer lies in [INT64_MIN, INT64_END): what numpy, torch and protobuf take."""
_MAX_DIGITS_SHOWN = 40
PATH_MAX_BYTES, PATH_PART_MAX_BYTES = 4096, 255  # Linux PATH_MAX and NAME_MAX
REDACTED = "<redacted>"
"""What a `Secret` prints and dumps as."""


class Secret:
    """A value that is never written out (a password): it prints, formats and dumps as
    `<redacted>`; `.reveal()` gives the value to the one call that needs it.

    Not a `str` subclass on purpose: `json.dumps` writes the characters of any str
    subclass as they are, whatever its `__str__`; an object that is not a string makes
    an unredacted write fail instead of leaking. Loading the text `<redacted>` (a dumped
    config read back) gives no secret at all: the value must come from elsewhere (a
    password file)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, _spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def meta(
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_len: int | None = None,
    max_len: int | None = None,
    pattern: str | None = None,
    finite: bool = True,
    path: bool = False,
) -> dict[str, Any]:
    """Field metadata: documentation, numeric bounds, length bounds (of lists and
    strings), a regular expression a string must match whole, `finite`: whether a
    float must be finite (NaN and ±inf pass every bound, so they are refused unless a
    field says `finite=False`), and `path`: a string the file system must take as a
    path (no NUL; each part ≤ 255 bytes, all ≤ 4096). Integers always fit in 64 bits
    (−2^63 ≤ n < 2^63)."""
    return {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "min_len": min_len,
            "max_len": max_len, "pattern": pattern, "finite": finite, "path": path}  # fmt: skip


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
    if isinstance(value, int) and not isinstance(value, bool) and _too_long(value):
        return f"{_number_text(value)} (int)"
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
    if tp is Secret:
        return "a string (a secret)"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _too_long(value: int) -> bool:
    return abs(value) >= 10**_MAX_DIGITS_SHOWN


def _digits(value: int) -> int:
    """Decimal digits of `value`, without converting it to text (Python refuses to
    print an integer of more than 4300 digits)."""
    return int(abs(value).bit_length() * math.log10(2)) + 1


def _number_text(value: Any, shown: Callable[[Any], str] = "{:g}".format) -> str:
    """A bound or a value in a message; an enormous integer by its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an integer of about {_digits(value)} digits" if _too_long(value) else str(value)
    return shown(value)


def _bounds_text(m: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if m.get(key) is not None:
            parts.append(f"{sym} {_number_text(m[key])}")
    return " and ".join(parts)


def _limits(tp: Any, m: Mapping[str, Any]) -> dict[str, Any]:
    """The bounds a number of type `tp` is held to: the field's, and for an integer
    64 bits where the field sets no bound on a side."""
    limits = dict(m)
    if tp is int:
        if limits.get("ge") is None and limits.get("gt") is None:
            limits["ge"] = INT64_MIN
        if limits.get("le") is None and limits.get("lt") is None:
            limits["lt"] = INT64_END
    return limits


def _wanted(tp: Any, m: Mapping[str, Any]) -> str:
    """What a value of type `tp` under metadata `m` is expected to be, in words."""
    if tp not in (int, float):
        return _type_name(tp)
    name = "a finite number" if tp is float and m.get("finite", True) else _type_name(tp)
    bounds = _bounds_text(_limits(tp, m))
    return f"{name} {bounds}" if bounds else name


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
            # only a word can be a near miss (str() of a huge int raises)
            names = [str(mb.value) for mb in tp]
            hint = _did_you_mean(value, names) if isinstance(value, str) else ""
            self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}{hint}")
            return None
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.load(tp, value, path)
        if tp is Secret:
            return self.secret(value, path)
        if origin is list:
            if not isinstance(value, list):
                self.error(path, f"expected {_type_name(tp)}, got {_describe(value)}")
                return []
            if m.get("min_len") is not None and len(value) < m["min_len"]:
                self.error(path, f"expected at least {m['min_len']} item(s), got {len(value)}")
            if m.get("max_len") is not None and len(value) > m["max_len"]:
                self.error(path, f"expected at most {m['max_len']} item(s), got {len(value)}")
                return []
            item_m = {**m, "max_len": None}  # the list's length, not its items'
            return [self.convert(args[0], v, _join(path, i), item_m) for i, v in enumerate(value)]
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
                try:
                    value = float(value)
                except OverflowError:  # an integer beyond the largest float
                    self.error(path, f"expected {_wanted(tp, m)}, got {_number_text(value)}")
                    return value
        elif tp is str:
            ok = isinstance(value, str)
        elif tp is Any:
            return value
        if not ok:
            self.error(path, f"expected {_wanted(tp, m)}, got {_describe(value)}")
        elif tp in (int, float):
            self.check_number(tp, value, path, m)
        elif tp is str:
            self.check_text(value, path, m)
        return value

    def secret(self, value: Any, path: str) -> Secret | None:
        """A `Secret` from its text; the dumped placeholder `<redacted>` is no value."""
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            self.error(path, f"expected {_type_name(Secret)}, got {type(value).__name__}")
            return None
        return None if value == REDACTED else Secret(value)

    def check_number(self, tp: Any, value: float, path: str, m: Mapping[str, Any]) -> None:
        limits = _limits(tp, m)
        if tp is float and limits.get("finite", True) and not math.isfinite(value):
            bad = True
        else:
            bad = (
                (limits.get("ge") is not None and value < limits["ge"])
                or (limits.get("gt") is not None and value <= limits["gt"])
                or (limits.get("le") is not None and value > limits["le"])
                or (limits.get("lt") is not None and value >= limits["lt"])
            )
        if bad:
            self.error(path, f"expected {_wanted(tp, m)}, got {_number_text(value, repr)}")

    def check_text(self, value: str, path: str, m: Mapping[str, Any]) -> None:
        if m.get("max_len") is not None and len(value) > m["max_len"]:
            self.error(path, f"expected at most {m['max_len']} characters, got {len(value)}")
        elif m.get("pattern") is not None and not re.fullmatch(m["pattern"], value):
            self.error(path, f"expected a string matching {m['pattern']}, got {_describe(value)}")
        elif m.get("path") and not _is_path(value):
            want = (
                f"a file path (no NUL, parts of at most {PATH_PART_MAX_BYTES} bytes, "
                f"at most {PATH_MAX_BYTES} in all)"
            )
            self.error(path, f"expected {want}, got {_describe(value)}")

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


def _is_path(text: str) -> bool:
    data = text.encode("utf-8", "surrogateescape")
    return (
        b"\0" not in data
        and len(data) <= PATH_MAX_BYTES
        and all(len(part) <= PATH_PART_MAX_BYTES for part in data.split(b"/"))
    )


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


def dump_dataclass(obj: Any, *, keep_secrets: bool = False) -> Any:
    """The plain (YAML-ready) form of a dataclass tree: enums by value, tuples as lists,
    every `Secret` as `<redacted>`. `keep_secrets`: the `Secret` objects themselves
    stay (still redacted when printed), for a tree that is loaded again in memory, never
    written."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: dump_dataclass(getattr(obj, f.name), keep_secrets=keep_secrets)
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, Secret):
        return obj if keep_secrets else REDACTED
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, list | tuple):
        return [dump_dataclass(v, keep_secrets=keep_secrets) for v in obj]
    if isinstance(obj, dict):
        return {k: dump_dataclass(v, keep_secrets=keep_secrets) for k, v in obj.items()}
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
