"""Why ocr_svc refuses a document, once, for both ends of the call: ocr_svc attaches the
reason to its INVALID_ARGUMENT status as a `google.rpc.ErrorInfo` (the rich status of AIP-193),
and an edge reads it back to choose its answer (the gateway: 413 for too many pages or a
page too large, 415 for a format it does not take, 422 for an encrypted or unreadable file).

The message of the status stays the human sentence; the reason is for machines.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2

# ErrorInfo.domain of every refusal: the service that decided it.
DOMAIN: Final = "ocr.ocrmesh"
# Where gRPC carries the rich status (google.rpc.Status with details).
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"


class DocumentRefusal(StrEnum):
    """`ErrorInfo.reason` of a refused document."""

    # Not an image, a TIFF or a PDF (the bytes say so, whatever the file is called).
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    # A file of an accepted format that cannot be read: truncated, corrupt, a fake header.
    UNREADABLE = "UNREADABLE"
    # A password-protected PDF.
    ENCRYPTED = "ENCRYPTED"
    # More pages than the deployment reads in one request (OCR_MAX_PAGES).
    TOO_MANY_PAGES = "TOO_MANY_PAGES"
    # A page whose raster (at the render resolution) is over the pixel cap.
    PAGE_TOO_LARGE = "PAGE_TOO_LARGE"


def refusal_metadata(reason: DocumentRefusal, message: str) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a google.rpc.Status (INVALID_ARGUMENT, `message`) whose
    details hold an ErrorInfo with `reason`: set it, then abort with INVALID_ARGUMENT and
    the same message (gRPC checks that the two agree)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason.value, domain=DOMAIN))
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def refusal_from_metadata(
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
) -> DocumentRefusal | None:
    """The refusal a failed call's trailing metadata carries; None when there is none (or
    one this code does not know, from a newer ocr_svc)."""
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            details = status_pb2.Status.FromString(value).details
        except DecodeError:
            return None
        for detail in details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == DOMAIN:
                try:
                    return DocumentRefusal(info.reason)
                except ValueError:
                    return None
    return None
