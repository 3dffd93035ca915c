"""The edge's task-header validation (edge_node/validation.py): named bounds, and a
property-based fuzz — any strings, NaN/inf/negative floats, huge ints — under which it
raises nothing but its own error and accepts exactly the in-bound headers."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node.validation import InvalidTaskRequest, TaskLimits, validate_task_header
from testbed.messages import EdgeTaskRequest, ModelRef

LIMITS = TaskLimits(max_steps=1000, max_units=5000, max_data_bytes=2_000_000)
GOOD = EdgeTaskRequest(
    task_id="agent-0/t0001", model=ModelRef("diffusion-s"), units=14, download=True,
    share=0.6, steps=20, data_bytes=1024,
)  # fmt: skip
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def test_a_header_within_the_bounds_is_accepted() -> None:
    validate_task_header(GOOD, LIMITS)
    validate_task_header(replace(GOOD, share=0.0, units=0, steps=0, data_bytes=0), LIMITS)
    validate_task_header(replace(GOOD, model=ModelRef("cgan-s", "1.2")), LIMITS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 10**9}, "steps 1000000000 > 1000 (edges.max_steps)"),
        ({"units": 5001}, "units 5001 > 5000 (edges.max_units)"),
        ({"data_bytes": 300 * 2**20}, "data_bytes 314572800 > 2000000 (edges.max_task_data_mb)"),
        ({"share": -0.1}, "share -0.1 is outside [0, 1]"),
        ({"share": 1.5}, "share 1.5 is outside [0, 1]"),
        ({"share": math.nan}, "share nan is outside [0, 1]"),
        ({"task_id": ""}, "task_id is empty"),
        ({"steps": -1}, "steps -1 < 0"),
        ({"model": ModelRef("../../x")}, "model id '../../x'"),
        ({"model": ModelRef("ae-s", "../1")}, "model version '../1'"),
    ],
)
def test_each_bound_is_named(change: dict, message: str) -> None:
    with pytest.raises(InvalidTaskRequest) as info:
        validate_task_header(replace(GOOD, **change), LIMITS)
    assert message in str(info.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(InvalidTaskRequest) as info:
        validate_task_header(replace(GOOD, task_id="", share=2.0, steps=10**6), LIMITS)
    assert all(p in str(info.value) for p in ("task_id", "share", "steps"))


@pytest.mark.parametrize(
    "change",
    [{"share": "0.5"}, {"units": 1.5}, {"steps": None}, {"task_id": 7}, {"model": "m"},
     {"data_bytes": True}],
)  # fmt: skip
def test_wrong_types_are_its_own_error(change: dict) -> None:
    with pytest.raises(InvalidTaskRequest):
        validate_task_header(replace(GOOD, **change), LIMITS)


def _valid_name(value: str, empty_ok: bool) -> bool:
    return (empty_ok and value == "") or (NAME.fullmatch(value) is not None and ".." not in value)


def _in_bounds(req: EdgeTaskRequest) -> bool:
    """The bounds, written independently of the code under test."""
    return (
        0 < len(req.task_id) <= 256
        and req.task_id.isprintable()
        and _valid_name(req.model.model_id, empty_ok=False)
        and _valid_name(req.model.version, empty_ok=True)
        and 0.0 <= req.share <= 1.0
        and 0 <= req.units <= LIMITS.max_units
        and 0 <= req.steps <= LIMITS.max_steps
        and 0 <= req.data_bytes <= LIMITS.max_data_bytes
    )


def _near(bound: int) -> st.SearchStrategy[int]:
    """Huge and negative ints, and ints around the bound (where mistakes live)."""
    return st.one_of(st.integers(), st.integers(-2, bound + 2), st.just(2**64 + 1))


names = st.one_of(st.text(max_size=80), st.from_regex(NAME, fullmatch=True))
headers = st.builds(
    EdgeTaskRequest,
    task_id=st.one_of(st.text(max_size=300), st.just("agent-1/t0042")),
    model=st.builds(ModelRef, names, st.one_of(st.just(""), names)),
    units=_near(LIMITS.max_units),
    download=st.booleans(),
    agent_id=st.text(),
    task_type=st.text(),
    share=st.one_of(st.floats(), st.floats(0.0, 1.0)),
    steps=_near(LIMITS.max_steps),
    data_bytes=_near(LIMITS.max_data_bytes),
    slot=st.integers(),
    upload_rate_mbps=st.floats(),
)


@settings(max_examples=300, deadline=None)
@given(headers)
def test_fuzz_accepts_exactly_the_in_bound_headers(req: EdgeTaskRequest) -> None:
    try:
        validate_task_header(req, LIMITS)
    except InvalidTaskRequest as exc:
        assert not _in_bounds(req), f"refused an in-bound header: {exc}"
        assert str(exc)  # it says what was wrong
    else:
        assert _in_bounds(req), "accepted a header outside the bounds"
