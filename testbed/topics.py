"""The MQTT topic tree (docs/telemetry.md). Every topic starts with `broker.topic_prefix`.

{p}/cloud/catalog              retained JSON: the model catalog the cloud serves
{p}/cloud/fetch                JSON requests from edges for a model (or missing chunks)
{p}/edge/{edge}/feed           the cloud's answer to that edge: framed manifest, chunks, done
{p}/edge/{edge}/state          retained JSON: queue, cached models, used/total bytes
{p}/node/{node}/status         retained "online" / "offline" (the last will)
{p}/node/{node}/telemetry      JSON at the telemetry interval

Each retained topic has one owner, which publishes it with `MqttClient.publish_retained`
and so says it again after every reconnect: the catalog the cloud, an edge's state that
edge, a node's status that node (testbed/daemon.py; the broker publishes the `offline`
will). Nothing else is retained.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "testbed"

    @property
    def catalog(self) -> str:
        return f"{self.prefix}/cloud/catalog"

    @property
    def fetch_requests(self) -> str:
        return f"{self.prefix}/cloud/fetch"

    def feed(self, edge_id: str) -> str:
        return f"{self.prefix}/edge/{edge_id}/feed"

    def edge_state(self, edge_id: str) -> str:
        return f"{self.prefix}/edge/{edge_id}/state"

    @property
    def all_edge_states(self) -> str:
        return f"{self.prefix}/edge/+/state"

    def status(self, node_id: str) -> str:
        return f"{self.prefix}/node/{node_id}/status"

    def telemetry(self, node_id: str) -> str:
        return f"{self.prefix}/node/{node_id}/telemetry"

    @staticmethod
    def node_of(topic: str) -> str:
        """The node / edge id in `{p}/edge/{id}/...` or `{p}/node/{id}/...`."""
        parts = topic.split("/")
        return parts[-2]
