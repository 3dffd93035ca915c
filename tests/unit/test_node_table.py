"""The registry's domain: liveness states with an injected clock."""

from __future__ import annotations

import pytest

from coordinator.registry import NodeState, NodeTable, Transition
from testbed.config import RegistryConfig
from testbed.registration import NodeInfo, node_info_from_proto, node_info_to_proto
from testbed.types import NodeKind

# missing after 3 beats of the announced interval; removed after 30 s of silence
CFG = RegistryConfig(heartbeat_interval_s=1.0, missing_after_beats=3, remove_after_s=30.0)
AGENT = NodeInfo("agent-0", NodeKind.AGENT, "127.0.0.1:5001", (10.0, 20.0), {"host": "b0"})
EDGE = NodeInfo("edge-0", NodeKind.EDGE, "127.0.0.1:6001")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[tuple[str, NodeState | None, NodeState]]:
    return []


@pytest.fixture
def table(clock: Clock, events: list) -> NodeTable:
    return NodeTable(CFG, clock=clock, on_state_change=lambda *e: events.append(e))


def test_register_makes_an_alive_node(table: NodeTable, events: list) -> None:
    record = table.register(AGENT, heartbeat_interval_s=0.5)
    assert record.state is NodeState.ALIVE
    assert record.heartbeat_interval_s == 0.5
    assert record.session_id
    assert table.get("agent-0") == record and "agent-0" in table and len(table) == 1
    assert events == [("agent-0", None, NodeState.ALIVE)]


def test_alive_missing_healed_removed(table: NodeTable, clock: Clock, events: list) -> None:
    session = table.register(AGENT, heartbeat_interval_s=1.0).session_id
    # beats every second keep it alive
    for _ in range(5):
        clock.now += 1.0
        assert table.heartbeat("agent-0", session, seq=1)
        assert table.sweep() == []
    # silent: 3 s (= 3 beats × 1 s) is still alive, just past it is missing
    clock.now += 3.0
    assert table.sweep() == []
    assert table.get("agent-0").missed_beats(clock.now) == 3
    clock.now += 0.01
    assert table.sweep() == [Transition("agent-0", NodeState.ALIVE, NodeState.MISSING)]
    assert table.get("agent-0").state is NodeState.MISSING
    assert table.sweep() == []  # reported once
    # heartbeats resume: healed at once, without waiting for a sweep
    clock.now += 2.0
    assert table.heartbeat("agent-0", session, seq=2)
    assert table.get("agent-0").state is NodeState.ALIVE
    # long silence: missing, then removed after remove_after_s = 30 s
    clock.now += 5.0
    table.sweep()
    clock.now += 24.99
    table.sweep()
    assert table.get("agent-0").state is NodeState.MISSING
    clock.now += 0.01  # 30 s since the last heartbeat
    assert table.sweep() == [Transition("agent-0", NodeState.MISSING, NodeState.REMOVED)]
    assert table.get("agent-0") is None and len(table) == 0
    assert events == [
        ("agent-0", None, NodeState.ALIVE),
        ("agent-0", NodeState.ALIVE, NodeState.MISSING),
        ("agent-0", NodeState.MISSING, NodeState.ALIVE),
        ("agent-0", NodeState.ALIVE, NodeState.MISSING),
        ("agent-0", NodeState.MISSING, NodeState.REMOVED),
    ]
    # the removed node's heartbeats are not known: it must register again
    assert not table.heartbeat("agent-0", session)


def test_missing_threshold_follows_the_announced_interval(table: NodeTable, clock: Clock) -> None:
    table.register(AGENT, heartbeat_interval_s=0.1)  # missing after 0.3 s
    table.register(EDGE, heartbeat_interval_s=2.0)  # missing after 6 s
    clock.now += 0.31
    assert [t.node_id for t in table.sweep()] == ["agent-0"]
    clock.now += 5.7
    assert [t.node_id for t in table.sweep()] == ["edge-0"]
    assert {r.node_id for r in table.nodes(NodeState.MISSING)} == {"agent-0", "edge-0"}


def test_unannounced_interval_uses_the_configured_one(table: NodeTable) -> None:
    for bad in (None, 0.0, -1.0, float("nan")):
        assert table.register(AGENT, heartbeat_interval_s=bad).heartbeat_interval_s == 1.0


def test_re_register_gets_a_new_session(table: NodeTable, clock: Clock, events: list) -> None:
    first = table.register(AGENT).session_id
    clock.now += 10.0
    table.sweep()  # missing
    second = table.register(AGENT).session_id
    assert second != first
    assert table.get("agent-0").state is NodeState.ALIVE
    assert table.get("agent-0").registered_at == clock.now
    # the stale session is not known any more; the new one is
    assert not table.heartbeat("agent-0", first)
    assert table.heartbeat("agent-0", second)
    assert events[-1] == ("agent-0", NodeState.MISSING, NodeState.ALIVE)
    assert len(table) == 1


def test_re_register_while_alive_reports_the_registration(clock: Clock) -> None:
    registered = []
    changes = []
    table = NodeTable(
        CFG,
        clock=clock,
        on_register=registered.append,
        on_state_change=lambda *e: changes.append(e),
    )
    table.register(AGENT)
    table.register(AGENT)  # e.g. the agent process restarted
    assert len(registered) == 2 and registered[0].session_id != registered[1].session_id
    assert changes == [("agent-0", None, NodeState.ALIVE)]  # alive all along


def test_unknown_node_or_stale_session(table: NodeTable) -> None:
    assert not table.heartbeat("nobody", "x")
    session = table.register(AGENT).session_id
    assert not table.heartbeat("agent-0", "not-" + session)
    assert not table.deregister("agent-0", "not-" + session)
    assert "agent-0" in table


def test_deregister(table: NodeTable, events: list) -> None:
    session = table.register(AGENT).session_id
    assert table.deregister("agent-0", session)
    assert table.get("agent-0") is None
    assert events[-1] == ("agent-0", NodeState.ALIVE, NodeState.REMOVED)
    assert not table.deregister("agent-0", session)


def test_empty_node_id_is_rejected(table: NodeTable) -> None:
    with pytest.raises(ValueError):
        table.register(NodeInfo("", NodeKind.AGENT))


def test_filters_and_records(table: NodeTable) -> None:
    table.register(AGENT)
    table.register(EDGE)
    assert [r.node_id for r in table.nodes(kind=NodeKind.EDGE)] == ["edge-0"]
    assert [r.node_id for r in table.nodes()] == ["agent-0", "edge-0"]
    record = table.get("agent-0")
    assert record.info.position_m == (10.0, 20.0) and record.info.facts == {"host": "b0"}


def test_a_failing_callback_does_not_break_the_table(clock: Clock) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("callback bug")

    table = NodeTable(CFG, clock=clock, on_state_change=boom)
    session = table.register(AGENT).session_id
    assert table.heartbeat("agent-0", session)


def test_callbacks_may_call_the_table(clock: Clock) -> None:
    seen = []
    table: NodeTable

    def on_change(node_id: str, old: NodeState | None, new: NodeState) -> None:
        seen.append((new, table.get(node_id)))

    table = NodeTable(CFG, clock=clock, on_state_change=on_change)
    table.register(AGENT)
    assert seen[0][0] is NodeState.ALIVE and seen[0][1] is not None


def test_node_info_proto_round_trip() -> None:
    assert node_info_from_proto(node_info_to_proto(AGENT)) == AGENT
    assert node_info_from_proto(node_info_to_proto(EDGE)) == EDGE  # no position
    with pytest.raises(ValueError):
        node_info_from_proto(node_info_to_proto(NodeInfo("", NodeKind.AGENT)))
    msg = node_info_to_proto(AGENT)
    msg.kind = 0  # NODE_KIND_UNSPECIFIED
    with pytest.raises(ValueError, match="kind"):
        node_info_from_proto(msg)


@pytest.mark.parametrize(
    "bad_id",
    ["x" * 1_000_000, "agent-0\nregistry: node edge-0 alive → missing", "\x1b[2J\x1b[H",
     "edge/0", "Edge-0", "a b", "x" * 33],
)  # fmt: skip
def test_an_id_outside_the_pattern_is_refused_without_echoing_it(
    table: NodeTable, events: list, bad_id: str
) -> None:
    with pytest.raises(ValueError) as info:
        table.register(NodeInfo(bad_id, NodeKind.AGENT))
    message = str(info.value)
    assert "^[a-z][a-z0-9-]{0,31}$" in message
    assert len(message) < 200 and "\n" not in message and "\x1b" not in message
    assert len(table) == 0 and not events


def test_oversized_or_non_finite_registrations_are_refused(table: NodeTable) -> None:
    for info in (
        NodeInfo("agent-0", NodeKind.AGENT, "h" * 100_000),
        NodeInfo("agent-0", NodeKind.AGENT, facts={"k": "v" * 100_000}),
        NodeInfo("agent-0", NodeKind.AGENT, facts={f"k{i}": "v" for i in range(1000)}),
        NodeInfo("agent-0", NodeKind.AGENT, position_m=(float("nan"), 0.0)),
    ):
        with pytest.raises(ValueError):
            table.register(info)
    assert len(table) == 0


def test_an_announced_interval_is_held_to_the_configured_range(table: NodeTable) -> None:
    # a 1 µs interval would make the node missing and alive again thousands of times
    assert table.register(AGENT, heartbeat_interval_s=1e-6).heartbeat_interval_s == 0.05
    assert table.register(AGENT, heartbeat_interval_s=1e9).heartbeat_interval_s == 3600.0
