from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_KIND_UNSPECIFIED: _ClassVar[NodeKind]
    NODE_KIND_AGENT: _ClassVar[NodeKind]
    NODE_KIND_EDGE: _ClassVar[NodeKind]
    NODE_KIND_CLOUD: _ClassVar[NodeKind]
    NODE_KIND_COORDINATOR: _ClassVar[NodeKind]

class TaskOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_OUTCOME_UNSPECIFIED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_COMPLETED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_FAILED: _ClassVar[TaskOutcome]

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_REASON_UNSPECIFIED: _ClassVar[FailureReason]
    FAILURE_REASON_DEADLINE: _ClassVar[FailureReason]
    FAILURE_REASON_EDGE_UNREACHABLE: _ClassVar[FailureReason]
    FAILURE_REASON_MODEL_MISSING: _ClassVar[FailureReason]
    FAILURE_REASON_CHECKSUM_MISMATCH: _ClassVar[FailureReason]
    FAILURE_REASON_TIMEOUT: _ClassVar[FailureReason]
    FAILURE_REASON_MODEL_TOO_LARGE: _ClassVar[FailureReason]
    FAILURE_REASON_CACHE_FULL: _ClassVar[FailureReason]
    FAILURE_REASON_MODEL_UNKNOWN: _ClassVar[FailureReason]
    FAILURE_REASON_FETCH_FAILED: _ClassVar[FailureReason]
    FAILURE_REASON_LOAD_FAILED: _ClassVar[FailureReason]
    FAILURE_REASON_QUEUE_FULL: _ClassVar[FailureReason]
    FAILURE_REASON_INVALID_REQUEST: _ClassVar[FailureReason]
    FAILURE_REASON_INTERNAL: _ClassVar[FailureReason]
    FAILURE_REASON_SHUTTING_DOWN: _ClassVar[FailureReason]
    FAILURE_REASON_LOCAL_FAILED: _ClassVar[FailureReason]
    FAILURE_REASON_NO_TASK_SLOT: _ClassVar[FailureReason]
    FAILURE_REASON_AGENT_UNREACHABLE: _ClassVar[FailureReason]
    FAILURE_REASON_RECORD_MISSING: _ClassVar[FailureReason]
    FAILURE_REASON_CANCELLED: _ClassVar[FailureReason]
    FAILURE_REASON_DISK_FULL: _ClassVar[FailureReason]
    FAILURE_REASON_INTERRUPTED: _ClassVar[FailureReason]

class EnergyMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENERGY_METHOD_UNSPECIFIED: _ClassVar[EnergyMethod]
    ENERGY_METHOD_NVML_COUNTER: _ClassVar[EnergyMethod]
    ENERGY_METHOD_NVML_POWER: _ClassVar[EnergyMethod]
    ENERGY_METHOD_JETSON_RAILS: _ClassVar[EnergyMethod]
    ENERGY_METHOD_RAPL: _ClassVar[EnergyMethod]
    ENERGY_METHOD_ESTIMATED: _ClassVar[EnergyMethod]
    ENERGY_METHOD_MODELED: _ClassVar[EnergyMethod]
NODE_KIND_UNSPECIFIED: NodeKind
NODE_KIND_AGENT: NodeKind
NODE_KIND_EDGE: NodeKind
NODE_KIND_CLOUD: NodeKind
NODE_KIND_COORDINATOR: NodeKind
TASK_OUTCOME_UNSPECIFIED: TaskOutcome
TASK_OUTCOME_COMPLETED: TaskOutcome
TASK_OUTCOME_FAILED: TaskOutcome
FAILURE_REASON_UNSPECIFIED: FailureReason
FAILURE_REASON_DEADLINE: FailureReason
FAILURE_REASON_EDGE_UNREACHABLE: FailureReason
FAILURE_REASON_MODEL_MISSING: FailureReason
FAILURE_REASON_CHECKSUM_MISMATCH: FailureReason
FAILURE_REASON_TIMEOUT: FailureReason
FAILURE_REASON_MODEL_TOO_LARGE: FailureReason
FAILURE_REASON_CACHE_FULL: FailureReason
FAILURE_REASON_MODEL_UNKNOWN: FailureReason
FAILURE_REASON_FETCH_FAILED: FailureReason
FAILURE_REASON_LOAD_FAILED: FailureReason
FAILURE_REASON_QUEUE_FULL: FailureReason
FAILURE_REASON_INVALID_REQUEST: FailureReason
FAILURE_REASON_INTERNAL: FailureReason
FAILURE_REASON_SHUTTING_DOWN: FailureReason
FAILURE_REASON_LOCAL_FAILED: FailureReason
FAILURE_REASON_NO_TASK_SLOT: FailureReason
FAILURE_REASON_AGENT_UNREACHABLE: FailureReason
FAILURE_REASON_RECORD_MISSING: FailureReason
FAILURE_REASON_CANCELLED: FailureReason
FAILURE_REASON_DISK_FULL: FailureReason
FAILURE_REASON_INTERRUPTED: FailureReason
ENERGY_METHOD_UNSPECIFIED: EnergyMethod
ENERGY_METHOD_NVML_COUNTER: EnergyMethod
ENERGY_METHOD_NVML_POWER: EnergyMethod
ENERGY_METHOD_JETSON_RAILS: EnergyMethod
ENERGY_METHOD_RAPL: EnergyMethod
ENERGY_METHOD_ESTIMATED: EnergyMethod
ENERGY_METHOD_MODELED: EnergyMethod

class EnergyPart(_message.Message):
    __slots__ = ("part", "energy_j", "method")
    PART_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    part: str
    energy_j: float
    method: EnergyMethod
    def __init__(self, part: _Optional[str] = ..., energy_j: _Optional[float] = ..., method: _Optional[_Union[EnergyMethod, str]] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("x_m", "y_m")
    X_M_FIELD_NUMBER: _ClassVar[int]
    Y_M_FIELD_NUMBER: _ClassVar[int]
    x_m: float
    y_m: float
    def __init__(self, x_m: _Optional[float] = ..., y_m: _Optional[float] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("model_id", "version")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: str
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class TargetShare(_message.Message):
    __slots__ = ("edge_id", "share", "units", "outcome", "reason", "detail", "finish_ms", "planned_finish_ms", "t_tx_ms", "t_edge_queue_ms", "t_edge_compute_ms")
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FINISH_MS_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FINISH_MS_FIELD_NUMBER: _ClassVar[int]
    T_TX_MS_FIELD_NUMBER: _ClassVar[int]
    T_EDGE_QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    T_EDGE_COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    share: float
    units: int
    outcome: TaskOutcome
    reason: FailureReason
    detail: str
    finish_ms: float
    planned_finish_ms: float
    t_tx_ms: float
    t_edge_queue_ms: float
    t_edge_compute_ms: float
    def __init__(self, edge_id: _Optional[str] = ..., share: _Optional[float] = ..., units: _Optional[int] = ..., outcome: _Optional[_Union[TaskOutcome, str]] = ..., reason: _Optional[_Union[FailureReason, str]] = ..., detail: _Optional[str] = ..., finish_ms: _Optional[float] = ..., planned_finish_ms: _Optional[float] = ..., t_tx_ms: _Optional[float] = ..., t_edge_queue_ms: _Optional[float] = ..., t_edge_compute_ms: _Optional[float] = ...) -> None: ...

class EdgeTiming(_message.Message):
    __slots__ = ("receive_ms", "queue_ms", "fetch_ms", "verify_ms", "load_ms", "warmup_ms", "compute_ms", "total_ms")
    RECEIVE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    FETCH_MS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MS_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_MS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    receive_ms: float
    queue_ms: float
    fetch_ms: float
    verify_ms: float
    load_ms: float
    warmup_ms: float
    compute_ms: float
    total_ms: float
    def __init__(self, receive_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., fetch_ms: _Optional[float] = ..., verify_ms: _Optional[float] = ..., load_ms: _Optional[float] = ..., warmup_ms: _Optional[float] = ..., compute_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...
