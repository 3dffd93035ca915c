"""What the embedded amqtt broker needs beyond amqtt's own plugins.

amqtt checks publishes and subscriptions against its ACL, but not a client's last
will: a client could name another node's status topic as its will and, by dropping
its connection, have the broker publish a forged `offline` there. `LastWillCheck`
refuses the login of a client whose will topic its publish ACL does not allow
(Mosquitto instead accepts it and never publishes the will; docs/security.md).
Loaded by amqtt from its class path (testbed/broker_config.py: amqtt_config).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin
from amqtt.session import Session


class LastWillCheck(BaseAuthPlugin):
    """Refuses a client whose last will is on a topic it may not publish on."""

    @dataclass
    class Config:
        publish_acl: dict[str, list[str]] = field(default_factory=dict)
        """Username -> the topics it may publish on (as TopicAccessControlListPlugin's)."""

    async def authenticate(self, *, session: Session) -> bool | None:
        topic = session.will_topic if session.will_flag else None
        if not topic:
            return None  # nothing to check: the other plugins decide
        allowed = self.context.config.publish_acl.get(session.username or "", [])
        if any(TopicAccessControlListPlugin.topic_ac(topic, a) for a in allowed):
            return None
        self.context.logger.warning(
            "refused %s: its last will is on %s, where it may not publish",
            session.username, topic,
        )  # fmt: skip
        return False
