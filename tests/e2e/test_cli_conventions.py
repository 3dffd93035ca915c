"""The command line as users of Unix tools expect it (docs/cli.md): a wrong command line
exits 3 with one message, `--version`, `-v`/`-q` on either side of the command, a
description and an example in every `--help`, and `--json` a script can parse."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.cli import COMMANDS, build_parser, installed_version, log_level, verbosity
from testbed.exit_codes import ExitCode
from tests.zoo_fixtures import tiny_bench

ROOT = Path(__file__).resolve().parents[2]


def run_testbed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def strict_json(text: str) -> Any:
    """Parse `text`, refusing NaN and Infinity (which `json.loads` would accept)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-flag"],  # unknown flag, top level
        ["no-such-command"],
        [],  # missing command
        ["up", "--no-such-flag"],  # unknown flag, subcommand
        ["zoo", "build", "--scale", "huge"],  # bad choice
        ["up", "--slots", "notanumber"],  # bad value
        ["eval"],  # missing required flag
        ["experiment", "check"],  # missing positional, nested subcommand
        ["zoo"],  # missing nested command
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_a_wrong_command_line_exits_3_with_one_message(argv: list[str]) -> None:
    out = run_testbed(*argv)
    assert out.returncode == ExitCode.USAGE, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert out.stderr.startswith("usage: testbed")
    (message,) = [line for line in out.stderr.splitlines() if ": error: " in line]
    assert message.startswith("testbed")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["eval", "--backend", "twin", "--policies", "greedy", "--slots", "0"], "--slots"),
        (["experiment", "run", "experiments/mato_models.yaml", "--slots", "-1"], "--slots"),
        (["experiment", "run", "experiments/mato_models.yaml", "--steps", "0"], "--steps"),
    ],
)  # fmt: skip
def test_a_count_below_one_exits_3_naming_the_flag(argv: list[str], said: str) -> None:
    # eval ran 0 slots (an empty result) or took 0 for the default; experiment ran on
    out = run_testbed(*argv)
    assert out.returncode == ExitCode.USAGE, out.stderr
    assert f"error: {said}: expected N ≥ 1, got {argv[-1]}" in out.stderr


def test_a_negative_count_is_named_as_given() -> None:
    # quality's flags went through `--set` with "-" made "_" (for optimal-step): got '_1'
    out = run_testbed("quality", "run", "--slots", "-1")
    assert out.returncode == ExitCode.CONFIG_INVALID, out.stderr
    assert "run.slots: expected an integer ≥ 1" in out.stderr and "got -1" in out.stderr


def test_a_bad_config_file_still_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  count: many\n")
    out = run_testbed("zoo", "list", "-c", str(bad))
    assert out.returncode == ExitCode.CONFIG_INVALID, out.stderr
    assert "agents.count" in out.stderr and "Traceback" not in out.stderr


def test_version_prints_the_installed_distribution() -> None:
    out = run_testbed("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"testbed {installed_version()}"
    assert installed_version()[0].isdigit()  # the venv has the project installed


# ---------------------------------------------------------------------------- -v / -q


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["exit-codes"], 0),
        (["-v", "exit-codes"], 1),
        (["exit-codes", "-v"], 1),
        (["-v", "exit-codes", "-v"], 2),
        (["exit-codes", "-vv"], 2),
        (["-q", "exit-codes"], -1),
        (["zoo", "list", "--quiet"], -1),
        (["-vv", "config", "check", "-q"], 1),
    ],
)
def test_verbosity_counts_flags_on_both_sides(argv: list[str], level: int) -> None:
    assert verbosity(_parse(argv)) == level


def test_log_levels() -> None:
    import logging

    assert [log_level(v) for v in (-2, -1, 0, 1, 2, 5)] == [
        logging.ERROR, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG,
        logging.DEBUG,
    ]  # fmt: skip


def test_verbose_after_the_command_is_accepted() -> None:
    for argv in (["exit-codes", "-v"], ["config", "check", "-vv"], ["-q", "config", "check"]):
        out = run_testbed(*argv)
        assert out.returncode == 0, (argv, out.stderr)


# ---------------------------------------------------------------------------- --help


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, groups and leaves (`zoo`, `zoo build`), by its prog."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if child.add_help:  # the chosen module's parsers, not the stubs
                        found[child.prog] = child
                        walk(child)

    for name in ["config", "exit-codes", *COMMANDS]:
        walk(build_parser([name]))
    return found


def test_every_command_help_has_a_description_and_an_example() -> None:
    parsers = _command_parsers()
    expected = {"config", "config check", "exit-codes", "zoo", "zoo build", "zoo list",
                "zoo register", "up", "status", "down", "train", "eval", "experiment",
                "experiment run", "experiment check", "report", "calibrate"}  # fmt: skip
    assert {prog.removeprefix("testbed ") for prog in parsers} >= expected
    for prog, parser in parsers.items():
        assert parser.description and "\n" not in parser.description.split("\n\n")[0], prog
        assert parser.epilog and parser.epilog.startswith("example"), prog
        assert "  testbed " in parser.epilog, prog
        assert parser.formatter_class is argparse.RawDescriptionHelpFormatter, prog


def test_help_as_a_user_sees_it() -> None:
    out = run_testbed("zoo", "build", "--help")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    description = lines[lines.index("") + 1]  # the first line after the usage
    assert description == "Build the zoo's models and catalog.json (needs torch)."
    assert "example" in out.stdout and "testbed zoo build --scale tiny" in out.stdout


# ---------------------------------------------------------------------------- --json


def test_exit_codes_json() -> None:
    out = run_testbed("exit-codes", "--json")
    assert out.returncode == 0, out.stderr
    rows = strict_json(out.stdout)["exit_codes"]
    assert [(r["code"], r["name"], r["meaning"]) for r in rows] == [
        (c.value, c.name, c.help) for c in ExitCode
    ]


def test_zoo_list_json(tiny_zoo: Path) -> None:
    out = run_testbed("zoo", "list", "--dir", str(tiny_zoo), "--json")
    assert out.returncode == 0, out.stderr
    doc = strict_json(out.stdout)
    catalog = json.loads((tiny_zoo / "catalog.json").read_text())
    assert doc["dir"] == str(tiny_zoo) and doc["scale"] == "tiny"
    assert [m["id"] for m in doc["models"]] == [m["id"] for m in catalog["models"]]
    assert doc["models"][0]["sha256"] == catalog["models"][0]["sha256"]
    assert list(doc) == sorted(doc)


def test_zoo_list_json_without_a_zoo_prints_nothing(tmp_path: Path) -> None:
    out = run_testbed("zoo", "list", "--dir", str(tmp_path), "--json")
    assert out.returncode == ExitCode.ZOO_MISSING and out.stdout == ""


def test_status_json_with_no_bench_says_so_and_exits_not_running(tmp_path: Path) -> None:
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({"run": {"out_dir": str(tmp_path / "runs")}}))
    out = run_testbed("status", "-c", str(config), "--json")
    assert out.returncode == ExitCode.NOT_RUNNING
    assert strict_json(out.stdout) == {
        "running": False,
        "bench_file": str(tmp_path / "runs" / "bench.json"),
    }
    assert "no bench is running" in out.stderr


def test_experiment_check_json() -> None:
    spec = "experiments/oracle_small.yaml"
    text = run_testbed("experiment", "check", spec)
    out = run_testbed("experiment", "check", spec, "--json")
    assert out.returncode == 0 and text.returncode == 0, out.stderr
    doc = strict_json(out.stdout)
    written = yaml.safe_load((ROOT / spec).read_text())
    assert doc["spec"] == spec and doc["name"] == written["name"]
    assert doc["sweep_key"] == written["sweep"]["key"]
    assert [c["value"] for c in doc["cells"]] == written["sweep"]["values"]
    for cell in doc["cells"]:
        assert cell["backend"] in ("live", "twin") and isinstance(cell["oracle"], bool)
        assert f"{doc['sweep_key']}={cell['value']}: {cell['agents']} devices" in text.stdout


def test_experiment_check_json_of_a_bad_spec_exits_2_and_prints_nothing(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsweep: {key: agents.count, values: []}\n")
    out = run_testbed("experiment", "check", str(bad), "--json")
    assert out.returncode == ExitCode.CONFIG_INVALID, out.stderr
    assert out.stdout == "" and "sweep.values" in out.stderr


def _tiny_config(tmp_path: Path, tiny_zoo: Path, **sections: Any) -> Path:
    data = tiny_bench(tmp_path, tiny_zoo, run={"out_dir": str(tmp_path / "runs"), "slots": 3},
                      **sections)  # fmt: skip
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_eval_json_in_the_twin_is_eval_json(tmp_path: Path, tiny_zoo: Path) -> None:
    config = _tiny_config(tmp_path, tiny_zoo)
    out = run_testbed("eval", "-c", str(config), "--backend", "twin",
                      "--policies", "greedy,local", "--seeds", "0,1", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = strict_json(out.stdout)  # the table and the run folder went to stderr
    assert "| policy |" in out.stderr and "run folder:" in out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert doc == json.loads((run_dir / "eval.json").read_text())
    assert [(r["policy"], r["seed"]) for r in doc["results"]] == [
        ("greedy", 0), ("local", 0), ("greedy", 1), ("local", 1)
    ]  # fmt: skip
    quiet = run_testbed("eval", "-c", str(config), "--backend", "twin",
                        "--policies", "greedy", "--json", "-q")  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # -q: nothing but JSON
    assert strict_json(quiet.stdout)["results"][0]["policy"] == "greedy"


@pytest.mark.parametrize("backend", ["twin", "live"])
def test_an_eval_without_its_zoo_exits_4_saying_what_to_do(tmp_path: Path, backend: str) -> None:
    # in the twin it was a traceback (TwinSetupError); both left a run folder behind
    config = tmp_path / "testbed.yaml"
    config.write_text(yaml.safe_dump({"zoo": {"dir": str(tmp_path / "no-zoo")},
                                      "run": {"out_dir": str(tmp_path / "runs")}}))  # fmt: skip
    out = run_testbed("eval", "-c", str(config), "--backend", backend, "--policies", "greedy")
    assert out.returncode == ExitCode.ZOO_MISSING, out.stderr
    assert "Traceback" not in out.stderr and "run `testbed zoo build" in out.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "content", [None, "not json", '{"x": 1}'], ids=["absent", "not-json", "not-a-calibration"]
)
def test_a_bad_calibration_file_exits_2_naming_it(
    tmp_path: Path, tiny_zoo: Path, content: str | None
) -> None:
    # was a traceback (CalibrationError) in the twin's evaluation and training
    calibration = tmp_path / "calibration.json"
    if content is not None:
        calibration.write_text(content)
    config = _tiny_config(tmp_path, tiny_zoo)
    for argv in (["eval", "--backend", "twin", "--policies", "greedy"], ["train", "--steps", "1"]):
        out = run_testbed(*argv, "-c", str(config), "--set", f"twin.calibration={calibration}")
        assert out.returncode == ExitCode.CONFIG_INVALID, out.stderr
        assert "Traceback" not in out.stderr and str(calibration) in out.stderr


def test_an_experiment_that_calibrates_without_its_zoo_exits_4(tmp_path: Path) -> None:
    # the calibration's own exit code, not FAILURE
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({"zoo": {"dir": str(tmp_path / "no")}}))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "probe", "config": "bench.yaml", "algorithms": ["greedy"], "seeds": [0],
        "sweep": {"key": "agents.count", "values": [2]}, "calibrate_slots": 1,
    }))  # fmt: skip
    out = run_testbed("experiment", "run", str(spec), "--out", str(tmp_path / "out"))
    assert out.returncode == ExitCode.ZOO_MISSING, out.stderr
    assert "calibration of agents.count=2 failed: no model zoo at" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_up_json_is_the_summary_and_status_json_sees_the_bench(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    meter = {"energy": {"meter": "estimated"}}
    config = _tiny_config(tmp_path, tiny_zoo, cloud=meter)
    data = yaml.safe_load(config.read_text())
    data["agents"].update(meter)
    data["edges"].update(meter)
    config.write_text(yaml.safe_dump(data))
    out = run_testbed("up", "-c", str(config), "--slots", "1", "--policy", "greedy",
                      "--keep", "--json", timeout=120)  # fmt: skip
    try:
        assert out.returncode == 0, out.stderr
        summary = strict_json(out.stdout)
        (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())
        assert summary == json.loads((run_dir / "summary.json").read_text())
        assert summary["tasks"] == 3 and "completion" in out.stderr  # the table: stderr
        status = run_testbed("status", "-c", str(config), "--json")
        assert status.returncode == 0, status.stderr
        bench = strict_json(status.stdout)
        assert bench["running"] is True and bench["run_dir"] == str(run_dir)
        kinds = {n["kind"] for n in bench["nodes"].values()}
        assert kinds == {"broker", "cloud", "edge", "agent"}
        assert all(n["process"] == "running" for n in bench["nodes"].values())
        edges = [n for n in bench["nodes"].values() if n["kind"] == "edge"]
        assert all(n["health"] == "serving" and "cache_used_mb" in n["edge"] for n in edges)
    finally:
        down = run_testbed("down", "-c", str(config))
    assert down.returncode == 0, down.stderr
