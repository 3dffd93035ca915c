"""The one registry of process exit codes.

Every command and daemon of the testbed exits with one of these codes. `testbed
exit-codes` prints the table; docs/cli.md lists it too.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Callable
from typing import ClassVar, NoReturn


@enum.unique
class ExitCode(enum.IntEnum):
    """Exit codes, each with the help text `testbed exit-codes` prints."""

    OK = 0
    FAILURE = 1
    CONFIG_INVALID = 2
    USAGE = 3
    ZOO_MISSING = 4
    BROKER_UNAVAILABLE = 5
    NODE_START_FAILED = 6
    NODE_LOST = 7
    PORT_IN_USE = 8
    MODEL_INVALID = 9
    DEPENDENCY_MISSING = 10
    NOT_RUNNING = 11
    METER_UNAVAILABLE = 12
    OUTPUT_UNWRITABLE = 13
    NOT_PERMITTED = 14
    ALREADY_EXISTS = 15
    CERTIFICATE_INVALID = 16
    BROKER_REFUSED = 17
    DEPLOY_FAILED = 18
    INTERRUPTED = 130

    @property
    def help(self) -> str:
        return _HELP[self]


_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "Success.",
    ExitCode.FAILURE: "An unexpected error; the message (and the node's log) says more.",
    ExitCode.CONFIG_INVALID: "The configuration is invalid: the message names the key path.",
    ExitCode.USAGE: "The command line is wrong (unknown flag, bad value).",
    ExitCode.ZOO_MISSING: "The model zoo or its catalog is missing: run `testbed zoo build`.",
    ExitCode.BROKER_UNAVAILABLE: "The MQTT broker could not be started or reached.",
    ExitCode.NODE_START_FAILED: "A node process did not come up; its log is in the run folder.",
    ExitCode.NODE_LOST: "A node the run depends on was lost and the run cannot go on.",
    ExitCode.PORT_IN_USE: "A configured port is already taken.",
    ExitCode.MODEL_INVALID: "A model file is missing, corrupt or fails its checks.",
    ExitCode.DEPENDENCY_MISSING: "An optional dependency this command needs is not installed.",
    ExitCode.NOT_RUNNING: "No bench (or lab) is running (for `status` / `down`).",
    ExitCode.METER_UNAVAILABLE: "The configured energy meter cannot read on this host.",
    ExitCode.OUTPUT_UNWRITABLE: "An output folder (run.out_dir) cannot be written: it is named.",
    ExitCode.NOT_PERMITTED: "The command needs a privilege it does not have (`testbed lab`: root).",
    ExitCode.ALREADY_EXISTS: "What the command would create exists already (`lab up`: --force).",
    ExitCode.CERTIFICATE_INVALID: "A TLS certificate or key is missing, expired or not the CA's.",
    ExitCode.BROKER_REFUSED: "The MQTT broker refused the login: check broker.password_file.",
    ExitCode.DEPLOY_FAILED: "`testbed deploy` failed on a host; the output names each and why.",
    ExitCode.INTERRUPTED: "Stopped by Ctrl-C / SIGINT; everything was torn down.",
}


class TestbedExit(Exception):
    """Raised anywhere to end the process with a registered code and a message."""

    __test__ = False  # not a pytest test class

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt from its own arguments, not `args` (the message alone): a worker
        # process's exit (a sweep cell in a process pool, a Ray task) reaches the parent
        # as itself, not as a pool breakdown.
        return (type(self), (self.code, self.message))


class InputError(TestbedExit, ValueError):
    """A file or setting the command cannot use, raised with its message alone: a
    `ValueError` to the code that reads it, and to the CLI an exit with its class's code
    and the message, never a traceback."""

    exit_code: ClassVar[ExitCode] = ExitCode.CONFIG_INVALID

    def __init__(self, message: str) -> None:
        super().__init__(self.exit_code, message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))


class UsageArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors (unknown flag, bad choice or value, missing
    argument) print argparse's usual usage and one-line message on stderr and exit with
    USAGE, not argparse's own 2, which here means CONFIG_INVALID. `add_subparsers` makes
    its subparsers of the parent's class, so a whole command tree behaves the same."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def run_with_exit_codes(body: Callable[[], int]) -> int:
    """Run a command or daemon body: a `TestbedExit` (a bad config included) or Ctrl-C
    become their registered exit code and one message on stderr, never a traceback."""
    try:
        return int(body() or 0)
    except TestbedExit as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


def table() -> str:
    """The registry as a plain-text table."""
    return "\n".join(f"{c.value:>4}  {c.name:<20} {c.help}" for c in ExitCode)


def sigterm_as_interrupt(_signum: int, _frame: object) -> None:
    """A SIGTERM handler: stop as Ctrl-C does (KeyboardInterrupt → INTERRUPTED, teardown
    included). Install with `signal.signal(signal.SIGTERM, sigterm_as_interrupt)`."""
    raise KeyboardInterrupt
