"""`<lab dir>/lab.json`: everything `testbed lab up` made, so that `lab status` and
`lab down` can find it again (docs/lab.md).

`lab up` writes the file before it makes anything and again after each step, so a
lab whose `up` failed half-way is still torn down whole. Every link the lab makes
carries the lab's `token` as its alias (`ip link set DEV alias ...`), and each sshd
is recorded with its process identity (coordinator/process_identity.py): `lab down`
removes a link, a namespace or a process only while it still is the lab's.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed.exit_codes import ExitCode, TestbedExit

STATE_FILE = "lab.json"
INVENTORY_FILE = "inventory.yaml"
STATE_FORMAT_VERSION = 1
OWNER_ALIAS_PREFIX = "testbed-lab "
"""A lab's links are aliased `testbed-lab <token>`."""


class QdiscKind(enum.StrEnum):
    """The kernel's queueing disciplines a lab uses to shape its links."""

    TBF = "tbf"  # token bucket: the rate
    NETEM = "netem"  # network emulator: the delay (where the kernel has it)


@dataclass
class QdiscRecord:
    """A root qdisc the lab added on a link (`netns` None: the root namespace)."""

    dev: str
    netns: str | None
    kinds: list[QdiscKind]
    """Outermost first (netem with tbf under it, or tbf alone)."""


@dataclass
class ShapingRecord:
    """The link shaping asked for and what the kernel applied."""

    rate_mbit: float | None = None
    delay_ms: float | None = None
    netem_available: bool | None = None
    """None: not probed (no delay was asked for)."""
    rate_applied: bool = False
    delay_applied: bool = False
    summary: str = "none"
    """One line for people: what was applied and what was not, and why."""


@dataclass
class HostRecord:
    """One namespaced host: its kernel objects, address, folder and sshd."""

    name: str
    namespace: str
    veth: str
    address: str
    dir: str
    prefix: str
    sshd_config: str
    sshd: dict[str, Any] | None = None
    """The sshd's process identity (ProcessIdentity.to_record()); None before it runs."""
    qdiscs: list[QdiscRecord] = field(default_factory=list)


@dataclass
class LabState:
    """What `lab.json` holds."""

    lab_name: str
    token: str
    dir: str
    created_at: str
    subnet: str
    bridge: str
    bridge_address: str
    client_key: str
    known_hosts: str
    inventory: str
    hosts: list[HostRecord] = field(default_factory=list)
    shaping: ShapingRecord = field(default_factory=ShapingRecord)
    format_version: int = STATE_FORMAT_VERSION

    @property
    def owner_alias(self) -> str:
        return OWNER_ALIAS_PREFIX + self.token

    @property
    def path(self) -> Path:
        return Path(self.dir) / STATE_FILE

    def save(self) -> None:
        """Write `lab.json` atomically (a reader never sees half a file)."""
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def state_path(lab_dir: str | Path) -> Path:
    return Path(lab_dir).absolute() / STATE_FILE


def load_state(lab_dir: str | Path) -> LabState | None:
    """The lab recorded in `lab_dir`; None if there is none; FAILURE if unreadable."""
    path = state_path(lab_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TestbedExit(ExitCode.FAILURE, f"{path} cannot be read: {exc}") from None
    try:
        return _from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise TestbedExit(ExitCode.FAILURE, f"{path} is not a lab state file ({exc!r})") from None


def _from_dict(data: dict[str, Any]) -> LabState:
    if data.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError(f"format_version {data.get('format_version')!r}")
    hosts = [
        HostRecord(**{**h, "qdiscs": [
            QdiscRecord(q["dev"], q["netns"], [QdiscKind(k) for k in q["kinds"]])
            for q in h["qdiscs"]
        ]})
        for h in data["hosts"]
    ]  # fmt: skip
    return LabState(**{**data, "hosts": hosts, "shaping": ShapingRecord(**data["shaping"])})
