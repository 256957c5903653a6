from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_TXT: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_HOCR: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_ALTO: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PDF: _ClassVar[OutputFormat]
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_TXT: OutputFormat
OUTPUT_FORMAT_HOCR: OutputFormat
OUTPUT_FORMAT_ALTO: OutputFormat
OUTPUT_FORMAT_PDF: OutputFormat

class RecognizeRequest(_message.Message):
    __slots__ = ("image", "filename", "languages", "force_ocr")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    FORCE_OCR_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filename: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    force_ocr: bool
    def __init__(self, image: _Optional[bytes] = ..., filename: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ..., force_ocr: _Optional[bool] = ...) -> None: ...

class RenderDocumentRequest(_message.Message):
    __slots__ = ("document", "format")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    document: RecognizeRequest
    format: OutputFormat
    def __init__(self, document: _Optional[_Union[RecognizeRequest, _Mapping]] = ..., format: _Optional[_Union[OutputFormat, str]] = ...) -> None: ...

class RenderDocumentResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: RenderedHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[RenderedHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class RenderedHeader(_message.Message):
    __slots__ = ("content_type", "filename", "page_count")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    filename: str
    page_count: int
    def __init__(self, content_type: _Optional[str] = ..., filename: _Optional[str] = ..., page_count: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("started", "line", "completed", "page")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    started: Started
    line: Line
    completed: Completed
    page: Page
    def __init__(self, started: _Optional[_Union[Started, _Mapping]] = ..., line: _Optional[_Union[Line, _Mapping]] = ..., completed: _Optional[_Union[Completed, _Mapping]] = ..., page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("engine", "image_width", "image_height", "page_count", "document_format")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    engine: str
    image_width: int
    image_height: int
    page_count: int
    document_format: str
    def __init__(self, engine: _Optional[str] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., page_count: _Optional[int] = ..., document_format: _Optional[str] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("page", "width", "height", "rotation", "skew", "source", "dpi")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    SKEW_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    page: int
    width: int
    height: int
    rotation: int
    skew: float
    source: str
    dpi: float
    def __init__(self, page: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rotation: _Optional[int] = ..., skew: _Optional[float] = ..., source: _Optional[str] = ..., dpi: _Optional[float] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("text", "confidence", "box")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    text: str
    confidence: float
    box: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, text: _Optional[str] = ..., confidence: _Optional[float] = ..., box: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("index", "text", "confidence", "box", "block", "page", "words")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    confidence: float
    box: _containers.RepeatedCompositeFieldContainer[Point]
    block: int
    page: int
    words: _containers.RepeatedCompositeFieldContainer[Word]
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., confidence: _Optional[float] = ..., box: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., block: _Optional[int] = ..., page: _Optional[int] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ...) -> None: ...

class Completed(_message.Message):
    __slots__ = ("full_text", "line_count", "timings", "page_count")
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    LINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    full_text: str
    line_count: int
    timings: Timings
    page_count: int
    def __init__(self, full_text: _Optional[str] = ..., line_count: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., page_count: _Optional[int] = ...) -> None: ...

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
