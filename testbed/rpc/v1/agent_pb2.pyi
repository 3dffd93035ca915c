from testbed.rpc.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EdgeEndpoint(_message.Message):
    __slots__ = ("edge_id", "address", "position")
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    edge_id: str
    address: str
    position: _common_pb2.Position
    def __init__(self, edge_id: _Optional[str] = ..., address: _Optional[str] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("agent_id", "config_yaml", "edges", "run_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_YAML_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    config_yaml: str
    edges: _containers.RepeatedCompositeFieldContainer[EdgeEndpoint]
    run_id: str
    def __init__(self, agent_id: _Optional[str] = ..., config_yaml: _Optional[str] = ..., edges: _Optional[_Iterable[_Union[EdgeEndpoint, _Mapping]]] = ..., run_id: _Optional[str] = ...) -> None: ...

class LoadPolicyRequest(_message.Message):
    __slots__ = ("name", "onnx_model", "spec_json", "seed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ONNX_MODEL_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    name: str
    onnx_model: bytes
    spec_json: str
    seed: int
    def __init__(self, name: _Optional[str] = ..., onnx_model: _Optional[bytes] = ..., spec_json: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("slot", "noise_std", "generate", "observe_only", "action", "edges_alive", "drain", "edges_view")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NOISE_STD_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EDGES_ALIVE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    EDGES_VIEW_FIELD_NUMBER: _ClassVar[int]
    slot: int
    noise_std: float
    generate: bool
    observe_only: bool
    action: Action
    edges_alive: _containers.RepeatedScalarFieldContainer[str]
    drain: bool
    edges_view: bool
    def __init__(self, slot: _Optional[int] = ..., noise_std: _Optional[float] = ..., generate: _Optional[bool] = ..., observe_only: _Optional[bool] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., edges_alive: _Optional[_Iterable[str]] = ..., drain: _Optional[bool] = ..., edges_view: _Optional[bool] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("target", "ratio", "download", "raw")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    target: int
    ratio: float
    download: bool
    raw: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, target: _Optional[int] = ..., ratio: _Optional[float] = ..., download: _Optional[bool] = ..., raw: _Optional[_Iterable[float]] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("task_id", "agent_id", "slot", "served_slot", "task_type", "model_id", "size_mbit", "density_cycles_per_bit", "deadline_s", "units", "steps", "edge_id", "share", "download", "outcome", "reason", "detail", "latency_ms", "t_local_ms", "t_tx_ms", "t_switch_ms", "t_edge_queue_ms", "t_edge_compute_ms", "t_agent_queue_ms", "edge_timing", "energy", "cache_hit", "local_units", "edge_units", "targets")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SERVED_SLOT_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_MBIT_FIELD_NUMBER: _ClassVar[int]
    DENSITY_CYCLES_PER_BIT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EDGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    T_LOCAL_MS_FIELD_NUMBER: _ClassVar[int]
    T_TX_MS_FIELD_NUMBER: _ClassVar[int]
    T_SWITCH_MS_FIELD_NUMBER: _ClassVar[int]
    T_EDGE_QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    T_EDGE_COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    T_AGENT_QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    EDGE_TIMING_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_UNITS_FIELD_NUMBER: _ClassVar[int]
    EDGE_UNITS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    agent_id: str
    slot: int
    served_slot: int
    task_type: str
    model_id: str
    size_mbit: float
    density_cycles_per_bit: float
    deadline_s: float
    units: int
    steps: int
    edge_id: str
    share: float
    download: bool
    outcome: _common_pb2.TaskOutcome
    reason: _common_pb2.FailureReason
    detail: str
    latency_ms: float
    t_local_ms: float
    t_tx_ms: float
    t_switch_ms: float
    t_edge_queue_ms: float
    t_edge_compute_ms: float
    t_agent_queue_ms: float
    edge_timing: _common_pb2.EdgeTiming
    energy: _containers.RepeatedCompositeFieldContainer[_common_pb2.EnergyPart]
    cache_hit: bool
    local_units: int
    edge_units: int
    targets: _containers.RepeatedCompositeFieldContainer[_common_pb2.TargetShare]
    def __init__(self, task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., slot: _Optional[int] = ..., served_slot: _Optional[int] = ..., task_type: _Optional[str] = ..., model_id: _Optional[str] = ..., size_mbit: _Optional[float] = ..., density_cycles_per_bit: _Optional[float] = ..., deadline_s: _Optional[float] = ..., units: _Optional[int] = ..., steps: _Optional[int] = ..., edge_id: _Optional[str] = ..., share: _Optional[float] = ..., download: _Optional[bool] = ..., outcome: _Optional[_Union[_common_pb2.TaskOutcome, str]] = ..., reason: _Optional[_Union[_common_pb2.FailureReason, str]] = ..., detail: _Optional[str] = ..., latency_ms: _Optional[float] = ..., t_local_ms: _Optional[float] = ..., t_tx_ms: _Optional[float] = ..., t_switch_ms: _Optional[float] = ..., t_edge_queue_ms: _Optional[float] = ..., t_edge_compute_ms: _Optional[float] = ..., t_agent_queue_ms: _Optional[float] = ..., edge_timing: _Optional[_Union[_common_pb2.EdgeTiming, _Mapping]] = ..., energy: _Optional[_Iterable[_Union[_common_pb2.EnergyPart, _Mapping]]] = ..., cache_hit: _Optional[bool] = ..., local_units: _Optional[int] = ..., edge_units: _Optional[int] = ..., targets: _Optional[_Iterable[_Union[_common_pb2.TargetShare, _Mapping]]] = ...) -> None: ...

class StepReport(_message.Message):
    __slots__ = ("agent_id", "slot", "acted", "observation", "action", "tasks", "queue_length", "step_ms", "in_flight")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ACTED_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    slot: int
    acted: bool
    observation: _containers.RepeatedScalarFieldContainer[float]
    action: Action
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    queue_length: int
    step_ms: float
    in_flight: int
    def __init__(self, agent_id: _Optional[str] = ..., slot: _Optional[int] = ..., acted: _Optional[bool] = ..., observation: _Optional[_Iterable[float]] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., queue_length: _Optional[int] = ..., step_ms: _Optional[float] = ..., in_flight: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent_id", "configured", "policy", "queue_length", "tasks_generated", "tasks_finished", "energy_method", "cpu_ghz", "position")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TASKS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FINISHED_FIELD_NUMBER: _ClassVar[int]
    ENERGY_METHOD_FIELD_NUMBER: _ClassVar[int]
    CPU_GHZ_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    configured: bool
    policy: str
    queue_length: int
    tasks_generated: int
    tasks_finished: int
    energy_method: str
    cpu_ghz: float
    position: _common_pb2.Position
    def __init__(self, agent_id: _Optional[str] = ..., configured: _Optional[bool] = ..., policy: _Optional[str] = ..., queue_length: _Optional[int] = ..., tasks_generated: _Optional[int] = ..., tasks_finished: _Optional[int] = ..., energy_method: _Optional[str] = ..., cpu_ghz: _Optional[float] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ...) -> None: ...
