import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmailKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMAIL_KIND_UNSPECIFIED: _ClassVar[EmailKind]
    EMAIL_KIND_VERIFICATION_CODE: _ClassVar[EmailKind]
    EMAIL_KIND_OCR_COMPLETED: _ClassVar[EmailKind]
EMAIL_KIND_UNSPECIFIED: EmailKind
EMAIL_KIND_VERIFICATION_CODE: EmailKind
EMAIL_KIND_OCR_COMPLETED: EmailKind

class EmailRequested(_message.Message):
    __slots__ = ("event_id", "to", "subject", "body", "kind", "created_at", "correlation_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    to: str
    subject: str
    body: str
    kind: EmailKind
    created_at: _timestamp_pb2.Timestamp
    correlation_id: str
    def __init__(self, event_id: _Optional[str] = ..., to: _Optional[str] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., kind: _Optional[_Union[EmailKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation_id: _Optional[str] = ...) -> None: ...
