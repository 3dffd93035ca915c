"""What a board believes about the edges (agent_node/edges.py): which published states
it takes, and who decides whether an edge is alive. MQTT is a stand-in that delivers
a message to the board's handler as the broker would."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from agent_node.edges import EdgeDirectory, EdgeEndpoint, initial_views
from testbed.config import config_from_dict

CFG = config_from_dict({"edges": {"count": 2}})
ENDPOINTS = [
    EdgeEndpoint(s.id, f"127.0.0.1:{50000 + i}", s.position_m or (0.0, 0.0))
    for i, s in enumerate(CFG.edge_specs())
]


class Broker:
    """The two subscriptions a board's edge directory makes, delivered by hand."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[str, bytes], None]] = {}

    def subscribe(self, topic: str, handler: Callable[[str, bytes], None]) -> None:
        self.handlers[topic] = handler

    def unsubscribe(self, topic: str) -> None:
        self.handlers.pop(topic, None)

    def state(self, edge_id: str, payload: bytes | dict) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.handlers["testbed/default/edge/+/state"](f"testbed/default/edge/{edge_id}/state", data)

    def status(self, edge_id: str, payload: bytes) -> None:
        topic = f"testbed/default/node/{edge_id}/status"
        self.handlers["testbed/default/node/+/status"](topic, payload)


def good_state(edge_id: str, queue: int = 2, cached: tuple[str, ...] = ("cgan-s",)) -> dict:
    return {
        "edge_id": edge_id, "seq": 1, "queue_length": queue, "running": 1,
        "cached": [{"model": {"model_id": m, "version": "1"}, "size_bytes": 10} for m in cached],
        "cache_used_bytes": 25, "cache_capacity_bytes": 100,
        "counters": {}, "cpu_ghz": 7.0, "position_m": [0.0, 0.0],
    }  # fmt: skip


@pytest.fixture
def directory() -> tuple[EdgeDirectory, Broker]:
    broker = Broker()
    views = initial_views(CFG, ENDPOINTS, (100.0, 100.0))
    edges = EdgeDirectory(CFG, ENDPOINTS, views, broker)  # type: ignore[arg-type]
    yield edges, broker
    edges.close()


def alive(edges: EdgeDirectory) -> list[bool]:
    return [v.alive for v in edges.views()]


def test_a_good_state_sets_the_view(directory) -> None:
    edges, broker = directory
    broker.state("edge-1", good_state("edge-1", queue=2, cached=("cgan-s", "ae-s")))
    view = edges.views()[1]
    assert view.queue_length == 3  # queued + running
    assert view.cached == {"cgan-s", "ae-s"} and view.cache_free == pytest.approx(0.75)


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2, 3]",
        b'"online"',
        b"not json",
        b"\xff\xfe",
        {**good_state("edge-0"), "queue_length": "many"},
        {**good_state("edge-0"), "running": True},
        {**good_state("edge-0"), "cache_used_bytes": -5},
        {**good_state("edge-0"), "cached": 7},
        {**good_state("edge-0"), "cached": [{"model": "cgan-s"}]},
        {**good_state("edge-0"), "edge_id": "edge-1"},  # someone else's state on this topic
        b'{"edge_id": "edge-0", "queue_length": NaN, "running": 0, "cached": []}',
    ],
    ids=lambda p: (p if isinstance(p, bytes) else json.dumps(p))[:40],
)
def test_a_malformed_state_is_ignored_and_the_last_good_one_stands(
    directory, payload, caplog
) -> None:
    edges, broker = directory
    broker.state("edge-0", good_state("edge-0", queue=4))
    before = edges.views()
    broker.state("edge-0", payload)
    with caplog.at_level(logging.WARNING, logger="agent_node.edges"):
        assert edges.views() == before
    assert [r.getMessage()[:24] for r in caplog.records] == ["edge-0: state ignored (t"]


def test_a_bad_streak_is_logged_once(directory, caplog) -> None:
    edges, broker = directory
    with caplog.at_level(logging.WARNING, logger="agent_node.edges"):
        for _ in range(3):
            broker.state("edge-0", b"[]")
            edges.views()
        broker.state("edge-0", good_state("edge-0"))
        edges.views()
        broker.state("edge-0", b"[]")
        edges.views()
    assert len(caplog.records) == 2  # one per streak of garbage, not one per message


def test_without_a_registry_view_the_mqtt_status_decides(directory) -> None:
    edges, broker = directory
    broker.status("edge-0", b"offline")
    assert alive(edges) == [False, True]
    broker.status("edge-0", b"online")
    assert alive(edges) == [True, True]


def test_the_registry_view_overrides_the_mqtt_status(directory) -> None:
    edges, broker = directory
    broker.status("edge-0", b"offline")  # a forged last will: anyone can publish it
    edges.trust_registry(["edge-0", "edge-1"])
    assert alive(edges) == [True, True]
    edges.trust_registry(["edge-0"])  # the registry lost edge-1; its status says online
    assert alive(edges) == [True, False]
    edges.trust_registry([])  # the registry holds no edge alive
    assert alive(edges) == [False, False]
    edges.trust_registry(None)  # no view given (an older coordinator): MQTT again
    assert alive(edges) == [False, True]


def test_an_edge_this_board_could_not_reach_stays_dead_until_it_is_back(directory) -> None:
    edges, broker = directory
    edges.trust_registry(["edge-0", "edge-1"])
    edges.mark_unreachable("edge-1")
    assert alive(edges) == [True, False]
    edges.trust_registry(["edge-0", "edge-1"])  # still the same registry view
    assert alive(edges) == [True, False]
    broker.status("edge-1", b"online")  # it announces itself again
    assert alive(edges) == [True, True]
    edges.mark_unreachable("edge-1")
    edges.trust_registry(["edge-0"])
    edges.trust_registry(["edge-0", "edge-1"])  # the registry admits it anew
    assert alive(edges) == [True, True]


def test_a_rate_that_is_not_a_number_is_refused_at_configure() -> None:
    from agent_node.checks import BadRequest

    far = [EdgeEndpoint("edge-0", "127.0.0.1:1", (float("nan"), 0.0)), ENDPOINTS[1]]
    with pytest.raises(BadRequest, match="edge-0: the emulated rate"):
        initial_views(CFG, far, (100.0, 100.0))
