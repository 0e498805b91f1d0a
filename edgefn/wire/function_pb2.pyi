from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FunctionMessage(_message.Message):
    __slots__ = ("ID", "QOS", "Topic", "Payload", "Timestamp", "FunctionName", "FunctionInvokeID", "Sequence", "Code", "Error", "Batch", "Retain", "ScheduledTime", "Output", "OutputQOS", "OutputRetain")
    ID_FIELD_NUMBER: _ClassVar[int]
    QOS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONNAME_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONINVOKEID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RETAIN_FIELD_NUMBER: _ClassVar[int]
    SCHEDULEDTIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTQOS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTRETAIN_FIELD_NUMBER: _ClassVar[int]
    ID: int
    QOS: int
    Topic: str
    Payload: bytes
    Timestamp: int
    FunctionName: str
    FunctionInvokeID: str
    Sequence: int
    Code: int
    Error: str
    Batch: _containers.RepeatedCompositeFieldContainer[FunctionMessage]
    Retain: bool
    ScheduledTime: str
    Output: bool
    OutputQOS: int
    OutputRetain: bool
    def __init__(self, ID: _Optional[int] = ..., QOS: _Optional[int] = ..., Topic: _Optional[str] = ..., Payload: _Optional[bytes] = ..., Timestamp: _Optional[int] = ..., FunctionName: _Optional[str] = ..., FunctionInvokeID: _Optional[str] = ..., Sequence: _Optional[int] = ..., Code: _Optional[int] = ..., Error: _Optional[str] = ..., Batch: _Optional[_Iterable[_Union[FunctionMessage, _Mapping]]] = ..., Retain: _Optional[bool] = ..., ScheduledTime: _Optional[str] = ..., Output: _Optional[bool] = ..., OutputQOS: _Optional[int] = ..., OutputRetain: _Optional[bool] = ...) -> None: ...
