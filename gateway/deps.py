"""FastAPI dependencies, as `Annotated` aliases the routes declare parameters with."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from gateway.backends import Backends
from gateway.client_limits import forwarded_client
from gateway.errors import BEARER_CHALLENGE
from gateway.settings import GatewaySettings
from ocrmesh.platform.telemetry import set_user_id
from ocrmesh.rules.tokens import InvalidToken, KeysUnavailable, TokenClaims

if TYPE_CHECKING:
    from ocrmesh.auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from ocrmesh.ocr.v1.ocr_pb2_grpc import OcrServiceAsyncStub
else:
    # The async stub types exist only for type checkers; at run time they are these classes.
    from ocrmesh.auth.v1.auth_pb2_grpc import AuthServiceStub as AuthServiceAsyncStub
    from ocrmesh.ocr.v1.ocr_pb2_grpc import OcrServiceStub as OcrServiceAsyncStub

log = logging.getLogger(__name__)


class BearerScheme(OAuth2PasswordBearer):
    """The request's bearer token, or a 401 that says what to send.

    Declares the bearer scheme in OpenAPI, with /auth/token as the password-flow token URL
    (the /docs "Authorize" button). The scheme itself is the routes' dependency (one level
    of dependencies less per request than a function around it); only its error is ours,
    through the hook FastAPI provides for it."""

    def __init__(self) -> None:
        # The name OpenAPI has always given the scheme (clients generated from it use it).
        super().__init__(tokenUrl="/auth/token", scheme_name="OAuth2PasswordBearer")

    async def __call__(self, request: HTTPConnection) -> str:
        # "Authorization: Bearer " with nothing after it is as missing as no header.
        token = await super().__call__(request)
        if not token:
            raise self.make_not_authenticated_error()
        return token

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send 'Authorization: Bearer <token>'",
            headers=dict(BEARER_CHALLENGE),
        )


bearer_token = BearerScheme()


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request.


async def get_backends(request: Request) -> Backends:
    backends: Backends | None = getattr(request.app.state, "backends", None)
    if backends is None:
        # Only possible when the app is served without running its lifespan.
        raise RuntimeError("the gateway's lifespan has not run")
    return backends


BackendsDep = Annotated[Backends, Depends(get_backends)]


# Straight from the request rather than through BackendsDep: each level of dependencies
# costs FastAPI's solver time on every request.
async def get_settings(request: Request) -> GatewaySettings:
    return (await get_backends(request)).settings


async def get_auth_stub(request: Request) -> AuthServiceAsyncStub:
    return (await get_backends(request)).auth


async def get_ocr_stub(request: Request) -> OcrServiceAsyncStub:
    return (await get_backends(request)).ocr


async def get_client_address(request: Request) -> str:
    """The address of the client that sent the request: the TCP peer, or, when the peer is
    one of GATEWAY_TRUSTED_PROXIES, the right-most X-Forwarded-For entry that is not a
    trusted proxy (entries further left were written by the client and prove nothing)."""
    peer = request.client.host if request.client else ""
    trusted = (await get_settings(request)).gateway_trusted_proxies
    # One rule for every use of the client address (the per-client limits too).
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
AuthStub = Annotated[AuthServiceAsyncStub, Depends(get_auth_stub)]
OcrStub = Annotated[OcrServiceAsyncStub, Depends(get_ocr_stub)]
BearerToken = Annotated[str, Depends(bearer_token)]
ClientAddress = Annotated[str, Depends(get_client_address)]


async def get_current_user(token: BearerToken, backends: BackendsDep) -> TokenClaims:
    """The verified claims of the request's bearer token, checked locally with auth_svc's
    published keys (no call to auth_svc per request)."""
    try:
        claims = await backends.verifier.verify(token)
    except InvalidToken as exc:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED, detail=exc.reason, headers=dict(BEARER_CHALLENGE)
        ) from None
    except KeysUnavailable:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot verify tokens right now (the auth service is unavailable), try again shortly",
        ) from None
    set_user_id(claims.user_id)
    return claims


CurrentUser = Annotated[TokenClaims, Depends(get_current_user)]
