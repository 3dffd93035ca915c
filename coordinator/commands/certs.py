"""`testbed certs init | issue | list`: the bench's CA and its nodes' certificates
(docs/security.md).

Everything lives in `security.certs_dir` of the config (`-c`, `--set`): `init` makes
the CA and the coordinator's certificate, `issue` a node's (its role from the section
its id is in, its addresses from its inventory host), `list` shows what is there and
whether each certificate verifies against the CA. `cryptography` is imported when a
command runs: without it the command says so (exit 10), not a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, json_result
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.ids import node_id_problem
from testbed.security.roles import COORDINATOR_ID, Role


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `certs` command group to the testbed CLI."""
    certs = subparsers.add_parser("certs", **help_texts(
        "make and list the bench's TLS certificates (CA, one per node)",
        "testbed certs init", "testbed certs issue --all", "testbed certs list --json",
        details="Files in security.certs_dir (default .testbed/certs); docs/security.md.",
    ))  # fmt: skip
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", **help_texts(
        "make the bench's CA and the coordinator's certificate",
        "testbed certs init", "testbed certs init -c bench.yaml --force",
        details="An existing CA is kept (exit 15) unless --force: replacing it invalidates\n"
        "every certificate it signed (issue them again with `testbed certs issue --all`).",
    ))  # fmt: skip
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_init)
    issue = sub.add_parser("issue", **help_texts(
        "issue a node's certificate (or every node's) with the bench's CA",
        "testbed certs issue edge-0", "testbed certs issue --all",
        "testbed certs issue broker --role broker --address 198.18.0.1",
        details="The role comes from the section the id is in (cloud, edges, agents), the\n"
        "addresses from the node's inventory host (else the host it listens on). A\n"
        "certificate still good for that role and those addresses is kept unless --force.",
    ))  # fmt: skip
    issue.add_argument("node", nargs="?", help="node id (cloud, edge-N, agent-N, coordinator)")
    issue.add_argument(
        "--all", action="store_true", help="every node of the config, and the coordinator"
    )
    issue.add_argument("--role", choices=[r.value for r in Role], help="default: from the id")
    issue.add_argument("--address", action="append", default=[], metavar="A",
                       help="IP address or DNS name of the node (repeatable)")  # fmt: skip
    issue.add_argument("--force", action="store_true", help="issue anew even if still good")
    issue.set_defaults(func=_issue)
    show = sub.add_parser("list", **help_texts(
        "list the certificates: node, role, SANs, expiry, whether each verifies",
        "testbed certs list", "testbed certs list --json",
    ))  # fmt: skip
    add_json_flag(show)
    show.set_defaults(func=_list)
    for p in (init, issue, show):
        p.add_argument("-c", "--config", default=None, help="testbed YAML (security.certs_dir)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def _library() -> Any:
    """testbed.security.certs, or DEPENDENCY_MISSING when `cryptography` is missing."""
    try:
        from testbed.security import certs
    except ImportError as exc:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING,
            f"`testbed certs` needs cryptography ({exc}): pip install 'aigc-testbed[coordinator]'",
        ) from None
    return certs


def _certs_dir(cfg: TestbedConfig) -> Path:
    return Path(cfg.security.certs_dir)


def _init(args: argparse.Namespace) -> int:
    certs = _library()
    cfg = load_config(args.config, sets=args.set)
    try:
        ca = certs.create_ca(_certs_dir(cfg), force=args.force)
    except certs.CaExists as exc:
        raise TestbedExit(ExitCode.ALREADY_EXISTS, str(exc)) from None
    print(f"CA: {certs.ca_cert_path(_certs_dir(cfg))} ({ca.certificate.subject.rfc4514_string()}, "
          f"valid until {ca.certificate.not_valid_after_utc:%Y-%m-%d})")  # fmt: skip
    if args.force:
        print(
            "the CA was replaced: issue every node's certificate again (testbed certs issue --all)"
        )
    _print_issued(certs, certs.issue_node(cfg, COORDINATOR_ID, force=True))
    return 0


def _issue(args: argparse.Namespace) -> int:
    if bool(args.all) == bool(args.node):
        raise TestbedExit(ExitCode.USAGE, "testbed certs issue: give a NODE or --all (not both)")
    if args.node and node_id_problem(args.node):
        raise TestbedExit(ExitCode.USAGE, f"testbed certs issue: {node_id_problem(args.node)}")
    if args.all and (args.role or args.address):
        raise TestbedExit(ExitCode.USAGE, "testbed certs issue --all: --role and --address "
                          "name one node's; each node's come from the config")  # fmt: skip
    certs = _library()
    problems = [certs.address_problem(a.strip()) for a in args.address]
    if any(problems):
        raise TestbedExit(ExitCode.USAGE, f"--address: {next(p for p in problems if p)}")
    cfg = load_config(args.config, sets=args.set)
    node_ids = [COORDINATOR_ID, *cfg.node_ids()] if args.all else [args.node]
    role = Role(args.role) if args.role else None
    try:
        for node_id in node_ids:
            issued = certs.issue_node(
                cfg, node_id, role=role, addresses=args.address, force=args.force
            )
            _print_issued(certs, issued)
    except certs.CertsError as exc:
        unknown = not args.all and role is None and certs.role_of(cfg, args.node) is None
        raise TestbedExit(ExitCode.USAGE if unknown else ExitCode.CERTIFICATE_INVALID,
                          str(exc)) from None  # fmt: skip
    return 0


def _print_issued(certs: Any, issued: Any) -> None:
    facts = certs.describe(issued.path, None)
    what = "kept (still good; --force issues anew)" if issued.kept else "issued"
    print(f"{issued.node_id} ({issued.role.value}): {what} {issued.path}, valid until "
          f"{facts.not_after[:10]}; SANs {', '.join(facts.sans)}")  # fmt: skip


def _list(args: argparse.Namespace) -> int:
    certs = _library()
    cfg = load_config(args.config, sets=args.set)
    folder = _certs_dir(cfg)

    def body() -> tuple[int, Any]:
        ca = certs.describe_ca(folder)
        rows = certs.list_certificates(folder) if folder.is_dir() else []
        print(f"{folder}: CA {'valid until ' + ca.not_after[:10] if ca else 'missing (init)'}")
        for row in rows:
            verdict = "verifies" if row.verifies else f"DOES NOT VERIFY: {row.problem}"
            expiry = f"expires {row.not_after[:10]} ({row.expires_in_days:.0f} d)"
            print(f"  {row.node_id:<12} {row.role or '?':<11} {expiry}  {verdict}")
            print(f"      {', '.join(row.sans)}")
        if not rows:
            print("  no node certificates: testbed certs issue --all")
        return 0, {"certs_dir": str(folder), "ca": ca, "certificates": rows}

    return json_result(args.json, body)
