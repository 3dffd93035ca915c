"""The committed gRPC/protobuf code matches a fresh generation from proto/."""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date() -> None:
    pytest.importorskip("grpc_tools")
    out = subprocess.run(
        [sys.executable, "tools/gen_proto.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def shared_values(codes: type[enum.IntEnum]) -> dict[int, list[str]]:
    """Values that more than one name of `codes` has, with those names. Iterating an
    enum (or `len`) skips aliases, so this reads `__members__`, which lists them too."""
    names: dict[int, list[str]] = {}
    for name, member in codes.__members__.items():
        names.setdefault(member.value, []).append(name)
    return {value: group for value, group in names.items() if len(group) > 1}


def test_exit_codes_are_unique_and_documented() -> None:
    from testbed.exit_codes import ExitCode

    assert shared_values(ExitCode) == {}
    assert all(c.help for c in ExitCode)


def test_the_uniqueness_check_sees_an_alias() -> None:
    class Codes(enum.IntEnum):
        OK = 0
        FAILURE = 1
        BROKEN = 1  # an alias of FAILURE: `len(Codes)` is 2, as if all were unique

    assert len({c.value for c in Codes}) == len(Codes)  # why counting members cannot tell
    assert shared_values(Codes) == {1: ["FAILURE", "BROKEN"]}


def test_exit_code_table_in_the_docs_matches_the_registry() -> None:
    from testbed.exit_codes import ExitCode

    text = (ROOT / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | {code.name} | {code.help} |" in text, code.name
