"""A real edge publishes its queued work and its measured compute per unit
(edge_node/work_estimate.py): what a §B scheduler splits by (agent_node/scheduler.py)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, BrokerKind
from testbed.types import Outcome
from tests.waiting import wait_until

from .harness import EdgeBench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = BrokerKind.MOSQUITTO if shutil.which("mosquitto") else BrokerKind.AMQTT
    with EmbeddedBroker.start(BrokerConfig(), tmp_path_factory.mktemp("broker"), kind=kind) as b:
        yield b.url


def test_the_edge_measures_compute_per_unit_and_counts_queued_work(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    # one slot, compute stretched 3x: a 0.5 GHz edge on a host counted as 1.5 GHz
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo, emulation={"links": False, "compute": True,
        "host_ghz": 1.5}, edges={"parallel_slots": 1, "cpu_ghz": 0.5, "preload": ["cgan-s"]},
    ) as bench:  # fmt: skip
        bench.start()
        assert bench.state().unit_compute_ms == {}
        first = bench.submit("cgan-s", units=8).result
        assert first.outcome is Outcome.COMPLETED, first.detail
        state = bench.state()
        measured = state.unit_compute_ms["cgan-s"]
        assert measured == pytest.approx(first.timing.compute_ms / 8, rel=1e-3)
        assert state.queued_work_s == 0.0
        # a long task (~3 s) runs while two more wait: the edge counts all of their units
        long, short = (min(50_000, max(1, int(ms / measured))) for ms in (3000, 500))
        done = []
        threads = [
            threading.Thread(target=lambda u=u: done.append(bench.submit("cgan-s", units=u)))
            for u in (long, short, short)
        ]
        threads[0].start()
        assert wait_until(lambda: bench.state().running == 1, timeout_s=30)
        for t in threads[1:]:
            t.start()
        assert wait_until(lambda: bench.state().queue_length == 2, timeout_s=30)
        busy = bench.state().queued_work_s
        assert 0.0 < busy <= (long + 2 * short) * measured / 1e3 * 1.01
        assert busy > 2 * short * measured / 1e3  # the waiting ones' units at least
        for t in threads:
            t.join(60)
        assert all(s.result.outcome is Outcome.COMPLETED for s in done)
        assert bench.state().queued_work_s == 0.0
