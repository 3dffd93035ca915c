"""The MQTT topic tree (docs/telemetry.md). Every topic starts with
`{broker.topic_prefix}/{telemetry.bench_id}`, so that several benches can share a broker
and a subscriber to `{p}/{b}/#` sees one bench whole.

{p}/{b}/cloud/catalog            retained JSON `catalog/v1`: the model catalog the cloud serves
{p}/{b}/cloud/fetch              JSON `fetch-request/v1`: an edge asks for a model (or chunks)
{p}/{b}/edge/{edge}/feed         the cloud's answer to that edge: binary frames (testbed/feed.py)
{p}/{b}/edge/{edge}/state        retained JSON `edge-state/v1`: queue, cached models, bytes
{p}/{b}/node/{node}/status       retained text "online" / "offline" (the last will)
{p}/{b}/node/{node}/telemetry    JSON `telemetry/v1` at the telemetry interval
{p}/{b}/events/{node}            JSON `event/v1` as things happen (testbed/events.py)
{p}/{b}/tasks/{agent}            JSON `task-record/v1` as each task completes

Each retained topic has one owner, which publishes it with `MqttClient.publish_retained`
and so says it again after every reconnect: the catalog the cloud, an edge's state that
edge, a node's status that node (testbed/daemon.py; the broker publishes the `offline`
will). Nothing else is retained. Every JSON payload names its schema in a `schema` field
(testbed/payloads.py, docs/schemas/); the status text and the feed frames are the only
payloads without one.

Every `Topics` of a bench is made by `Topics.of(cfg)`, so that the ACL the broker
enforces (testbed/broker_config.py) and every publisher and subscriber agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testbed.config import TestbedConfig

DEFAULT_BENCH_ID = "default"


@dataclass(frozen=True)
class Topics:
    prefix: str = "testbed"
    bench_id: str = DEFAULT_BENCH_ID

    @classmethod
    def of(cls, cfg: TestbedConfig) -> Topics:
        """The topic tree of the bench `cfg` describes (the one way to make it)."""
        return cls(cfg.broker.topic_prefix, cfg.telemetry.bench_id)

    @property
    def root(self) -> str:
        """`{prefix}/{bench}`: every topic of the bench is under it."""
        return f"{self.prefix}/{self.bench_id}"

    @property
    def everything(self) -> str:
        """The filter that matches every topic of the bench."""
        return f"{self.root}/#"

    @property
    def catalog(self) -> str:
        return f"{self.root}/cloud/catalog"

    @property
    def fetch_requests(self) -> str:
        return f"{self.root}/cloud/fetch"

    def feed(self, edge_id: str) -> str:
        return f"{self.root}/edge/{edge_id}/feed"

    def edge_state(self, edge_id: str) -> str:
        return f"{self.root}/edge/{edge_id}/state"

    @property
    def all_edge_states(self) -> str:
        return f"{self.root}/edge/+/state"

    def status(self, node_id: str) -> str:
        return f"{self.root}/node/{node_id}/status"

    def telemetry(self, node_id: str) -> str:
        return f"{self.root}/node/{node_id}/telemetry"

    def events(self, node_id: str) -> str:
        return f"{self.root}/events/{node_id}"

    def tasks(self, agent_id: str) -> str:
        return f"{self.root}/tasks/{agent_id}"

    @staticmethod
    def node_of(topic: str) -> str:
        """The node / edge id in `{p}/{b}/edge/{id}/...` or `{p}/{b}/node/{id}/...`."""
        parts = topic.split("/")
        return parts[-2]
