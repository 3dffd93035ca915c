"""Run folders (coordinator/run_folder.py): a folder that cannot be written is a clear
error naming it (OUTPUT_UNWRITABLE), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.run_folder import busy_cores, new_run_dir, slug
from testbed.exit_codes import ExitCode, TestbedExit


def test_an_out_dir_under_a_file_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    out_dir = tmp_path / "file" / "runs"
    with pytest.raises(TestbedExit) as info:
        new_run_dir(out_dir, "default", "greedy", 0)
    assert info.value.code is ExitCode.OUTPUT_UNWRITABLE
    assert str(out_dir) in info.value.message and "run.out_dir" in info.value.message


def test_a_read_only_out_dir_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, os.strerror(13), str(self))

    # chmod does not stop root: refuse the way a read-only folder does
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(TestbedExit) as info:
        new_run_dir(tmp_path / "ro", "default", "greedy", 0)
    assert info.value.code is ExitCode.OUTPUT_UNWRITABLE
    assert str(tmp_path / "ro") in info.value.message and "Permission denied" in info.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_chmod_read_only_out_dir(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(TestbedExit) as info:
            new_run_dir(tmp_path / "runs", "default", "greedy", 0)
    finally:
        tmp_path.chmod(0o700)
    assert info.value.code is ExitCode.OUTPUT_UNWRITABLE


def test_run_folder_names_stay_short(tmp_path: Path) -> None:
    path = new_run_dir(tmp_path, "e" * 64, "/x/" + "p" * 300 + ".onnx", 2**63 - 1)
    assert len(path.name) < 200 and path.is_dir()
    assert slug("a/b c") == "a-b-c"


def test_busy_cores_sees_what_runs_now() -> None:
    # a process spinning on one core through the whole window: at least half a core busy,
    # never more than the host has
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.monotonic()\n"
                             "while time.monotonic() - t < 5: pass"])  # fmt: skip
    try:
        time.sleep(0.2)
        busy = busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert 0.5 <= busy <= (os.cpu_count() or 1)
