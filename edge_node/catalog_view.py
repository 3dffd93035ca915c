"""The edge's copy of the cloud's catalog, from the retained `{p}/cloud/catalog` topic.

The edge resolves a model to its catalog entry *before* it asks the cloud for it, and
then accepts only a transfer that matches that entry (size and sha256,
edge_node/model_feed.py): request ids are visible to every client of the broker, so a
manifest alone proves nothing. A catalog that does not parse (or names a model with an
id that is not a plain name, testbed/zoo/catalog.py) is ignored and the last good one
kept. Who may publish on `{p}/cloud/#` is the broker's business (its ACL).
"""

from __future__ import annotations

import logging
import threading
import time

from testbed.messages import ModelRef
from testbed.mqtt import MqttClient
from testbed.topics import Topics
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import Catalog, CatalogError, ModelEntry, UnknownModel

log = logging.getLogger(__name__)


class CatalogView:
    def __init__(self, client: MqttClient, topics: Topics) -> None:
        self._client = client
        self._topic = topics.catalog
        self._cond = threading.Condition()
        self._catalog: Catalog | None = None
        client.subscribe(self._topic, self._on_catalog)

    def close(self) -> None:
        self._client.unsubscribe(self._topic)

    @property
    def catalog(self) -> Catalog | None:
        with self._cond:
            return self._catalog

    def _on_catalog(self, _topic: str, payload: bytes) -> None:
        if not payload:  # a retained message cleared: keep what we have
            return
        try:
            catalog = Catalog.from_json(payload)
        except CatalogError as exc:
            log.warning("ignored a catalog that is not valid (kept the last one): %s", exc)
            return
        with self._cond:
            changed = self._catalog is None or self._catalog.entries != catalog.entries
            self._catalog = catalog
            self._cond.notify_all()
        if changed:
            log.info("catalog from the cloud: %s", ", ".join(e.key for e in catalog.entries))

    def entry(self, ref: ModelRef, timeout_s: float) -> ModelEntry:
        """The catalog entry of `ref`, waiting up to `timeout_s` for a first catalog.

        Raises TestbedError: FETCH_FAILED (no catalog yet), MODEL_UNKNOWN.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._catalog is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestbedError(
                        FailureReason.FETCH_FAILED,
                        f"{ref}: no model catalog from the cloud node after {timeout_s:g} s "
                        f"(is it running?)",
                    )
                self._cond.wait(left)
            catalog = self._catalog
        try:
            return catalog.get(ref.model_id, ref.version)
        except UnknownModel as exc:
            raise TestbedError(FailureReason.MODEL_UNKNOWN, str(exc)) from None
