"""A `TestbedExit` raised in a worker process (a sweep cell in a process pool, a Ray
task) crosses back to the parent by pickling: it must arrive as itself, with its code
and message, not break the pool (testbed/exit_codes.py, testbed/config/errors.py)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from testbed.config import ConfigError
from testbed.exit_codes import ExitCode, TestbedExit


def test_a_testbed_exit_survives_pickling() -> None:
    exc = pickle.loads(pickle.dumps(TestbedExit(ExitCode.MODEL_INVALID, "bad actor")))
    assert type(exc) is TestbedExit
    assert (exc.code, exc.message) == (ExitCode.MODEL_INVALID, "bad actor")


def test_a_config_error_survives_pickling() -> None:
    exc = pickle.loads(pickle.dumps(ConfigError([("run.slots", "expected ≥ 1")], "x.yaml")))
    assert type(exc) is ConfigError
    assert exc.problems == [("run.slots", "expected ≥ 1")] and exc.source == "x.yaml"
    assert exc.code is ExitCode.CONFIG_INVALID and "run.slots" in exc.message


def _raise_config_error() -> None:
    raise ConfigError([("coedge.max_tasks", "expected ≥ 1, got 0")])


def test_a_config_error_in_a_worker_process_reaches_the_parent_as_itself() -> None:
    with (
        ProcessPoolExecutor(max_workers=1) as pool,
        pytest.raises(ConfigError, match=r"coedge\.max_tasks"),
    ):
        pool.submit(_raise_config_error).result()
