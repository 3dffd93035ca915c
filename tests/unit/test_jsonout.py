"""`--json` output (coordinator/jsonout.py): strict, stable JSON whatever a result holds."""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from coordinator.jsonout import json_result, json_text, jsonable, print_json


class Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x_m: float
    colour: Colour


def test_nan_and_infinities_become_null_everywhere() -> None:
    doc = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": (math.nan,)}}
    text = json_text(doc)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": {"d": [None]}}


def test_values_become_plain_json() -> None:
    doc = {
        "enum": Colour.RED, "path": Path("runs/x"), "point": Point(1.0, Colour.RED),
        "np_float": np.float32(0.5), "np_int": np.int64(3), "np_nan": np.float64("nan"),
        "set": {"b", "a"}, 7: "int key", "other": object,
    }  # fmt: skip
    out = jsonable(doc)
    assert out["enum"] == "red" and out["path"] == "runs/x"
    assert out["point"] == {"x_m": 1.0, "colour": "red"}
    assert out["np_float"] == 0.5 and out["np_int"] == 3 and out["np_nan"] is None
    assert out["set"] == ["a", "b"] and out["7"] == "int key"
    assert isinstance(out["other"], str)
    json.dumps(out, allow_nan=False)


def test_the_text_is_stable() -> None:
    assert json_text({"b": 1, "a": {"d": 2, "c": 3}}) == json_text({"a": {"c": 3, "d": 2}, "b": 1})
    assert json_text({"b": 1, "a": 2}).index('"a"') < json_text({"b": 1, "a": 2}).index('"b"')
    stream = io.StringIO()
    print_json([1], stream)
    assert stream.getvalue() == "[\n  1\n]\n"


def test_json_result_sends_people_output_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> tuple[int, dict[str, float]]:
        print("run folder: x")
        return 0, {"rate": math.nan}

    assert json_result(True, body) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"rate": None} and err == "run folder: x\n"
    assert json_result(False, body) == 0
    out, err = capsys.readouterr()
    assert out == "run folder: x\n" and err == ""
