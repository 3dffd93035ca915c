"""The committed gRPC/protobuf code matches a fresh generation from proto/."""

from __future__ import annotations

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


def test_exit_codes_are_unique_and_documented() -> None:
    from testbed.exit_codes import ExitCode

    assert len({c.value for c in ExitCode}) == len(ExitCode)
    assert all(c.help for c in ExitCode)


def test_exit_code_table_in_the_docs_matches_the_registry() -> None:
    from testbed.exit_codes import ExitCode

    text = (ROOT / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | {code.name} | {code.help} |" in text, code.name
