"""`testbed`: the coordinator's command line.

Each command lives in its own module exposing `register(subparsers)`; this module only
assembles them and maps errors to the exit-code registry (testbed/exit_codes.py):
a bad config exits 2 with every bad key path and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from testbed.config import DEFAULT_CONFIG_NAME, load_config
from testbed.exit_codes import run_with_exit_codes, table

# gRPC's core logs an INFO line whenever the coordinator starts a node process while
# its own gRPC threads run; the child only execs, so the line is noise.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# Subcommands by module: only the chosen command's module is imported, so
# `testbed --help` stays fast and a command's heavy dependencies (torch) load only
# when it runs. Each module's `register(subparsers)` adds the commands listed here.
COMMANDS: dict[str, tuple[str, str]] = {
    "zoo": ("coordinator.zoo.cli", "build and list the generative model zoo"),
    "up": ("coordinator.commands.up", "start the bench and run an experiment (the main job)"),
    "status": ("coordinator.commands.bench_state", "show a bench left running by `up --keep`"),
    "down": ("coordinator.commands.bench_state", "stop a bench left running by `up --keep`"),
    "train": ("coordinator.commands.train", "train MADDPG-MATO or a baseline (twin or live)"),
    "eval": ("coordinator.commands.eval", "compare policies on the same seeds and tasks"),
    "experiment": (
        "coordinator.experiments",
        "run a paper experiment: train in the twin, evaluate, report",
    ),
    "report": ("coordinator.report", "figures and tables from experiment results"),
    "calibrate": (
        "coordinator.commands.calibrate",
        "measure the live bench for the twin and report the twin's fidelity gap",
    ),
}


def _add_config_commands(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="work with testbed.yaml")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a testbed file and print a summary")
    check.add_argument("file", nargs="?", default=None, help="default: ./testbed.yaml")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    check.add_argument("--print", action="store_true", help="print the resolved config")
    check.set_defaults(func=_config_check)

    codes = sub.add_parser("exit-codes", help="list the exit codes of every testbed command")
    codes.set_defaults(func=lambda _args: print(table()) or 0)


def _config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file, sets=args.set)
    if args.print:
        print(cfg.to_yaml(), end="")
        return 0
    broker = cfg.broker.url or f"embedded ({cfg.broker.embedded.value})"
    types = ", ".join(t.name for t in cfg.tasks.active_types)
    source = args.file or (DEFAULT_CONFIG_NAME if Path(DEFAULT_CONFIG_NAME).exists() else None)
    print(f"{source or 'built-in defaults'}: ok")
    print(f"  bench: 1 cloud, {cfg.edges.count} edges, {cfg.agents.count} agents; broker {broker}")
    print(f"  zoo: {cfg.zoo.scale.value} in {cfg.zoo.dir}; task types: {types}")
    return 0


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed",
        description="Hardware-in-the-loop testbed for AIGC task offloading in IIoT edge computing.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_config_commands(sub)
    chosen = _chosen_command(argv)
    chosen_module = COMMANDS[chosen][0] if chosen in COMMANDS else None
    if chosen_module is not None:
        importlib.import_module(chosen_module).register(sub)
    for name, (module, text) in COMMANDS.items():
        if module != chosen_module:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_with_exit_codes(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
