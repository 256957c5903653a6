"""Names on the wire that more than one process writes or reads: gRPC metadata keys (and the
HTTP headers they mirror). Spelled once, here; imported wherever they are used.

gRPC metadata keys are lower-case ASCII; HTTP header names are case-insensitive, so the same
spelling serves both.
"""

from __future__ import annotations

from typing import Final

# The request id of a call, from the REST edge through every gRPC hop (and the HTTP response
# header of the gateway).
REQUEST_ID: Final = "x-request-id"
# `authorization: Bearer <token>`: how a caller presents its access token.
AUTHORIZATION: Final = "authorization"
BEARER_SCHEME: Final = "Bearer"
# Trailing metadata of a refused call (RESOURCE_EXHAUSTED, UNAVAILABLE): whole seconds the
# caller should wait before trying again; the gateway turns it into HTTP's Retry-After.
RETRY_AFTER_SECONDS: Final = "retry-after-seconds"
# The address of the gateway's client, which auth_svc's throttles count against (sent only
# by the gateway; a direct caller is counted by its own peer address).
CLIENT_ADDRESS: Final = "x-client-address"

__all__ = ["AUTHORIZATION", "BEARER_SCHEME", "CLIENT_ADDRESS", "REQUEST_ID", "RETRY_AFTER_SECONDS"]
