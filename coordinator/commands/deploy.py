"""`testbed deploy`: install and start the bench's daemons on the inventory's hosts over
SSH, or look at, stop, read or remove them (docs/deploy.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from testbed.config import HostConfig, TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("deploy", **help_texts(
        "install and start the bench's daemons on the inventory's hosts over SSH",
        "testbed deploy --inventory .testbed/lab/inventory.yaml",
        "testbed deploy --hosts jetson-1,jetson-2 --dry-run",
        "testbed deploy --status --json", "testbed deploy --logs edge-0 --lines 50",
        details="Every host at once: facts (Python, architecture, JetPack, GPU, clock, "
        "systemd), a plan,\nthe changes it would make, then it makes them: the project's "
        "wheel and its dependencies\n(no index needed on the host), a venv, the host's "
        "config and certificates, a service per\ndaemon, started and checked (gRPC "
        "health). A second deploy changes nothing: \"0 changes\".\nA host that fails is "
        "named with why; the others go on. Exit 18 (DEPLOY_FAILED) if any\nfailed.",
    ))  # fmt: skip
    parser.add_argument(
        "-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)"
    )
    parser.add_argument(
        "--inventory",
        metavar="FILE",
        default=None,
        help="the inventory's hosts from this file (its `hosts:`), not the config's",
    )
    parser.add_argument("--hosts", metavar="H,...", default=None, help="only these hosts")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--dry-run", action="store_true", help="facts, plan and changes; change nothing"
    )
    what.add_argument(
        "--status",
        action="store_true",
        help="per host and node: installed version, service state, health",
    )
    what.add_argument("--stop", action="store_true", help="stop every deployed daemon")
    what.add_argument("--logs", metavar="NODE", default=None, help="the end of NODE's log")
    what.add_argument(
        "--uninstall",
        action="store_true",
        help="stop everything and remove what deploy made under each prefix",
    )
    parser.add_argument("--lines", type=int, default=100, help="with --logs: lines (default 100)")
    add_json_flag(parser)
    parser.set_defaults(func=run_deploy)


def load_bench(args: argparse.Namespace) -> TestbedConfig:
    """The config, its inventory replaced by `--inventory FILE`'s `hosts:` if given."""
    return load_config(args.config, sets=args.set, inventory=args.inventory)


def chosen_hosts(cfg: TestbedConfig, names: str | None) -> list[HostConfig]:
    hosts = cfg.inventory.hosts
    if not hosts:
        raise TestbedExit(ExitCode.CONFIG_INVALID, "inventory.hosts: no hosts to deploy to "
                          "(list them in testbed.yaml or pass --inventory FILE)")  # fmt: skip
    if names is None:
        return list(hosts)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in {h.name for h in hosts}]
    if unknown:
        raise TestbedExit(ExitCode.USAGE, f"--hosts: no host {', '.join(unknown)} in the "
                          f"inventory (it has {', '.join(h.name for h in hosts)})")  # fmt: skip
    return [h for h in hosts if h.name in wanted]


def run_deploy(args: argparse.Namespace) -> int:
    from coordinator.cli import verbosity

    if args.json and not args.status:
        raise TestbedExit(ExitCode.USAGE, "--json goes with --status")
    cfg = load_bench(args)
    hosts = chosen_hosts(cfg, args.hosts)
    level = verbosity(args)
    if args.status:
        return _status(cfg, hosts, args.json)
    if args.stop or args.uninstall:
        return _stop_or_uninstall(cfg, hosts, uninstall=args.uninstall)
    if args.logs:
        return _logs(cfg, args.logs, args.lines)
    from coordinator.deploy.runner import Printer, deploy_all
    from coordinator.remote_bench import check_remote_config

    check_remote_config(cfg)
    out = Printer(quiet=level < 0, verbose=level > 0)
    results = asyncio.run(deploy_all(cfg, hosts, out, dry_run=args.dry_run))
    for r in results:
        if not r.ok:
            out.failure(r.name, r.reason or "a daemon did not answer its health check")
    changes = sum(r.changes for r in results)
    failed = [r.name for r in results if not r.ok]
    verb = "would change" if args.dry_run else "changed"
    print(f"deploy: {len(results) - len(failed)} of {len(results)} host(s) ok, {verb} "
          f"{changes} thing(s)" + (f"; failed: {', '.join(failed)}" if failed else "")
          + ("; 0 changes" if changes == 0 and not failed else ""), flush=True)  # fmt: skip
    return int(ExitCode.DEPLOY_FAILED) if failed else 0


def _failed(name: str, exc: Exception) -> None:
    print(f"[{name}] FAILED: {exc}", file=sys.stderr, flush=True)


def _status(cfg: TestbedConfig, hosts: list[HostConfig], as_json: bool) -> int:
    from coordinator.deploy.manage import host_status, on_hosts

    results = asyncio.run(on_hosts(cfg, hosts, lambda link: host_status(link, cfg)))
    doc: dict[str, Any] = {}
    for name, result in results.items():
        if isinstance(result, Exception):
            doc[name] = {"reachable": False, "reason": str(result)}
            if not as_json:
                _failed(name, result)
            continue
        doc[name] = {"reachable": True, **result}
        if not as_json:
            _print_status(name, result)
    if as_json:
        print_json({"hosts": doc})
    if any(not h["reachable"] for h in doc.values()):
        return int(ExitCode.DEPLOY_FAILED)
    down = [n for h in doc.values() for n, s in h["nodes"].items() if s["health"] != "serving"]
    return int(ExitCode.NOT_RUNNING) if down or not any(h["nodes"] for h in doc.values()) else 0


def _print_status(name: str, result: dict[str, Any]) -> None:
    if result["installed"] is None and not result["nodes"]:
        print(f"[{name}] nothing deployed", flush=True)
        return
    print(f"[{name}] installed: aigc-testbed {result['installed']}, Python "
          f"{result.get('python')}, manager {result['manager']}", flush=True)  # fmt: skip
    for node_id, s in result["nodes"].items():
        health = f"health {s['health']} at {s['address']}" if s["health"] else "no health"
        print(f"[{name}] {node_id}: {s['service']}; {health}", flush=True)


def _stop_or_uninstall(cfg: TestbedConfig, hosts: list[HostConfig], *, uninstall: bool) -> int:
    from coordinator.deploy.manage import on_hosts, stop_host, uninstall_host

    job = uninstall_host if uninstall else stop_host
    results = asyncio.run(on_hosts(cfg, hosts, lambda link: job(link, cfg)))
    failed = 0
    for name, result in results.items():
        if isinstance(result, Exception):
            _failed(name, result)
            failed += 1
        elif not result:
            print(f"[{name}] nothing deployed", flush=True)
        elif uninstall:
            print(f"[{name}] removed {len(result)} path(s) and the services", flush=True)
        else:
            print(f"[{name}] stopped {', '.join(result)}", flush=True)
    return int(ExitCode.DEPLOY_FAILED) if failed else 0


def _logs(cfg: TestbedConfig, node_id: str, lines: int) -> int:
    from coordinator.deploy.manage import node_log, on_hosts

    host = cfg.inventory.host_of(node_id)
    if host is None:
        known = ", ".join(n for h in cfg.inventory.hosts for n in h.nodes)
        raise TestbedExit(ExitCode.USAGE, f"--logs: no host runs {node_id} (nodes: {known})")
    results = asyncio.run(on_hosts(cfg, [host], lambda link: node_log(link, cfg, node_id, lines)))
    result = results[host.name]
    if isinstance(result, Exception):
        _failed(host.name, result)
        return int(ExitCode.DEPLOY_FAILED)
    sys.stdout.write(result)
    return 0
