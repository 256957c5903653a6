"""Request-scoped values carried in contextvars (request id), shared by servers and clients."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

from ocrmesh.platform import metadata

REQUEST_ID_HEADER = metadata.REQUEST_ID

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# What a caller may send as a request id: printable, no spaces, bounded (it lands in logs).
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    """A fresh request id (32 hex characters). Unique, not secret: a PRNG draw instead of
    uuid4's system call for 16 random bytes, on every request without an id."""
    return f"{random.getrandbits(128):032x}"


def accept_request_id(candidate: str | None) -> str:
    """The caller's request id when it is acceptable, otherwise a new one."""
    if candidate and _ACCEPTABLE.fullmatch(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str | None:
    """The request id of the call being handled, if any."""
    return _request_id.get()


def set_request_id(request_id: str | None) -> object:
    """Bind a request id to the current context; returns a token for `reset_request_id`."""
    return _request_id.set(request_id)


def reset_request_id(token: object) -> None:
    """Undo `set_request_id`."""
    _request_id.reset(token)  # type: ignore[arg-type]
