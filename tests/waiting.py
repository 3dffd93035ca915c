"""Waiting for what a thread does, instead of sleeping and hoping it has done it.

A test that sleeps a fixed time and then asserts on another thread's work fails on a
busy machine (the thread had not run yet) and wastes time on an idle one. Wait on the
condition instead, with a timeout generous enough for a loaded 2-core CI host: it only
matters when the test fails anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WAIT_S = 10.0
"""Default timeout of a wait, in s: far above what any condition takes, even loaded."""

POLL_S = 0.005
"""How often `wait_until` checks its condition, in s."""


def wait_until(condition: Callable[[], object], timeout_s: float = WAIT_S) -> bool:
    """Check `condition()` every POLL_S s until it is true (→ True) or `timeout_s` has
    passed (→ its last value, as a bool). Use as `assert wait_until(lambda: ...)`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(POLL_S)
    return bool(condition())
