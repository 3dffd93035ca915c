"""What the coordinator needs of a bench of hosts (`inventory.remote`, docs/bench-of-hosts.md)
before it drives one: the registry's addresses, the broker its nodes reach, and the
config keys that must say where those are.

On such a bench `testbed deploy` has started every node as a service, with
`--registry` = `registry.advertise` and `--broker` = `broker.url`, before the
coordinator runs: the coordinator starts no node, it listens where they look for it,
and waits until every node of the inventory has registered (coordinator/live.py).

The registry listens at `registry.listen` (HOST:PORT; the embedded default
`127.0.0.1:0`: loopback, a free port) and tells nodes `registry.advertise` (empty: the
listen address). The broker is `broker.url`; when its host is an address of this
machine and nothing listens there yet, the coordinator starts its embedded broker
there (bound to `broker.host` when that is a wildcard address, else to the URL's
host), so a lab or a small bench needs no broker service of its own.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from urllib.parse import urlparse

import psutil

from testbed.broker import port_in_use
from testbed.config import BrokerConfig, TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit

WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]"})
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def split_host_port(address: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) → (host without brackets, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def registry_listen(cfg: TestbedConfig) -> tuple[str, int]:
    """(host, port) the registry listens on (`registry.listen`)."""
    return split_host_port(cfg.registry.listen)


def advertised_registry(cfg: TestbedConfig, bound_port: int) -> str:
    """The registry's address handed to nodes: `registry.advertise`, or the listen
    address with the port actually bound (port 0 picks a free one)."""
    if cfg.registry.advertise:
        return cfg.registry.advertise
    host, _ = split_host_port(cfg.registry.listen)
    return f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"


def remote_config_problems(cfg: TestbedConfig) -> list[tuple[str, str]]:
    """(key, what is wrong) for a bench of hosts whose nodes could not find the
    coordinator or the broker; empty for the embedded bench."""
    if not cfg.inventory.remote:
        return []
    problems: list[tuple[str, str]] = []
    hosts_local = all(is_loopback(h.address) for h in cfg.inventory.hosts)
    listen_host, listen_port = registry_listen(cfg)
    if listen_port == 0:
        why = "its services are started with the registry's address (e.g. 0.0.0.0:50051)"
        problems.append(("registry.listen", f"a bench of hosts needs a fixed port: {why}"))
    if is_loopback(listen_host) and not hosts_local:
        fix = "listen on 0.0.0.0 or an address they reach"
        problems.append(("registry.listen", f"{listen_host} is loopback: the hosts cannot "
                         f"reach it ({fix})"))  # fmt: skip
    advertised = cfg.registry.advertise or cfg.registry.listen
    advertised_host = split_host_port(advertised)[0]
    if advertised_host in {a.strip("[]") for a in WILDCARD_ADDRESSES}:
        problems.append(("registry.advertise", "set the coordinator's address as the hosts see "
                         f"it: nodes cannot dial {advertised}"))  # fmt: skip
    elif is_loopback(advertised_host) and not hosts_local:
        problems.append(("registry.advertise", f"{advertised} is loopback: set the "
                         "coordinator's address as the hosts see it"))  # fmt: skip
    if not cfg.broker.url:
        problems.append(("broker.url", "a bench of hosts needs the broker's URL its nodes "
                         "connect to (mqtt://HOST:PORT; the coordinator starts its embedded "
                         "broker there when HOST is this machine)"))  # fmt: skip
    elif is_loopback(urlparse(cfg.broker.url).hostname or "") and not hosts_local:
        problems.append(("broker.url", f"{cfg.broker.url} is loopback: the hosts cannot reach it"))
    return problems


def check_remote_config(cfg: TestbedConfig) -> None:
    """CONFIG_INVALID naming the first key a bench of hosts cannot run with."""
    problems = remote_config_problems(cfg)
    if problems:
        key, message = problems[0]
        raise TestbedExit(ExitCode.CONFIG_INVALID, f"{key}: {message}")


def embedded_broker_config(cfg: TestbedConfig) -> BrokerConfig | None:
    """The broker settings to start the embedded broker with, or None to use
    `broker.url` as it is (a broker someone else runs).

    Embedded bench: without `broker.url`, the configured embedded broker (as always).
    Bench of hosts: at `broker.url` when its host is this machine's and its port is
    free (nothing serves it yet)."""
    broker = cfg.broker
    if not broker.url:
        return broker
    if not cfg.inventory.remote:
        return None
    parsed = urlparse(broker.url)
    host, port = parsed.hostname or "", parsed.port or 1883
    if not is_local_address(host) or port_in_use(host, port):
        return None
    bind = broker.host if broker.host in WILDCARD_ADDRESSES else host
    return dataclasses.replace(broker, url=None, host=bind, port=port)


def is_local_address(host: str) -> bool:
    """`host` names an interface of this machine (so a server here can listen on it)."""
    if is_loopback(host):
        return True
    try:
        wanted = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    mine = {a.address.split("%")[0] for nic in psutil.net_if_addrs().values() for a in nic}
    return bool(wanted & mine)


def waiting_line(cfg: TestbedConfig, registry_address: str) -> str:
    """What a command says while it waits for the nodes of a bench of hosts."""
    nodes, hosts = len(cfg.node_ids()), len(cfg.inventory.hosts)
    return (f"bench of {hosts} host(s): waiting for its {nodes} node(s) to register at "
            f"{registry_address} (at most {cfg.run.start_timeout_s:g} s)")  # fmt: skip
