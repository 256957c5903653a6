"""The OCR stream's events as this client reads them, whether they came as the gateway's
NDJSON (`/ocr/stream`, docs/gateway.md) or as ocr_svc's `RecognizeResponse` messages."""

from __future__ import annotations

import json
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ocrmesh_cli.errors import CliError, ExitCode


class _Event(BaseModel):
    # A newer gateway may add fields: they are ignored, not an error.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Started(_Event):
    type: Literal["started"] = "started"
    engine: str
    image_width: int
    image_height: int


class Line(_Event):
    type: Literal["line"] = "line"
    index: int
    block: int = 0
    text: str
    confidence: float
    box: list[tuple[float, float]] = Field(default_factory=list)


class Completed(_Event):
    type: Literal["completed"] = "completed"
    full_text: str
    line_count: int
    timings: dict[str, float] = Field(default_factory=dict)


class Failed(_Event):
    """The stream's final `error` event: the HTTP status the failure would have had."""

    type: Literal["error"] = "error"
    status: int
    detail: str


OcrEvent = Started | Line | Completed | Failed
_EVENT: Final[TypeAdapter[OcrEvent]] = TypeAdapter(
    Annotated[Started | Line | Completed | Failed, Field(discriminator="type")]
)
_KNOWN_TYPES: Final = frozenset({"started", "line", "completed", "error"})


def parse_event(line: bytes) -> OcrEvent | None:
    """One NDJSON line of `/ocr/stream` as an event; None for a blank line or an event
    type this client does not know (a newer gateway's). Raises CliError (failure) for
    anything that is not the documented JSON."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
        if isinstance(data, dict) and data.get("type") not in _KNOWN_TYPES:
            return None
        return _EVENT.validate_python(data)
    except (ValueError, ValidationError):
        raise CliError(ExitCode.FAILURE, "the gateway sent an OCR event this client cannot read") from None
