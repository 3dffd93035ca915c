"""`--json`: a command's result as JSON on stdout, for scripts (layouts: docs/cli.md).

One way for every command: keys sorted and a two-space indent, so the same result gives
the same text; NaN and ±inf become `null`, so any JSON parser reads it (Python's
`json.dumps` would write the invalid `NaN`). While a command that also talks to people
runs, `json_result` sends what it prints to stderr (with `-q` nowhere), leaving stdout
to the JSON alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, TextIO

from coordinator.progress import progress_enabled


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The `--json` flag, with the same help on every command."""
    parser.add_argument(
        "--json", action="store_true",
        help="print the result as JSON on stdout, everything else on stderr (docs/cli.md)",
    )  # fmt: skip


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: dataclasses and mappings become objects (keys as
    strings), sequences and sets lists, enums their value, paths strings, numpy scalars
    numbers, NaN and ±inf None; anything else its `str`."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj.value if isinstance(obj, enum.Enum) else obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((jsonable(v) for v in obj), key=str)
    if isinstance(obj, PurePath):
        return str(obj)
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        with contextlib.suppress(TypeError, ValueError):
            return jsonable(item())
    return str(obj)


def json_text(obj: Any) -> str:
    """`obj` as stable, strict JSON text (sorted keys, indent 2, no NaN), no newline."""
    return json.dumps(jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


def print_json(obj: Any, stream: TextIO | None = None) -> None:
    """Print `obj` as `json_text` and a newline (default: on stdout)."""
    out = stream or sys.stdout
    out.write(json_text(obj) + "\n")
    out.flush()


def json_result(as_json: bool, body: Callable[[], tuple[int, Any]]) -> int:
    """Run a command `body` returning (exit code, result). With `as_json`, what it prints
    goes to stderr (with `-q`: nowhere) and the result (unless None) is printed as JSON
    on stdout."""
    if not as_json:
        return body()[0]
    stdout = sys.stdout
    people: TextIO = sys.stderr if progress_enabled() else io.StringIO()
    with contextlib.redirect_stdout(people):
        code, result = body()
    if result is not None:
        print_json(result, stdout)
    return code
