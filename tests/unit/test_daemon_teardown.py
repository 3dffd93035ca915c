"""A stopping daemon's teardown is bounded (testbed/daemon.py `bound_teardown`): a
thread still waiting on something gone with the bench cannot keep the process alive,
and the node's log then holds every thread's stack."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

STUCK = textwrap.dedent(
    """
    import logging, threading
    from testbed.daemon import bound_teardown

    def wait_forever() -> None:
        threading.Event().wait()

    threading.Thread(target=wait_forever, name="stuck-handler").start()  # not a daemon
    bound_teardown(logging.getLogger("t"), timeout_s=0.5)
    """
)


def test_a_teardown_stuck_past_its_bound_exits_with_every_stack_in_the_log() -> None:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    assert out.returncode == 1
    assert "Timeout" in out.stderr and "wait_forever" in out.stderr


def test_a_prompt_teardown_exits_normally() -> None:
    quick = STUCK.replace('threading.Thread(target=wait_forever, name="stuck-handler").start()', "")
    out = subprocess.run([sys.executable, "-c", quick], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
