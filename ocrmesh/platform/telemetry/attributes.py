"""Span attribute names ocrmesh sets: its own, and OpenTelemetry's semantic conventions."""

from __future__ import annotations

from typing import Final

# The request id of the call a span belongs to (`ocrmesh.platform.request_context`): the same
# value as in the log lines and the `x-request-id` metadata.
REQUEST_ID_ATTRIBUTE: Final = "ocrmesh.request_id"
# The user a request acts for (the semantic conventions' name): the id, never an address.
USER_ID_ATTRIBUTE: Final = "enduser.id"

__all__ = ["REQUEST_ID_ATTRIBUTE", "USER_ID_ATTRIBUTE"]
