from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("image", "filename", "languages")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filename: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image: _Optional[bytes] = ..., filename: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ...) -> None: ...

class ListLanguagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLanguagesResponse(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[Language]
    def __init__(self, languages: _Optional[_Iterable[_Union[Language, _Mapping]]] = ...) -> None: ...

class Language(_message.Message):
    __slots__ = ("code", "name", "engine")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    engine: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., engine: _Optional[str] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("started", "line", "completed")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    started: Started
    line: Line
    completed: Completed
    def __init__(self, started: _Optional[_Union[Started, _Mapping]] = ..., line: _Optional[_Union[Line, _Mapping]] = ..., completed: _Optional[_Union[Completed, _Mapping]] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("engine", "image_width", "image_height")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    engine: str
    image_width: int
    image_height: int
    def __init__(self, engine: _Optional[str] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("index", "text", "confidence", "box", "block")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    confidence: float
    box: _containers.RepeatedCompositeFieldContainer[Point]
    block: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., confidence: _Optional[float] = ..., box: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., block: _Optional[int] = ...) -> None: ...

class Completed(_message.Message):
    __slots__ = ("full_text", "line_count", "timings")
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    full_text: str
    line_count: int
    timings: Timings
    def __init__(self, full_text: _Optional[str] = ..., line_count: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "detect_ms", "recognize_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    DETECT_MS_FIELD_NUMBER: _ClassVar[int]
    RECOGNIZE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    detect_ms: float
    recognize_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., detect_ms: _Optional[float] = ..., recognize_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...
