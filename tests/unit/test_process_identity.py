"""A recorded process identity (coordinator/process_identity.py): the boot clock
decides, so a change of the wall clock does not make the bench's own processes
strangers, and another start or another boot is another process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest

from coordinator.process_identity import ProcessIdentity

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/sys/kernel/random/boot_id"), reason="needs Linux /proc"
)


def me() -> ProcessIdentity:
    identity = ProcessIdentity.of(os.getpid())
    assert identity is not None and identity.since_boot_s is not None
    return identity


def test_the_boot_clock_start_is_psutils_start_less_the_boot_time() -> None:
    identity = me()
    since_boot = identity.since_boot_s
    assert identity.boot_id and since_boot is not None
    assert abs(identity.started_at - since_boot - psutil.boot_time()) < 0.02


def test_a_command_name_with_spaces_and_parentheses_is_read_past() -> None:
    script = "open('/proc/self/comm', 'w').write('a) (b c'); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(500):  # until it has renamed itself
            if psutil.Process(child.pid).name() == "a) (b c":
                break
            time.sleep(0.01)
        assert psutil.Process(child.pid).name() == "a) (b c"
        identity = ProcessIdentity.of(child.pid)
        assert identity is not None and identity.since_boot_s is not None
        proc = psutil.Process(child.pid)
        assert abs(identity.since_boot_s - (proc.create_time() - psutil.boot_time())) < 0.02
    finally:
        child.kill()
        child.wait()


def test_a_wall_clock_step_keeps_the_identity() -> None:
    identity = me()
    # /proc/stat's btime moved: psutil's epoch start time moves with it, by a second or
    # by hours (NTP on a board without a real-time clock)
    for step in (1.0, -1.0, 3 * 3600.0):
        assert replace(identity, started_at=identity.started_at + step).matches(identity)
    assert identity.process() is not None


def test_another_start_or_another_boot_is_another_process() -> None:
    identity = me()
    assert identity.since_boot_s is not None
    assert not replace(identity, since_boot_s=identity.since_boot_s + 1.0).matches(identity)
    assert not replace(identity, boot_id="another-boot").matches(identity)
    assert not replace(identity, cmdline=("sleep", "60")).matches(identity)


def test_the_record_round_trips() -> None:
    identity = me()
    record = identity.to_record()
    assert set(record) == {"pid", "started_at", "cmdline", "boot_id", "since_boot_s"}
    assert ProcessIdentity.from_record(record) == identity


@pytest.mark.parametrize(
    "boot", [{}, {"boot_id": 7, "since_boot_s": 1.0}, {"boot_id": "x", "since_boot_s": "1"}]
)
def test_a_record_without_a_usable_boot_start_is_judged_in_epoch_seconds(
    boot: dict[str, object],
) -> None:
    identity = me()
    record = {"pid": identity.pid, "started_at": identity.started_at,
              "cmdline": list(identity.cmdline), **boot}  # fmt: skip
    old = ProcessIdentity.from_record(record)
    assert old is not None and old.boot_id is None and old.since_boot_s is None
    assert old.matches(identity)
    assert not replace(old, started_at=old.started_at - 5).matches(identity)
