"""`testbed`: the coordinator's command line.

Each command lives in its own module exposing `register(subparsers)`; this module only
assembles them, adds what every command shares (`--version`, `-v`/`-q` before or after
the command) and maps errors to the exit-code registry (testbed/exit_codes.py): a wrong
command line exits 3 with argparse's one-line message, a bad config exits 2 with every
bad key path, never a traceback (docs/cli.md).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from testbed.config import DEFAULT_CONFIG_NAME, load_config
from testbed.exit_codes import ExitCode, UsageArgumentParser, run_with_exit_codes, table

# gRPC's core logs an INFO line whenever the coordinator starts a node process while
# its own gRPC threads run; the child only execs, so the line is noise.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

DISTRIBUTION = "aigc-testbed"
"""The installed distribution whose version `testbed --version` prints."""

# Subcommands by module: only the chosen command's module is imported, so
# `testbed --help` stays fast and a command's heavy dependencies (torch) load only
# when it runs. Each module's `register(subparsers)` adds the commands listed here.
COMMANDS: dict[str, tuple[str, str]] = {
    "zoo": ("coordinator.zoo.cli", "build and inspect the generative model zoo"),
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
    "lab": (
        "coordinator.commands.lab",
        "a bench of namespaced hosts on this machine, each with its own sshd",
    ),
    "certs": (
        "coordinator.commands.certs",
        "make and list the bench's TLS certificates (CA, one per node)",
    ),
    "deploy": (
        "coordinator.commands.deploy",
        "install and start the bench's daemons on the inventory's hosts over SSH",
    ),
    "monitor": (
        "coordinator.commands.monitor",
        "watch a bench live (dashboard or JSON snapshot) or replay a run's telemetry",
    ),
    "exporter": ("coordinator.commands.exporter", "serve the bench's metrics to Prometheus"),
    "quality": (
        "coordinator.commands.quality",
        "the §C system live: requests by category, models with compute shares, scored",
    ),
    "coedge": (
        "coordinator.commands.coedge",
        "train and compare the §B schedulers (DDRL-AMSA and its baselines) in their twin",
    ),
}

_EXAMPLES = """\
examples:
  testbed config check                    validate ./testbed.yaml
  testbed zoo build --scale tiny          build the small model zoo
  testbed up --policy greedy --slots 20   run the bench for 20 slots
  testbed status --json                   a bench left running, for a script
  testbed COMMAND --help                  a command's flags and examples

Exit codes: `testbed exit-codes` (docs/cli.md)."""


def installed_version() -> str:
    """The installed distribution's version; a checkout run without installing says so."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _add_config_commands(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", **help_texts(
        "work with testbed.yaml", "testbed config check --set edges.count=3 --print",
    ))  # fmt: skip
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = config_sub.add_parser("check", **help_texts(
        "validate a testbed file and print a summary",
        "testbed config check", "testbed config check bench.yaml --set agents.count=8 --print",
        details="A wrong key, type or range names the key path and exits 2.",
    ))  # fmt: skip
    check.add_argument("file", nargs="?", default=None, help="default: ./testbed.yaml")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    check.add_argument("--print", action="store_true", help="print the resolved config")
    check.set_defaults(func=_config_check)

    codes = sub.add_parser("exit-codes", **help_texts(
        "list the exit codes of every testbed command", "testbed exit-codes --json",
    ))  # fmt: skip
    add_json_flag(codes)
    codes.set_defaults(func=_exit_codes)


def _exit_codes(args: argparse.Namespace) -> int:
    if args.json:
        print_json({"exit_codes": [{"code": c.value, "name": c.name, "meaning": c.help}
                                   for c in ExitCode]})  # fmt: skip
    else:
        print(table())
    return 0


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
    from coordinator.bench_sanity import bench_warnings, catalog_if_built  # imported late: heavy

    for warning in bench_warnings(cfg, catalog_if_built(cfg)):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers of the commands themselves (`up`, `zoo build`), not of the groups."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield parser
    for group in groups:
        for child in dict.fromkeys(group.choices.values()):  # an alias is the same parser
            yield from _leaf_parsers(child)


def _add_verbosity_flags(parser: argparse.ArgumentParser, suffix: str = "") -> None:
    # After the command the counts land in their own fields: argparse would otherwise
    # let the command's defaults overwrite a `-v` given before it.
    where = " (also after the command)" if not suffix else ""
    parser.add_argument("-v", "--verbose", action="count", default=0, dest="verbose" + suffix,
                        help="more log output: -v info, -vv debug" + where)  # fmt: skip
    parser.add_argument("-q", "--quiet", action="count", default=0, dest="quiet" + suffix,
                        help="errors only, no progress lines" + where)  # fmt: skip


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = UsageArgumentParser(
        prog="testbed",
        description="Hardware-in-the-loop testbed for AIGC task offloading in IIoT edge computing.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"testbed {installed_version()}")
    _add_verbosity_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_config_commands(sub)
    chosen = _chosen_command(argv)
    chosen_module = COMMANDS[chosen][0] if chosen in COMMANDS else None
    if chosen_module is not None:
        importlib.import_module(chosen_module).register(sub)
    for name, (module, text) in COMMANDS.items():
        if module != chosen_module:
            sub.add_parser(name, help=text, add_help=False)
    for leaf in _leaf_parsers(parser):
        _add_verbosity_flags(leaf, suffix="_after_command")
    return parser


def verbosity(args: argparse.Namespace) -> int:
    """-v count minus -q count, before and after the command together."""
    return (args.verbose + getattr(args, "verbose_after_command", 0)
            - args.quiet - getattr(args, "quiet_after_command", 0))  # fmt: skip


def log_level(level_of_verbosity: int) -> int:
    """-q: errors only (and no progress lines, coordinator/progress.py); none: warnings;
    -v: info; -vv: debug."""
    if level_of_verbosity < 0:
        return logging.ERROR
    return [logging.WARNING, logging.INFO, logging.DEBUG][min(level_of_verbosity, 2)]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = log_level(verbosity(args))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Also when logging was set up before (a command run in-process after another): each
    # command's level is its own flags', never a previous command's `-q`.
    logging.getLogger().setLevel(level)
    return run_with_exit_codes(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
