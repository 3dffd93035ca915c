from testbed.rpc.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "kind", "address", "position", "facts")
    class FactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    kind: _common_pb2.NodeKind
    address: str
    position: _common_pb2.Position
    facts: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.NodeKind, str]] = ..., address: _Optional[str] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ..., facts: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node", "heartbeat_interval_s")
    NODE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    heartbeat_interval_s: float
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class RegisterNodeReply(_message.Message):
    __slots__ = ("accepted", "session_id", "detail")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    session_id: str
    detail: str
    def __init__(self, accepted: _Optional[bool] = ..., session_id: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "session_id", "seq")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    session_id: str
    seq: int
    def __init__(self, node_id: _Optional[str] = ..., session_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("node_id", "session_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    session_id: str
    def __init__(self, node_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class DeregisterReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
