"""The lab's network in the kernel: a bridge in the root namespace, one network
namespace per host, a veth pair from each namespace to the bridge (docs/lab.md).

Each link the lab makes is aliased with the lab's owner alias (coordinator/lab/
state.py), and `down` removes a link only while it carries that alias, a namespace
only while its `eth0` does (or while it holds nothing but loopback: the moment
between `ip netns add` and its veth). A lab torn down by hand and a same-named one
made since by another lab are then never confused.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from coordinator.lab.plan import HOST_IN_NAMESPACE_LINK, HostPlan, LabPlan
from coordinator.lab.tools import ip


def _links(netns: str | None = None, dev: str | None = None) -> list[dict[str, Any]]:
    args = ["-j", "link", "show", *(("dev", dev) if dev else ())]
    done = ip(*args, netns=netns, check=False)
    if done.returncode != 0:
        return []
    parsed = json.loads(done.stdout or "[]")
    return parsed if isinstance(parsed, list) else []


def link_alias(dev: str, netns: str | None = None) -> str | None:
    """The alias of link `dev`; None if there is no such link (or no such namespace)."""
    found = _links(netns, dev)
    return str(found[0].get("ifalias", "")) if found else None


def link_exists(dev: str, netns: str | None = None) -> bool:
    return link_alias(dev, netns) is not None


def namespaces() -> set[str]:
    """The named network namespaces (`ip netns list`)."""
    done = ip("-j", "netns", "list", check=False)
    parsed = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    return {str(n["name"]) for n in parsed or []}


def namespace_pids(netns: str) -> list[int]:
    """The processes running in namespace `netns` (`ip netns pids`)."""
    done = ip("netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()] if done.returncode == 0 else []


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the root namespace's addresses (the lab's subnet must not
    overlap one: its hosts would shadow a real network, or another lab)."""
    done = ip("-j", "-4", "addr", "show", check=False)
    found = []
    for link in json.loads(done.stdout or "[]") if done.returncode == 0 else []:
        for addr in link.get("addr_info", []):
            iface = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}")
            if isinstance(iface, ipaddress.IPv4Interface) and not iface.is_loopback:
                found.append(iface.network)
    return found


def names_taken(plan: LabPlan) -> list[str]:
    """The plan's namespaces and links that exist already (another lab's, or a lab
    whose state file is gone)."""
    existing = namespaces()
    taken = [f"namespace {h.namespace}" for h in plan.hosts if h.namespace in existing]
    links = {str(link.get("ifname")) for link in _links()}
    taken += [f"link {n}" for n in (plan.bridge, *(h.veth for h in plan.hosts)) if n in links]
    return taken


def make_bridge(plan: LabPlan, owner_alias: str) -> None:
    """The bridge, with the coordinator's address on the lab."""
    ip("link", "add", plan.bridge, "type", "bridge")
    ip("link", "set", plan.bridge, "alias", owner_alias)
    ip("addr", "add", f"{plan.bridge_address}/{plan.prefixlen}", "dev", plan.bridge)
    ip("link", "set", plan.bridge, "up")


def make_namespace(host: HostPlan) -> None:
    ip("netns", "add", host.namespace)
    ip("link", "set", "lo", "up", netns=host.namespace)


def make_host_link(plan: LabPlan, host: HostPlan, owner_alias: str) -> None:
    """Host `host`'s veth pair: `eth0` in its namespace with its address and a default
    route via the bridge, the other end on the bridge."""
    eth, ns = HOST_IN_NAMESPACE_LINK, host.namespace
    ip("link", "add", host.veth, "type", "veth", "peer", "name", eth, "netns", ns)
    ip("link", "set", host.veth, "alias", owner_alias)
    ip("link", "set", eth, "alias", owner_alias, netns=ns)
    ip("link", "set", host.veth, "master", plan.bridge)
    ip("link", "set", host.veth, "up")
    ip("addr", "add", f"{host.address}/{plan.prefixlen}", "dev", eth, netns=ns)
    ip("link", "set", eth, "up", netns=ns)
    ip("route", "add", "default", "via", plan.bridge_address, netns=ns)


def owns_namespace(netns: str, owner_alias: str) -> bool:
    """Whether namespace `netns` is the lab's: its `eth0` carries the lab's alias, or
    it holds nothing but loopback (made by `up`, which stopped before its veth)."""
    if netns not in namespaces():
        return False
    links = _links(netns)
    if any(link.get("ifname") == HOST_IN_NAMESPACE_LINK for link in links):
        return link_alias(HOST_IN_NAMESPACE_LINK, netns) == owner_alias
    return all(link.get("ifname") == "lo" for link in links)


def delete_link_if_owned(dev: str, owner_alias: str) -> bool:
    """Delete root-namespace link `dev` if it carries the lab's alias; whether it did."""
    if link_alias(dev) != owner_alias:
        return False
    return ip("link", "del", dev, check=False).returncode == 0


def delete_namespace(netns: str) -> bool:
    return ip("netns", "del", netns, check=False).returncode == 0
