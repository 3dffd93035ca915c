"""A board never drops or forges a task, whatever it is sent: real processes (broker,
cloud, edges, a board), the board's gRPC service called directly where a test needs a
request the coordinator would never send."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import grpc
import pytest

from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from testbed.mqtt import BrokerAddress, MqttClient
from testbed.observation import ObservationSpec
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from testbed.serde import task_record_from_pb
from testbed.topics import Topics
from testbed.types import FailureReason, Outcome
from testbed.zoo.catalog import Catalog
from tests.waiting import wait_until

from .test_live_bench import make_bench

pytestmark = pytest.mark.slow

ONE_BOARD = {"count": 1, "energy": {"meter": "estimated"}}


def board(bench: LiveBench) -> agent_pb2_grpc.AgentServiceStub:
    return bench.agents["agent-0"].connect()


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def rogue_client(bench: LiveBench) -> MqttClient:
    """An MQTT client that is no node of the bench: anyone on the broker."""
    return MqttClient(BrokerAddress.from_url(bench.launcher.broker_url), "rogue").connect()


def test_malformed_calls_answer_invalid_argument_and_change_nothing(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    with make_bench(tmp_path, tiny_zoo, agents=ONE_BOARD) as bench:
        bench.start(PolicySource("local"))
        stub = board(bench)
        spec = ObservationSpec.from_config(bench.cfg)
        good_spec = json.loads(spec.to_json())
        short = [0.5] * (spec.action_dim - 1)
        nan = [0.5] * spec.action_dim
        nan[-2] = math.nan
        edges = [
            agent_pb2.EdgeEndpoint(
                edge_id=s.id, address=bench.launcher.nodes[s.id].address,
                position=common_pb2.Position(x_m=math.nan if i == 0 else 0.0, y_m=0.0),
            )
            for i, s in enumerate(bench.cfg.edge_specs())
        ]  # fmt: skip
        calls = {
            "config a list": agent_pb2.ConfigureRequest(agent_id="agent-0", config_yaml="- 1\n"),
            "an edge at NaN": agent_pb2.ConfigureRequest(
                agent_id="agent-0", config_yaml=bench.cfg.to_yaml(), edges=edges
            ),
            "config a scalar": agent_pb2.ConfigureRequest(agent_id="agent-0", config_yaml="42"),
            "spec {}": agent_pb2.LoadPolicyRequest(name="greedy", spec_json="{}"),
            "spec a list": agent_pb2.LoadPolicyRequest(name="greedy", spec_json="[1, 2]"),
            "spec not JSON": agent_pb2.LoadPolicyRequest(name="greedy", spec_json="{oops"),
            "spec wrong types": agent_pb2.LoadPolicyRequest(
                name="greedy", spec_json=json.dumps({**good_spec, "num_edges": "two"})
            ),
            "spec unknown field": agent_pb2.LoadPolicyRequest(
                name="greedy", spec_json=json.dumps({**good_spec, "edges": 2})
            ),
            "unknown heuristic": agent_pb2.LoadPolicyRequest(name="bogus"),
            "short action": agent_pb2.StepRequest(
                slot=0, generate=True, action=agent_pb2.Action(raw=short)
            ),
            "NaN action": agent_pb2.StepRequest(
                slot=0, generate=True, action=agent_pb2.Action(raw=nan)
            ),
        }
        before = stub.Status(agent_pb2.StatusRequest())
        for what, request in calls.items():
            method = {
                agent_pb2.ConfigureRequest: stub.Configure,
                agent_pb2.LoadPolicyRequest: stub.LoadPolicy,
                agent_pb2.StepRequest: stub.Step,
            }[type(request)]
            error = refused(lambda method=method, request=request: method(request))
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (what, error.details())
            assert "Traceback" not in (error.details() or "")
        assert "action" in refused(lambda: stub.Step(calls["short action"])).details()
        assert "NaN" in refused(lambda: stub.Step(calls["NaN action"])).details()
        assert "num_edges" in refused(lambda: stub.LoadPolicy(calls["spec wrong types"])).details()
        assert "greedy" in refused(lambda: stub.LoadPolicy(calls["unknown heuristic"])).details()
        after = stub.Status(agent_pb2.StatusRequest())
        assert after == before  # nothing was drawn, queued or reconfigured
        records = bench.step(0).records  # and the board serves on
        assert [(r.task_id, r.outcome) for r in records] == [("agent-0/s000000", Outcome.COMPLETED)]


def test_an_actor_that_breaks_mid_task_is_refused_at_load(tmp_path: Path, tiny_zoo: Path) -> None:
    pytest.importorskip("onnx", reason="the lying actor is built with onnx")
    from tests.lying_actor import lying_actor

    with make_bench(tmp_path, tiny_zoo, agents=ONE_BOARD) as bench:
        bench.start(PolicySource("local"))
        stub = board(bench)
        spec = ObservationSpec.from_config(bench.cfg)
        request = agent_pb2.LoadPolicyRequest(
            name="onnx", onnx_model=lying_actor(spec), spec_json=spec.to_json()
        )
        error = refused(lambda: stub.LoadPolicy(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "gives an array of shape (2,)" in error.details()
        report = stub.Step(agent_pb2.StepRequest(slot=0, generate=True))  # still local
        (record,) = [task_record_from_pb(t) for t in report.tasks]
        assert record.outcome is Outcome.COMPLETED and not record.edge_id, record.detail


def test_garbage_retained_edge_states_never_crash_the_board(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo, agents=ONE_BOARD) as bench:
        bench.start(PolicySource("local"))  # the edges never publish again: ours stays
        topics = Topics.of(bench.cfg)
        with rogue_client(bench) as rogue:
            rogue.publish(topics.edge_state("edge-0"), b"[1, 2, 3]", retain=True)
            rogue.publish(
                topics.edge_state("edge-1"),
                b'{"queue_length": NaN, "running": "two", "cached": 7}',
                retain=True,
            ).wait_for_publish()
        log = bench.launcher.nodes["agent-0"].log_path
        stub, slots = board(bench), itertools.count()

        def both_ignored() -> bool:
            slot = next(slots)
            report = stub.Step(agent_pb2.StepRequest(slot=slot, generate=True))  # answers
            (record,) = [task_record_from_pb(t) for t in report.tasks]
            assert record.task_id == f"agent-0/s{slot:06d}"
            assert record.outcome is Outcome.COMPLETED, record.detail
            ignored = [line for line in log.read_text().splitlines() if "state ignored" in line]
            return any("edge-0" in x for x in ignored) and any("edge-1" in x for x in ignored)

        assert wait_until(both_ignored)


def test_the_registry_view_decides_which_edges_are_alive(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo, agents=ONE_BOARD) as bench:
        bench.start(PolicySource("offload"))  # the nearest live edge, whole tasks
        stub = board(bench)
        me = bench.cfg.agent_specs()[0].position_m
        assert me is not None
        edges = {s.id: math.dist(me, s.position_m or (0, 0)) for s in bench.cfg.edge_specs()}
        nearest, other = sorted(edges, key=edges.__getitem__)
        spec = ObservationSpec.from_config(bench.cfg)
        alive_at = [spec.feature_names().index(f"edge{j}_alive") for j in range(2)]
        slots = itertools.count()

        def edge_of_next_task(edges_alive: list[str] | None) -> str:
            """None: no registry view (an older coordinator)."""
            request = agent_pb2.StepRequest(slot=next(slots), generate=True)
            if edges_alive is not None:
                request.edges_alive.extend(edges_alive)
                request.edges_view = True
            report = stub.Step(request)
            (record,) = [task_record_from_pb(t) for t in report.tasks]
            assert record.outcome is Outcome.COMPLETED, record.detail
            edge_of_next_task.observation = list(report.observation)  # type: ignore[attr-defined]
            return record.edge_id

        topics = Topics.of(bench.cfg)
        with rogue_client(bench) as rogue:
            for edge_id in edges:  # a forged last will for every edge
                rogue.publish(topics.status(edge_id), b"offline", retain=True).wait_for_publish()
            # an old coordinator (no view): the board believes MQTT, as it always did
            assert wait_until(lambda: edge_of_next_task(None) == "")
            # the registry holds both alive: the forgery is ignored
            assert edge_of_next_task([nearest, other]) == nearest
            observed = edge_of_next_task.observation  # type: ignore[attr-defined]
            assert [observed[i] for i in alive_at] == [1.0, 1.0]
            for edge_id in edges:
                rogue.publish(topics.status(edge_id), b"online", retain=True).wait_for_publish()
            assert wait_until(lambda: edge_of_next_task(None) == nearest)
            assert edge_of_next_task([]) == ""  # the registry holds no edge alive
        # the registry lost the nearest edge: dead for the board, though MQTT says online
        assert {edge_of_next_task([other]) for _ in range(3)} == {other}


def test_drain_ends_every_queued_task_as_no_task_slot(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo, agents=ONE_BOARD) as bench:
        bench.start(PolicySource("local"))
        stub = board(bench)
        for slot in range(3):  # phase one of a trainer's slots: drawn and queued, not served
            stub.Step(agent_pb2.StepRequest(slot=slot, generate=True, observe_only=True))
        assert stub.Status(agent_pb2.StatusRequest()).queue_length == 3
        report = stub.Step(agent_pb2.StepRequest(slot=3, generate=True, drain=True))
        records = [task_record_from_pb(t) for t in report.tasks]
        assert [r.task_id for r in records] == [f"agent-0/s{s:06d}" for s in range(3)]
        assert all(r.reason is FailureReason.NO_TASK_SLOT and r.served_slot == 3 for r in records)
        assert all(r.outcome is Outcome.FAILED and "run ended" in r.detail for r in records)
        assert not report.acted and report.queue_length == 0 and not report.observation
        status = stub.Status(agent_pb2.StatusRequest())
        assert (status.tasks_generated, status.tasks_finished, status.queue_length) == (3, 3, 0)
        again = stub.Step(agent_pb2.StepRequest(slot=4, drain=True))
        assert not again.tasks and not again.acted  # nothing left, nothing drawn


def test_a_corrupted_model_file_on_the_board_is_never_run(tmp_path: Path, tiny_zoo: Path) -> None:
    zoo = tmp_path / "zoo" / "tiny"
    shutil.copytree(tiny_zoo, zoo)
    tasks = {"num_types": 1, "flops_per_cycle": 1.0}  # every task needs diffusion-s
    with make_bench(tmp_path, zoo, agents=ONE_BOARD, tasks=tasks) as bench:
        bench.start(PolicySource("local"))  # the edges fetched theirs before we corrupt it
        path = Catalog.load(zoo).get("diffusion-s").path(zoo)
        clean = path.read_bytes()
        flipped = bytearray(clean)
        flipped[len(clean) // 2] ^= 0x01  # one bit of a weight: still a loadable model
        for slot, corrupted in enumerate((bytes(flipped), clean + b"\0")):
            path.write_bytes(corrupted)
            (record,) = bench.step(slot).records
            assert record.outcome is Outcome.FAILED, "a corrupted model was run"
            assert record.reason is FailureReason.LOCAL_FAILED
            assert record.detail.startswith("checksum_mismatch"), record.detail
        path.write_bytes(clean)  # a later clean copy loads
        (record,) = bench.step(2).records
        assert record.outcome is Outcome.COMPLETED, record.detail
