"""Link shaping in the kernel: `tc` qdiscs on each host's veth (docs/lab.md).

The rate is a token bucket (`tbf`) on both ends of a host's veth pair, so a host
sends and receives at most `rate_mbit` each way, as over a real link. The delay needs
`netem` (sch_netem), which not every kernel has (the one this project is developed on
lacks it): `detect_netem` tries it on a scratch veth, and where it is missing the lab
comes up without the delay and says so, in its output and in `lab.json`.
"""

from __future__ import annotations

import contextlib

from coordinator.lab.plan import HOST_IN_NAMESPACE_LINK, HostPlan
from coordinator.lab.state import QdiscKind, QdiscRecord, ShapingRecord
from coordinator.lab.tools import ip, tc, tool_ok
from testbed.exit_codes import TestbedExit

_BURST_S = 0.01
"""tbf's bucket holds 10 ms of traffic at the rate: enough for the kernel's timer
granularity (a bucket under rate/HZ caps the rate below what was asked)."""
_BURST_MIN_BYTES = 32 * 1024
_LATENCY_MS = 50
"""How long a packet may wait in tbf's queue before it is dropped."""


def detect_netem(lab_name: str) -> bool:
    """Whether this kernel has netem: add it on a scratch veth, then remove both."""
    probe = f"{lab_name}-probe"
    if not tool_ok(["ip", "link", "add", probe, "type", "veth", "peer", "name", probe + "p"]):
        return False
    try:
        return tool_ok(["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"])
    finally:
        ip("link", "del", probe, check=False)  # takes its peer and qdisc along


def plan_shaping(rate_mbit: float | None, delay_ms: float | None, lab_name: str) -> ShapingRecord:
    """What will be applied: the rate always (tbf is in every kernel), the delay only
    where netem is; `summary` says which, and why not."""
    netem = detect_netem(lab_name) if delay_ms else None
    record = ShapingRecord(rate_mbit=rate_mbit, delay_ms=delay_ms, netem_available=netem)
    record.rate_applied = bool(rate_mbit)
    record.delay_applied = bool(delay_ms) and bool(netem)
    parts = []
    if record.rate_applied:
        parts.append(f"tbf {rate_mbit:g} Mbit/s each way on every host's veth")
    if record.delay_applied:
        parts.append(f"netem delay {delay_ms:g} ms each way")
    elif delay_ms:
        parts.append(f"delay {delay_ms:g} ms NOT applied: this kernel has no netem (sch_netem)")
    record.summary = "; ".join(parts) or "none"
    return record


def _tbf_args(rate_mbit: float) -> list[str]:
    rate_bytes_per_s = rate_mbit * 1e6 / 8
    burst_bytes = max(_BURST_MIN_BYTES, int(rate_bytes_per_s * _BURST_S))
    return ["tbf", "rate", f"{rate_mbit * 1000:.0f}kbit", "burst", str(burst_bytes),
            "latency", f"{_LATENCY_MS}ms"]  # fmt: skip


def _shape_link(dev: str, netns: str | None, shaping: ShapingRecord) -> QdiscRecord | None:
    kinds: list[QdiscKind] = []
    if shaping.delay_applied and shaping.delay_ms:
        tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay",
           f"{shaping.delay_ms:g}ms", netns=netns)  # fmt: skip
        kinds.append(QdiscKind.NETEM)
    if shaping.rate_applied and shaping.rate_mbit:
        where = ["parent", "1:1", "handle", "10:"] if kinds else ["root", "handle", "10:"]
        tc("qdisc", "add", "dev", dev, *where, *_tbf_args(shaping.rate_mbit), netns=netns)
        kinds.append(QdiscKind.TBF)
    return QdiscRecord(dev, netns, kinds) if kinds else None


def shape_host(host: HostPlan, shaping: ShapingRecord) -> list[QdiscRecord]:
    """The qdiscs on both ends of `host`'s veth (the root end shapes what the host
    receives, `eth0` in its namespace what it sends)."""
    records = []
    for dev, netns in ((host.veth, None), (HOST_IN_NAMESPACE_LINK, host.namespace)):
        record = _shape_link(dev, netns, shaping)
        if record is not None:
            records.append(record)
    return records


def unshape(record: QdiscRecord) -> None:
    """Remove a root qdisc the lab added (gone already with its link: nothing to do)."""
    with contextlib.suppress(TestbedExit):  # `tc` itself gone: the link goes anyway
        tc("qdisc", "del", "dev", record.dev, "root", netns=record.netns, check=False)
