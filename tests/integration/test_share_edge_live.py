"""One real edge process with the share executor, three models at shares 0.6/0.3/0.1
and saturating request streams: the compute time each model gets follows its share; an
idle model's share goes to the others (work-conserving); the edge state and the
SetAllocation call show and change the shares (docs/share-executor.md)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, BrokerKind
from testbed.messages import EdgeTaskRequest, ModelRef
from testbed.types import FailureReason, Outcome
from tests.waiting import wait_until

from .harness import EdgeBench

pytestmark = pytest.mark.slow

SHARES = {"diffusion-s": 0.6, "diffusion-l": 0.3, "cgan-l": 0.1}
# units, steps: about 1 ms of compute each on the tiny zoo (an idle host), 10 ms once
# stretched. Short tasks: a model's service may lag its share by about two tasks.
TASK = {"diffusion-s": (2, 30), "diffusion-l": (1, 16), "cgan-l": (48, 0)}
STREAMS_PER_MODEL = 6  # requests each model keeps in flight: its FIFO never runs dry
WARMUP_S, MEASURE_S = 1.0, 8.0


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("broker")
    with EmbeddedBroker.start(BrokerConfig(), workdir, kind=BrokerKind.AUTO) as broker:
        yield broker.url


class Streams:
    """Clients that resubmit each model's task as soon as it is answered."""

    def __init__(self, bench: EdgeBench, models: list[str]) -> None:
        self.bench = bench
        self.models = models
        self.done: list[tuple[float, str, float]] = []  # (answered at, model, slot_s)
        self.failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._n = 0
        self._threads = [
            threading.Thread(target=self._loop, args=(m,), daemon=True)
            for m in models
            for _ in range(STREAMS_PER_MODEL)
        ]

    def _loop(self, model: str) -> None:
        units, steps = TASK[model]
        client = self.bench.client()
        while not self._stop.is_set():
            with self._lock:
                self._n += 1
                task_id = f"load/t{self._n:06d}"
            request = EdgeTaskRequest(task_id, ModelRef(model), units, True, agent_id="load",
                                      steps=steps, data_bytes=64)  # fmt: skip
            result = client.submit(request, b"\x02" * 64, timeout_s=60).result
            with self._lock:
                if result.outcome is Outcome.COMPLETED:  # the time it held the slot:
                    timing = result.timing  # what the executor shares out
                    slot_ms = timing.total_ms - timing.receive_ms - timing.queue_ms
                    self.done.append((time.monotonic(), model, slot_ms / 1e3))
                else:
                    self.failures[f"{result.reason.value}: {result.detail}"] += 1

    def measure(self) -> dict[str, float]:
        """Run the streams; each model's fraction of the slot time while all ran."""
        for t in self._threads:
            t.start()
        time.sleep(WARMUP_S)
        start = time.monotonic()
        time.sleep(MEASURE_S)
        end = time.monotonic()
        self._stop.set()
        for t in self._threads:
            t.join(60)
        busy: Counter[str] = Counter()
        for answered, model, slot_s in self.done:  # the part inside the window
            began = answered - slot_s
            busy[model] += max(0.0, min(answered, end) - max(began, start))
        total = sum(busy.values())
        return {m: busy[m] / total for m in self.models}


def test_compute_follows_the_shares_and_idle_shares_are_lent(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    edges = {
        "executor": "shares",
        "share_mode": "work_conserving",
        "model_shares": SHARES,
        "preload": list(SHARES),
        "cpu_ghz": 0.3,  # 10× stretched: the tasks' time is mostly slept, not burnt
    }
    emulation = {"links": False, "compute": True, "host_ghz": 3.0}
    with EdgeBench(tmp_path, broker_url, tiny_zoo, edges=edges, emulation=emulation) as bench:
        bench.start()

        def shown() -> dict[str, float]:
            return {c.model.model_id: c.compute_share for c in bench.state().cached}

        assert wait_until(lambda: shown() == SHARES), shown()  # preloaded, shares shown

        streams = Streams(bench, list(SHARES))
        fractions = streams.measure()
        assert not streams.failures, streams.failures
        for model, share in SHARES.items():
            assert abs(fractions[model] - share) <= 0.1 * share, fractions

        busy = ["diffusion-l", "cgan-l"]  # diffusion-s goes idle: its 0.6 is lent
        streams = Streams(bench, busy)
        fractions = streams.measure()
        assert not streams.failures, streams.failures
        assert fractions["diffusion-l"] == pytest.approx(0.75, rel=0.1), fractions
        assert fractions["cgan-l"] == pytest.approx(0.25, rel=0.1), fractions

        client = bench.client()
        op = client.set_allocation({"diffusion-s": 0.2, "diffusion-l": 0.5}, {"diffusion-l": 7})
        assert op.ok and op.state is not None, op.detail
        allocated = {c.model.model_id: c.compute_share for c in op.state.cached}
        assert allocated == pytest.approx({"diffusion-s": 0.2, "diffusion-l": 0.5, "cgan-l": 0.3})
        steps = {c.model.model_id: c.steps for c in op.state.cached}
        assert steps == {"diffusion-s": 0, "diffusion-l": 7, "cgan-l": 0}
        refused = client.set_allocation({"diffusion-s": 0.8, "diffusion-l": 0.5}, {})
        assert not refused.ok and refused.reason is FailureReason.INVALID_REQUEST
        assert "sum to at most 1" in refused.detail
        assert shown()["cgan-l"] == pytest.approx(0.3)  # a refused table changed nothing
