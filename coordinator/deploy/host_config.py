"""The config a host's daemons read: `<prefix>/testbed.yaml` (docs/deploy.md, "The
host's config").

It is the bench's config with every secret redacted (a `Secret` dumps as
`<redacted>`, which loads as no value: the daemon reads its password file), each
node's listen address and fixed port written in (the inventory address of the host it
runs on; the port from coordinator/deploy/layout.py), and the paths pointing to the
host's own files: `zoo.dir`, `security.certs_dir` and `run.out_dir` under the prefix,
the broker's TLS and password files left to the conventions by node id (`ca.pem`,
`<node>.pem`/`.key`, `mqtt/<node>.password` under the host's certs folder).
"""

from __future__ import annotations

from typing import Any

import yaml

from coordinator.deploy.layout import HostLayout, node_slots
from testbed.config import TestbedConfig
from testbed.types import NodeKind

HEADER = """\
# Written by `testbed deploy` for this host: the bench's config, secrets redacted,
# paths on this host, each node's address and port fixed. Changes here are replaced
# at the next deploy: change the coordinator's testbed.yaml instead.
"""


def _node_entries(data: dict[str, Any], section: str, index: int) -> dict[str, Any]:
    nodes = data[section].setdefault("nodes", [])
    while len(nodes) <= index:
        nodes.append({})
    entry: dict[str, Any] = nodes[index]
    return entry


def host_config_data(cfg: TestbedConfig, layout: HostLayout) -> dict[str, Any]:
    """The host's config as a plain mapping (see the module's docstring)."""
    data = cfg.to_dict()  # every Secret is "<redacted>" here
    address_of = {n: h.address for h in cfg.inventory.hosts for n in h.nodes}
    for slot in node_slots(cfg).values():
        address = address_of.get(slot.node_id)
        if slot.kind is NodeKind.CLOUD:
            if address:
                data["cloud"]["host"] = address
            continue
        section = "edges" if slot.kind is NodeKind.EDGE else "agents"
        entry = _node_entries(data, section, slot.index)
        entry["port"] = slot.port
        if address:
            entry["host"] = address
    data["zoo"]["dir"] = layout.zoo
    data["run"]["out_dir"] = layout.path("runs")
    data["edges"]["cache_dir"] = None  # each edge is given --cache-dir <prefix>/cache/<id>
    if "security" in data:
        data["security"]["certs_dir"] = layout.certs
    broker = data["broker"]
    broker["password"] = None
    for key in ("password_file",):
        if key in broker:
            broker[key] = None  # <certs_dir>/mqtt/<node id>.password by convention
    for key in ("ca_file", "cert_file", "key_file"):
        if key in broker.get("tls", {}):
            broker["tls"][key] = None  # the bench CA and the node's own, by node id
    for host in data["inventory"]["hosts"]:
        host["key"] = ""  # the coordinator's SSH key path means nothing on a host
    return data


def host_config_text(cfg: TestbedConfig, layout: HostLayout) -> str:
    """`<prefix>/testbed.yaml` as written: deterministic (the same config gives the same
    bytes, so a second deploy sees nothing to change)."""
    return HEADER + yaml.safe_dump(host_config_data(cfg, layout), sort_keys=False)
