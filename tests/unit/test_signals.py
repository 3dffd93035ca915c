"""The stop flag set by signals (testbed/signals.py): its handler takes no lock, so a
signal landing while the main thread holds the flag's own lock (inside `wait`) cannot
deadlock it, and a burst of SIGTERMs stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from testbed.signals import SignalFlag

HELD = textwrap.dedent(
    """
    import signal, threading
    from testbed.signals import SignalFlag

    flag = SignalFlag()
    with flag.event._cond:  # where Event.wait is when a second signal lands
        flag._handle(signal.SIGTERM, None)  # an Event.set() here never returned
    assert flag.wait(10), "the watcher did not set the flag"
    print("stopped")
    """
)

WAITER = textwrap.dedent(
    """
    import sys
    from testbed.signals import SignalFlag

    flag = SignalFlag()
    print("ready", flush=True)
    flag.wait()
    """
)


def test_a_signal_inside_the_flags_own_lock_does_not_deadlock() -> None:
    out = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "stopped", out.stderr


def test_a_burst_of_sigterms_stops_every_process() -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True)
        for _ in range(12)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for _ in range(3):
        for p in procs:
            p.send_signal(signal.SIGTERM)
    hung = []
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            hung.append(p.pid)
            p.kill()
            p.wait()
    assert not hung
    # 0, or the default action of a SIGTERM that landed once the interpreter was
    # finalizing (it puts the default handlers back): gone either way, never an error.
    assert all(p.returncode in (0, -signal.SIGTERM) for p in procs), [p.returncode for p in procs]


def test_the_callback_runs_and_close_puts_the_old_handler_back() -> None:
    seen: list[signal.Signals] = []
    before = signal.getsignal(signal.SIGUSR1)
    with SignalFlag([signal.SIGUSR1], on_signal=seen.append) as flag:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert flag.wait(10)
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before
