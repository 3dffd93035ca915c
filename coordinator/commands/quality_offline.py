"""`testbed quality profile` and `testbed quality experiment run|live|report`: the §C
experiments from the CLI (docs/quality-experiments.md), so a user never needs
`python -m`.

- `profile` measures μ_c, σ_c of every category on the medium model (and the score and
  latency curves) on the configured zoo and writes `measured-allocation.yaml`, which
  `testbed quality run --profile FILE` reads;
- `experiment run SPEC` runs the offline experiments (coordinator/quality_experiments.py);
- `experiment live SPEC` runs the live ones, one `testbed quality run` per method and
  seed (coordinator/quality_live_experiments.py);
- `experiment report DIR` writes a folder's report.md again from its JSON files.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, json_result
from coordinator.quality_spec import QualityExperimentSpec, load_spec, spec_with_sections
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.quality.gate import quality_gate_passed
from testbed.schema import SchemaError
from testbed.zoo.catalog import Catalog, CatalogError

if TYPE_CHECKING:
    from coordinator.quality_live_experiments import QualityRunner

MEASURED_FILE = "measured-allocation.yaml"


def _cli_command() -> str:
    """The command line as the user typed it (`testbed ...`), for the results' JSON."""
    return "testbed " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--zoo", default=None, help="the quality zoo's folder (default: the config's)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    add_json_flag(p)


def register_offline(commands: argparse._SubParsersAction, live_runner: QualityRunner) -> None:
    """The offline commands and `experiment live`, whose runs `live_runner` makes."""
    p = commands.add_parser(
        "profile",
        **help_texts(
            "measure each category's score distribution on the medium model (offline)",
            "testbed quality profile --zoo .zoo/demo --out runs/quality-profile",
            details="Generates every category's requests with the medium model and scores them\n"
            "with the zoo's evaluator (and score and latency against steps for every model);\n"
            f"writes profile.json, report.md and {MEASURED_FILE} (μ_c, σ_c, θ) for\n"
            f"`testbed quality run --profile OUT/{MEASURED_FILE}`.",
        ),
    )
    _common(p)
    p.add_argument("--spec", default=None, help="experiment spec for the counts (optional)")
    p.add_argument("--out", default=None, help="output folder (default OUT_DIR/quality-profile)")
    p.set_defaults(func=lambda args: json_result(args.json, lambda: run_profile_command(args)))
    group = commands.add_parser(
        "experiment",
        **help_texts(
            "the §C experiments: offline (run), live (live), report",
            "testbed quality experiment run experiments/quality_demo.yaml --zoo .zoo/demo",
        ),
    )
    sub = group.add_subparsers(dest="experiment_command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        **help_texts(
            "the offline §C experiments of a spec: profile, assignment, allocation",
            "testbed quality experiment run experiments/quality_demo.yaml --out out/q",
        ),
    )
    run.add_argument("spec", help="experiment spec (experiments/quality_*.yaml)")
    _common(run)
    run.add_argument("--out", default=None, help="output folder (default RUN_OUT_DIR/<name>)")
    run.add_argument(
        "--part",
        action="append",
        default=None,
        choices=["profile", "assignment", "allocation", "all"],
        help="run only these parts (repeatable; default all)",
    )
    run.add_argument("--profile", default=None, help="profile.json to plan with")
    run.set_defaults(func=lambda args: json_result(args.json, lambda: run_experiment(args)))
    live = sub.add_parser(
        "live",
        **help_texts(
            "the live §C experiments of a spec: one `testbed quality run` per method and seed",
            "testbed quality experiment live experiments/quality_live.yaml --out out/ql",
        ),
    )
    live.add_argument("spec", help="live experiment spec (experiments/quality_live*.yaml)")
    live.add_argument("--out", default=None, help="output folder (default runs/<name>)")
    live.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every run, after the spec's",
    )
    add_json_flag(live)
    live.set_defaults(func=lambda args: json_result(args.json, lambda: run_live(args, live_runner)))
    rep = sub.add_parser(
        "report",
        **help_texts(
            "write a results folder's report.md again from its JSON files",
            "testbed quality experiment report docs/results/quality_demo",
        ),
    )
    rep.add_argument("dir", help="a folder written by `experiment run` or `experiment live`")
    add_json_flag(rep)
    rep.set_defaults(func=lambda args: json_result(args.json, lambda: run_report(args)))


def _config_and_zoo(args: argparse.Namespace) -> tuple[TestbedConfig, Path]:
    """The config and the zoo folder, whose quality gate must have passed."""
    cfg = load_config(args.config, sets=list(args.set))
    zoo_dir = Path(args.zoo) if args.zoo else cfg.zoo_path()
    try:
        catalog = Catalog.load(zoo_dir)
    except CatalogError as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, f"{exc} (testbed zoo build)") from None
    except FileNotFoundError:
        why = f"no model zoo at {zoo_dir}: run `testbed zoo build` or pass --zoo DIR"
        raise TestbedExit(ExitCode.ZOO_MISSING, why) from None
    if not quality_gate_passed(catalog):
        why = "did not pass its quality gate: its scores are not worth measuring"
        raise TestbedExit(ExitCode.MODEL_INVALID, f"the zoo at {zoo_dir} {why} (docs/quality.md)")
    return cfg, zoo_dir.resolve()


def _spec(path: str | None, cfg: TestbedConfig) -> QualityExperimentSpec:
    """The spec in `path`, or the defaults with the config's allocation, quality and
    model ids."""
    if path is not None:
        try:
            return load_spec(path)
        except (OSError, SchemaError) as exc:
            raise TestbedExit(ExitCode.CONFIG_INVALID, f"{path}: {exc}") from None
    spec = spec_with_sections(QualityExperimentSpec(), cfg.allocation, cfg.quality)
    return dataclasses.replace(spec, models=dict(cfg.quality.live.model_ids))


def run_profile_command(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from coordinator.quality_experiments import run_all

    cfg, zoo_dir = _config_and_zoo(args)
    spec = _spec(args.spec, cfg)
    out = Path(args.out) if args.out else Path(cfg.run.out_dir) / "quality-profile"
    results = run_all(spec, zoo_dir, out, ("profile",), command=_cli_command())
    profile = results["profile"]
    print("category       mu_c     sigma_c   (medium model, offline profile)")
    for name, (mean, std) in profile["category_fits"].items():
        print(f"  {name:<12} {mean:8.2f} {std:8.2f}")
    thresholds = profile["score_thresholds"]
    print(f"thresholds     {', '.join(f'{t:.2f}' for t in thresholds)}")
    print(f"\nwrote {out}/ (profile.json, report.md, {MEASURED_FILE})")
    print(f"use it live: testbed quality run --profile {out / MEASURED_FILE}")
    return 0, {
        "out": str(out),
        "measured_allocation": str(out / MEASURED_FILE),
        "category_fits": profile["category_fits"],
        "score_thresholds": thresholds,
    }


def run_experiment(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from coordinator.quality_experiments import run_all

    cfg, zoo_dir = _config_and_zoo(args)
    spec = _spec(args.spec, cfg)
    out = Path(args.out) if args.out else Path(cfg.run.out_dir) / spec.name
    parts = tuple(args.part or ["all"])
    profile_file = Path(args.profile) if args.profile else None
    if "all" not in parts and "profile" not in parts:
        needed = profile_file or out / "profile.json"
        if not needed.is_file():
            raise TestbedExit(
                ExitCode.CONFIG_INVALID,
                f"no {needed}: run `testbed quality "
                f"experiment run {args.spec} --part profile` first, or pass "
                "--profile FILE",
            )
    run_all(spec, zoo_dir, out, parts, profile_file, command=_cli_command())
    print(f"wrote {out}/report.md")
    return 0, {"out": str(out), "parts": list(parts), "report": str(out / "report.md")}


def run_live(args: argparse.Namespace, live_runner: QualityRunner) -> tuple[int, dict[str, Any]]:
    from coordinator.quality_live_experiments import load_live_spec, run_live_experiment

    try:
        spec = load_live_spec(args.spec)
    except (OSError, SchemaError) as exc:
        raise TestbedExit(ExitCode.CONFIG_INVALID, f"{args.spec}: {exc}") from None
    spec = dataclasses.replace(spec, sets=[*spec.sets, *args.set])
    out = Path(args.out) if args.out else Path("runs") / spec.name
    result = run_live_experiment(spec, out, live_runner, command=_cli_command())
    print(f"wrote {out}/report.md")
    return 0, {"out": str(out), "report": str(out / "report.md"), "runs": result["runs"]}


def run_report(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from coordinator.quality_live_experiments import LIVE_FILE, write_live_report
    from coordinator.quality_report import write_report

    folder = Path(args.dir)
    if (folder / LIVE_FILE).is_file():
        path = write_live_report(folder)
    elif any((folder / f"{n}.json").is_file() for n in ("profile", "assignment", "allocation")):
        path = write_report(folder)
    else:
        raise TestbedExit(
            ExitCode.USAGE,
            f"{folder} has no {LIVE_FILE}, profile.json, assignment.json or allocation.json",
        )
    print(f"wrote {path}")
    return 0, {"report": str(path)}
