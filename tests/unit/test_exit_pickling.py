"""A `TestbedExit` raised in a worker process (a sweep cell in a process pool, a Ray
task) crosses back to the parent by pickling: it must arrive as itself, with its code
and message, not break the pool (testbed/exit_codes.py, testbed/config/errors.py)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from coordinator.calibration_file import CalibrationError
from coordinator.coedge_calibration_file import CoedgeCalibrationError
from coordinator.envs.twin_params import TwinSetupError
from testbed.config import ConfigError
from testbed.exit_codes import ExitCode, InputError, TestbedExit


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


@pytest.mark.parametrize(
    ("error", "code"),
    [(CalibrationError, ExitCode.CONFIG_INVALID), (CoedgeCalibrationError, ExitCode.CONFIG_INVALID),
     (TwinSetupError, ExitCode.ZOO_MISSING)],
)  # fmt: skip
def test_an_input_error_is_a_value_error_and_an_exit_with_its_code(
    error: type[InputError], code: ExitCode
) -> None:
    # these were plain ValueErrors: a command meeting one printed a traceback
    exc = pickle.loads(pickle.dumps(error("x.json: not valid JSON")))
    assert type(exc) is error and isinstance(exc, ValueError) and isinstance(exc, TestbedExit)
    assert (exc.code, exc.message, str(exc)) == (code, "x.json: not valid JSON", exc.message)
