"""`testbed lab up | down | status`: a bench of namespaced hosts on this machine, each
with its own address, link, sshd and install prefix, to rehearse `testbed deploy`
without the hardware (coordinator/lab/, docs/lab.md)."""

from __future__ import annotations

import argparse
import math
import sys

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from coordinator.lab import (
    DEFAULT_LAB_DIR,
    DEFAULT_LAB_NAME,
    DEFAULT_SUBNET,
    DownReport,
    format_status,
    lab_down,
    lab_status,
    lab_up,
    make_plan,
    state_status,
)
from coordinator.lab.plan import HOSTS_MAX
from testbed.exit_codes import ExitCode, TestbedExit

RATE_MBIT_MAX = 100_000.0
DELAY_MS_MAX = 10_000.0


def _bounded(name: str, low: float, high: float) -> type:
    """An argparse `type` for a float in (low, high]: a bad value is a usage error."""

    def parse(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and low < value <= high):
            raise ValueError
        return value

    parse.__name__ = f"{name} in ({low:g}, {high:g}]"  # argparse's message names it
    return parse  # type: ignore[return-value]


def _hosts_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= HOSTS_MAX:
        raise ValueError
    return value


_hosts_count.__name__ = f"count in 1..{HOSTS_MAX}"


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", **help_texts(
        "a bench of namespaced hosts on this machine, each with its own sshd",
        "testbed lab up --hosts 3", "testbed lab status --json", "testbed lab down",
        details="Needs root and Linux network namespaces (docs/lab.md).",
    ))  # fmt: skip
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    up = lab_sub.add_parser("up", **help_texts(
        "bring N namespaced hosts up and write their inventory",
        "testbed lab up --hosts 3", "testbed lab up --hosts 2 --rate-mbit 100 --delay-ms 5",
        details="Each host: a network namespace on bridge <name>-br0 (which holds the\n"
        "coordinator's address), an address in --subnet, its own sshd (root, the lab's\n"
        "key) and prefix. Writes DIR/inventory.yaml and DIR/lab.json. --rate-mbit shapes\n"
        "each host's link with tbf; --delay-ms needs netem, which not every kernel has:\n"
        "the output says what was applied. A lab already in DIR: exit 15 (ALREADY_EXISTS)\n"
        "unless --force. Not root: exit 14 (NOT_PERMITTED).",
    ))  # fmt: skip
    up.add_argument("--hosts", type=_hosts_count, required=True, help="number of hosts")
    up.add_argument("--subnet", default=DEFAULT_SUBNET, help="IPv4 subnet of the lab "
                    f"(default {DEFAULT_SUBNET}, RFC 2544's benchmarking block)")  # fmt: skip
    up.add_argument("--rate-mbit", type=_bounded("rate", 0, RATE_MBIT_MAX), default=None,
                    help="shape each host's link to this rate, each way (tbf)")  # fmt: skip
    up.add_argument("--delay-ms", type=_bounded("delay", 0, DELAY_MS_MAX), default=None,
                    help="one-way delay on each host's link (netem, where the kernel "
                    "has it)")  # fmt: skip
    up.add_argument("--force", action="store_true", help="tear down a lab in DIR and rebuild it")
    up.set_defaults(func=run_lab_up)
    status = lab_sub.add_parser("status", **help_texts(
        "list the lab's hosts, whether each one's sshd answers, and the shaping",
        "testbed lab status", "testbed lab status --dir /tmp/lab --json",
        details="No lab in DIR: exit 11 (NOT_RUNNING); with --json, {\"running\": false, ...}.",
    ))  # fmt: skip
    add_json_flag(status)
    status.set_defaults(func=run_lab_status)
    down = lab_sub.add_parser("down", **help_texts(
        "remove everything `lab up` made; safe to run twice", "testbed lab down",
        details="Stops each host's sshd (only while its PID still is that sshd) and what\n"
        "else runs in the hosts, deletes the qdiscs, veths, namespaces and bridge, then the\n"
        "lab's files. No lab in DIR: nothing to do, exit 0.",
    ))  # fmt: skip
    for p in (up, status, down):
        p.add_argument("--dir", default=DEFAULT_LAB_DIR,
                       help=f"the lab's folder (default {DEFAULT_LAB_DIR})")  # fmt: skip
    up.add_argument("--name", default=DEFAULT_LAB_NAME, help="prefix of the lab's "
                    f"namespaces and links (default {DEFAULT_LAB_NAME})")  # fmt: skip
    down.set_defaults(func=run_lab_down)


def run_lab_up(args: argparse.Namespace) -> int:
    plan = make_plan(args.hosts, args.dir, args.subnet, lab_name=args.name,
                     rate_mbit=args.rate_mbit, delay_ms=args.delay_ms)  # fmt: skip
    state = lab_up(plan, force=args.force)
    print(format_status(state_status(state)))
    if state.shaping.delay_ms and not state.shaping.delay_applied:
        print(f"warning: --delay-ms {state.shaping.delay_ms:g} was not applied: this kernel has "
              "no netem (sch_netem)", file=sys.stderr)  # fmt: skip
    return 0


def run_lab_status(args: argparse.Namespace) -> int:
    status = lab_status(args.dir)
    if status is None:
        if args.json:  # a script reads the state, the person the error
            print_json({"running": False, "lab_dir": args.dir})
        raise TestbedExit(ExitCode.NOT_RUNNING, f"no lab in {args.dir} (no lab.json there)")
    if args.json:
        print_json(status)
    else:
        print(format_status(status))
    return 0


def run_lab_down(args: argparse.Namespace) -> int:
    report = lab_down(args.dir)
    if report is None:
        print(f"no lab in {args.dir}: nothing to do")
        return 0
    print(_describe(report))
    if report.not_removed:
        left = ", ".join(report.not_removed)
        raise TestbedExit(ExitCode.FAILURE, f"{left} could not be removed; lab.json in "
                          f"{args.dir} is kept: run `lab down` again")  # fmt: skip
    return 0


def _describe(report: DownReport) -> str:
    done = "partly down" if report.not_removed else "down"
    lines = [f"lab in {report.lab_dir} is {done}: {report.sshds_stopped} sshd(s) and "
             f"{report.other_processes_stopped} other process(es) stopped, "
             f"{len(report.namespaces_deleted)} namespace(s) and "
             f"{len(report.links_deleted)} link(s) deleted"]  # fmt: skip
    lines += [f"  left alone: {note}" for note in report.left_alone]
    return "\n".join(lines)
