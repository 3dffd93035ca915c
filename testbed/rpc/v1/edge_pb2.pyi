from testbed.rpc.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskHeader(_message.Message):
    __slots__ = ("task_id", "agent_id", "task_type", "model", "share", "units", "steps", "download", "data_bytes", "slot", "upload_rate_mbps", "max_output_bytes")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_RATE_MBPS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    agent_id: str
    task_type: str
    model: _common_pb2.ModelRef
    share: float
    units: int
    steps: int
    download: bool
    data_bytes: int
    slot: int
    upload_rate_mbps: float
    max_output_bytes: int
    def __init__(self, task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., task_type: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., share: _Optional[float] = ..., units: _Optional[int] = ..., steps: _Optional[int] = ..., download: _Optional[bool] = ..., data_bytes: _Optional[int] = ..., slot: _Optional[int] = ..., upload_rate_mbps: _Optional[float] = ..., max_output_bytes: _Optional[int] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: TaskHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[TaskHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "edge_id", "outcome", "reason", "detail", "timing", "energy", "cache_hit", "units_done", "bytes_fetched", "output_sha256", "outputs")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    UNITS_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FETCHED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    edge_id: str
    outcome: _common_pb2.TaskOutcome
    reason: _common_pb2.FailureReason
    detail: str
    timing: _common_pb2.EdgeTiming
    energy: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnergyPart]
    cache_hit: bool
    units_done: int
    bytes_fetched: int
    output_sha256: bytes
    outputs: bytes
    def __init__(self, task_id: _Optional[str] = ..., edge_id: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.TaskOutcome, str]] = ..., reason: _Optional[_Union[_common_pb2.FailureReason, str]] = ..., detail: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.EdgeTiming, _Mapping]] = ..., energy: _Optional[_Iterable[_Union[_common_pb2.EnergyPart, _Mapping]]] = ..., cache_hit: _Optional[bool] = ..., units_done: _Optional[int] = ..., bytes_fetched: _Optional[int] = ..., output_sha256: _Optional[bytes] = ..., outputs: _Optional[bytes] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CachedModel(_message.Message):
    __slots__ = ("model", "size_bytes", "in_use", "last_used_seq", "compute_share", "steps")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_SEQ_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SHARE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    size_bytes: int
    in_use: bool
    last_used_seq: int
    compute_share: float
    steps: int
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., size_bytes: _Optional[int] = ..., in_use: _Optional[bool] = ..., last_used_seq: _Optional[int] = ..., compute_share: _Optional[float] = ..., steps: _Optional[int] = ...) -> None: ...

class CacheCounters(_message.Message):
    __slots__ = ("hits", "misses", "evictions", "fetches", "bytes_fetched", "checksum_failures", "rejected_missing")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    FETCHES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FETCHED_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FAILURES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_MISSING_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    evictions: int
    fetches: int
    bytes_fetched: int
    checksum_failures: int
    rejected_missing: int
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ..., evictions: _Optional[int] = ..., fetches: _Optional[int] = ..., bytes_fetched: _Optional[int] = ..., checksum_failures: _Optional[int] = ..., rejected_missing: _Optional[int] = ...) -> None: ...

class EdgeState(_message.Message):
    __slots__ = ("edge_id", "seq", "queue_length", "running", "cached", "cache_used_bytes", "cache_capacity_bytes", "counters", "cpu_ghz", "position", "runtime", "address", "uplink_capacity_mbps", "timestamp_unix_s", "queued_work_s", "unit_compute_ms")
    class UnitComputeMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CACHE_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    CPU_GHZ_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    UPLINK_CAPACITY_MBPS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    QUEUED_WORK_S_FIELD_NUMBER: _ClassVar[int]
    UNIT_COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    seq: int
    queue_length: int
    running: int
    cached: _containers.RepeatedCompositeFieldContainer[CachedModel]
    cache_used_bytes: int
    cache_capacity_bytes: int
    counters: CacheCounters
    cpu_ghz: float
    position: _common_pb2.Position
    runtime: str
    address: str
    uplink_capacity_mbps: float
    timestamp_unix_s: float
    queued_work_s: float
    unit_compute_ms: _containers.ScalarMap[str, float]
    def __init__(self, edge_id: _Optional[str] = ..., seq: _Optional[int] = ..., queue_length: _Optional[int] = ..., running: _Optional[int] = ..., cached: _Optional[_Iterable[_Union[CachedModel, _Mapping]]] = ..., cache_used_bytes: _Optional[int] = ..., cache_capacity_bytes: _Optional[int] = ..., counters: _Optional[_Union[CacheCounters, _Mapping]] = ..., cpu_ghz: _Optional[float] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ..., runtime: _Optional[str] = ..., address: _Optional[str] = ..., uplink_capacity_mbps: _Optional[float] = ..., timestamp_unix_s: _Optional[float] = ..., queued_work_s: _Optional[float] = ..., unit_compute_ms: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class ModelOpResult(_message.Message):
    __slots__ = ("ok", "reason", "detail", "timing", "state")
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    reason: _common_pb2.FailureReason
    detail: str
    timing: _common_pb2.EdgeTiming
    state: EdgeState
    def __init__(self, ok: _Optional[bool] = ..., reason: _Optional[_Union[_common_pb2.FailureReason, str]] = ..., detail: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.EdgeTiming, _Mapping]] = ..., state: _Optional[_Union[EdgeState, _Mapping]] = ...) -> None: ...

class SetAllocationRequest(_message.Message):
    __slots__ = ("compute_share", "steps")
    class ComputeShareEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class StepsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COMPUTE_SHARE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    compute_share: _containers.ScalarMap[str, float]
    steps: _containers.ScalarMap[str, int]
    def __init__(self, compute_share: _Optional[_Mapping[str, float]] = ..., steps: _Optional[_Mapping[str, int]] = ...) -> None: ...
