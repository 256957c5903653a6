"""The gateway's NDJSON (`/ocr/stream`, docs/gateway.md) read into the OCR events, the one
model of ocrmesh.rules.ocr_events (`--grpc` gets the same events from its
`event_from_proto`); a line that is no event is this client's failure (exit 1)."""

from __future__ import annotations

from ocrmesh.rules.ocr_events import OcrEvent, UnreadableEvent, event_from_json
from ocrmesh_cli.errors import CliError, ExitCode


def parse_event(line: bytes) -> OcrEvent | None:
    """One NDJSON line of `/ocr/stream` as an event; None for a blank line or an event
    type this client does not know (a newer gateway's). Raises CliError (failure) for
    anything that is not the documented JSON."""
    try:
        return event_from_json(line)
    except UnreadableEvent:
        raise CliError(ExitCode.FAILURE, "the gateway sent an OCR event this client cannot read") from None
