"""The JSON Schemas of docs/schemas/ and the payloads the code builds agree; telemetry's
task window and GPU probe say only what they measured."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from testbed.config import ConfigError, config_from_dict
from testbed.events import EventKind, event_payload, task_record_payload
from testbed.feed import FetchRequest, new_request_id
from testbed.messages import CacheCounters, EdgeStateSnapshot, ModelRef, TaskRecord
from testbed.payloads import PayloadSchema, stamped_json
from testbed.telemetry import GpuProbe, TaskWindow
from testbed.topics import Topics
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome
from testbed.zoo.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]


def _validator(kind: PayloadSchema) -> Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "schemas" / kind.file_name).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": kind.value}
    return Draft202012Validator(schema)


def _valid(kind: PayloadSchema, payload: str | bytes | dict) -> None:
    body = json.loads(payload) if isinstance(payload, str | bytes) else payload
    assert body["schema"] == kind.value
    errors = [e.message for e in _validator(kind).iter_errors(body)]
    assert not errors, errors


@pytest.mark.parametrize("kind", list(PayloadSchema))
def test_each_payload_kind_has_a_draft_2020_12_schema(kind: PayloadSchema) -> None:
    _validator(kind)


def test_the_schemas_list_every_enum_value_and_record_field() -> None:
    event = json.loads((ROOT / "docs/schemas/event.v1.json").read_text())
    assert event["properties"]["kind"]["enum"] == [k.value for k in EventKind]
    record = json.loads((ROOT / "docs/schemas/task-record.v1.json").read_text())["properties"]
    assert set(record) == {"schema", "energy_j", *(f.name for f in dataclasses.fields(TaskRecord))}
    assert record["reason"]["enum"] == [r.value for r in FailureReason]


def test_the_payloads_the_code_builds_match_their_schemas(tiny_zoo: Path) -> None:
    _valid(PayloadSchema.EVENT, event_payload("edge-0", EventKind.MODEL_EVICTED, {"model_id": "m"}))
    record = TaskRecord("agent-0/s000001", "agent-0", 1, "t0", "cgan-s", 1.0, 10.0, 1.0, 2,
                        Outcome.FAILED, FailureReason.DEADLINE, "late",
                        energy=[EnergyPart("tx", 0.5, EnergyMethod.MODELED)])  # fmt: skip
    payload = task_record_payload(record)
    _valid(PayloadSchema.TASK_RECORD, payload)
    assert payload["energy_j"] == 0.5 and payload["reason"] == "deadline"
    state = EdgeStateSnapshot("edge-0", 3, 1, 0, (), 0, 8_000_000, CacheCounters(hits=2))
    _valid(PayloadSchema.EDGE_STATE, state.to_json())
    assert EdgeStateSnapshot.from_json(state.to_json()) == state
    request = FetchRequest(new_request_id(), "edge-0", ModelRef("cgan-s"), (1, 2))
    _valid(PayloadSchema.FETCH_REQUEST, request.encode())
    assert FetchRequest.decode(request.encode()) == request
    catalog = Catalog.load(tiny_zoo)
    published = stamped_json(PayloadSchema.CATALOG, catalog.to_json())
    _valid(PayloadSchema.CATALOG, published)
    assert Catalog.from_json(published).entries == catalog.entries


def test_every_topic_is_under_the_bench() -> None:
    t = Topics("lab", "bench-2")
    topics = [t.catalog, t.fetch_requests, t.feed("e"), t.edge_state("e"), t.all_edge_states,
              t.status("n"), t.telemetry("n"), t.events("n"), t.tasks("a")]  # fmt: skip
    assert all(x.startswith("lab/bench-2/") for x in topics) and t.everything == "lab/bench-2/#"
    assert Topics.node_of(t.status("edge-3")) == Topics.node_of(t.edge_state("edge-3")) == "edge-3"


def test_the_task_window_counts_recent_tasks_and_their_percentiles() -> None:
    now = [0.0]
    window = TaskWindow(window_s=10.0, clock=lambda: now[0])
    assert window.figures() == {"window_s": 10.0, "count": 0, "per_s": 0.0}  # no made-up latency
    for latency in range(1, 21):
        window.note(float(latency))
    figures = window.figures()
    assert figures["count"] == 20 and figures["per_s"] == 2.0
    assert figures["latency_p50_ms"] == 10.0 and figures["latency_p95_ms"] == 19.0
    now[0] = 10.5  # all of them left the window
    assert window.figures()["count"] == 0


def test_without_nvml_the_record_has_no_gpu_figures() -> None:
    probe = GpuProbe()  # no NVIDIA driver here (NVML does not answer): nothing, not zeros
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("NVML answers on this machine")
    except Exception:
        assert probe.figures() == []
    finally:
        probe.close()


def test_a_bad_bench_id_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"telemetry": {"bench_id": "Lab/1"}})
    assert "telemetry.bench_id" in str(info.value)
    cfg = config_from_dict({"telemetry": {"bench_id": "lab-1"}, "broker": {"topic_prefix": "x"}})
    assert Topics.of(cfg).catalog == "x/lab-1/cloud/catalog"
    assert Topics.of(config_from_dict({})).root == "testbed/default"
