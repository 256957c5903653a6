"""The gRPC entrypoint: parse the request, run the use case off the event loop, map the
outcome to a response or, through ONE table, to a status code."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from auth_svc import domain
from auth_svc.domain import UserView
from auth_svc.hashing_pool import BoundedPool
from auth_svc.keys import TokenSigner
from auth_svc.lookups import UserLookups
from auth_svc.use_cases import UseCases, user_key
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform import metadata
from ocrmesh.platform.telemetry import set_user_id
from ocrmesh.rules.tokens import TokenClaims, TokenVerifier

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

# Every outcome a caller may see, and its status. Anything else is a bug: INTERNAL.
STATUS_FOR: dict[type[Exception], grpc.StatusCode] = {
    domain.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    domain.InvalidCredentials: grpc.StatusCode.UNAUTHENTICATED,
    domain.NotVerified: grpc.StatusCode.FAILED_PRECONDITION,
    domain.InvalidCode: grpc.StatusCode.INVALID_ARGUMENT,
    domain.Throttled: grpc.StatusCode.RESOURCE_EXHAUSTED,
    domain.Busy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    domain.UserGone: grpc.StatusCode.UNAUTHENTICATED,
    # Infrastructure the caller can do nothing about but retry later.
    OperationalError: grpc.StatusCode.UNAVAILABLE,
    PoolTimeout: grpc.StatusCode.UNAVAILABLE,
}
# Trailing metadata that tells a client (the gateway: Retry-After) when to come back.
RETRY_AFTER_KEY = metadata.RETRY_AFTER_SECONDS
# The end client's network address, as the gateway saw it (`gateway.deps.client_address`).
# Without it (a direct gRPC caller) the peer address of the call is used.
CLIENT_ADDRESS_KEY = metadata.CLIENT_ADDRESS
TOKEN_TYPE = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


def status_for(exc: Exception) -> grpc.StatusCode | None:
    for kind in type(exc).__mro__:
        code = STATUS_FOR.get(kind)  # type: ignore[call-overload]
        if code is not None:
            return code
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_of(moment: datetime) -> Timestamp:
    """`moment` (timezone-aware) as a protobuf Timestamp, by integer arithmetic
    (`Timestamp.FromDatetime` cost a few percent of a GetCurrentUser)."""
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1_000)


def client_address(context: Context) -> str:
    """The address throttles count the call against: the gateway's `x-client-address`
    when it is an IP address, else the call's peer ("ipv4:1.2.3.4:5678" -> "1.2.3.4")."""
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_ADDRESS_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            try:
                return str(ipaddress.ip_address(text.strip()))
            except ValueError:
                break
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer[:100]


def user_message(user: UserView) -> auth_pb2.User:
    return auth_pb2.User(
        id=str(user.id),
        name=user.name,
        email=user.email,
        is_verified=user.is_verified,
        created_at=timestamp_of(user.created_at),
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        use_cases: UseCases,
        signer: TokenSigner,
        verifier: TokenVerifier,
        executor: Executor,
        hashing: BoundedPool | None = None,
    ) -> None:
        self.use_cases = use_cases
        self.signer = signer
        self.verifier = verifier
        # Cheap work (lookups, code checks); Argon2 work goes to `hashing` when given.
        self.executor = executor
        self.hashing = hashing
        self.lookups = UserLookups(use_cases.views.get_users, executor)

    async def _run(self, context: Context, fn: Callable[..., T], /, **kwargs: Any) -> T:
        # copy_context: the request id (logs, the mail's correlation id) follows into the thread.
        call = functools.partial(contextvars.copy_context().run, functools.partial(fn, **kwargs))
        return await self._answer(context, asyncio.get_running_loop().run_in_executor(self.executor, call))

    async def _hash(self, context: Context, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """`_run` in the bounded Argon2 pool: refused at once (Busy) when it is full."""
        if self.hashing is None:
            return await self._run(context, fn, **kwargs)
        call = functools.partial(contextvars.copy_context().run, functools.partial(fn, **kwargs))
        try:
            future = asyncio.wrap_future(self.hashing.submit(call))
        except domain.Busy as exc:
            await self._abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, exc)
        return await self._answer(context, future)

    async def _answer(self, context: Context, outcome: Awaitable[T]) -> T:
        """`outcome`'s result, or the call aborted with the status its exception maps to."""
        try:
            return await outcome
        except Exception as exc:
            code = status_for(exc)
            if code is None:
                raise
            await self._abort(context, code, exc)

    @staticmethod
    async def _abort(context: Context, code: grpc.StatusCode, exc: Exception) -> NoReturn:
        if isinstance(exc, domain.Throttled | domain.Busy):
            context.set_trailing_metadata(((RETRY_AFTER_KEY, str(exc.seconds_left)),))
        if isinstance(exc, domain.AuthError):
            message = str(exc)
        else:
            log.warning("dependency unavailable", extra={"error": type(exc).__name__})
            message = "service temporarily unavailable, retry"
        await context.abort(code, message)
        raise AssertionError("abort returned")  # pragma: no cover

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Context
    ) -> auth_pb2.RegisterResponse:
        # Whether the address was new or taken, the answer is the same empty one.
        await self._hash(
            context,
            self.use_cases.sign_up.register,
            name=request.name,
            email=request.email,
            password=request.password,
            client=client_address(context),
        )
        return auth_pb2.RegisterResponse()

    async def Login(self, request: auth_pb2.LoginRequest, context: Context) -> auth_pb2.LoginResponse:
        issued = await self._hash(
            context,
            self.use_cases.sessions.login,
            email=request.email,
            password=request.password,
            client=client_address(context),
        )
        return auth_pb2.LoginResponse(
            access_token=issued.token, token_type=TOKEN_TYPE, expires_in=issued.expires_in
        )

    async def SendOtp(self, request: auth_pb2.SendOtpRequest, context: Context) -> auth_pb2.SendOtpResponse:
        sent = await self._run(
            context, self.use_cases.sign_up.send_code, email=request.email, client=client_address(context)
        )
        return auth_pb2.SendOtpResponse(
            resend_after_seconds=sent.resend_after_seconds, expires_in_seconds=sent.expires_in_seconds
        )

    async def VerifyOtp(
        self, request: auth_pb2.VerifyOtpRequest, context: Context
    ) -> auth_pb2.VerifyOtpResponse:
        user = await self._run(
            context,
            self.use_cases.sign_up.verify_code,
            email=request.email,
            code=request.otp,
            client=client_address(context),
        )
        return auth_pb2.VerifyOtpResponse(user=user_message(user))

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Context
    ) -> auth_pb2.GetCurrentUserResponse:
        claims = await self._caller(context)
        user = await self._answer(context, self._current_user(claims.user_id))
        return auth_pb2.GetCurrentUserResponse(user=user_message(user))

    async def _caller(self, context: Context) -> TokenClaims:
        """The verified claims of the call's bearer token; the user goes on the call's span."""
        claims = await self.verifier.authenticate(context)
        set_user_id(claims.user_id)
        return claims

    async def _current_user(self, user_id: str) -> UserView:
        user = await self.lookups.user(user_key(user_id))
        if user is None:
            raise domain.UserGone()
        return user

    async def GetPublicKeys(
        self, request: auth_pb2.GetPublicKeysRequest, context: Context
    ) -> auth_pb2.GetPublicKeysResponse:
        keys = [
            auth_pb2.PublicKey(key_id=k.key_id, algorithm=k.algorithm, public_key_pem=k.public_key_pem)
            for k in self.signer.public_keys()
        ]
        return auth_pb2.GetPublicKeysResponse(
            keys=keys, issuer=self.signer.issuer, audience=self.signer.audience
        )

    async def RequestPasswordReset(
        self, request: auth_pb2.RequestPasswordResetRequest, context: Context
    ) -> auth_pb2.RequestPasswordResetResponse:
        sent = await self._run(
            context,
            self.use_cases.passwords.request_password_reset,
            email=request.email,
            client=client_address(context),
        )
        return auth_pb2.RequestPasswordResetResponse(expires_in_seconds=sent.expires_in_seconds)

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Context
    ) -> auth_pb2.ResetPasswordResponse:
        await self._hash(
            context,
            self.use_cases.passwords.reset_password,
            email=request.email,
            code=request.otp,
            new_password=request.new_password,
            client=client_address(context),
        )
        self.verifier.forget_revocations()
        return auth_pb2.ResetPasswordResponse()

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Context
    ) -> auth_pb2.ChangePasswordResponse:
        claims = await self._caller(context)
        issued = await self._hash(
            context,
            self.use_cases.passwords.change_password,
            user_id=claims.user_id,
            current_password=request.current_password,
            new_password=request.new_password,
            client=client_address(context),
        )
        self.verifier.forget_revocations()
        return auth_pb2.ChangePasswordResponse(
            access_token=issued.token, token_type=TOKEN_TYPE, expires_in=issued.expires_in
        )

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> auth_pb2.LogoutResponse:
        claims = await self._caller(context)
        await self._run(
            context,
            self.use_cases.sessions.logout,
            user_id=claims.user_id,
            token_id=claims.token_id,
            expires_at=claims.expires_at,
            everywhere=request.everywhere,
        )
        self.verifier.forget_revocations()
        return auth_pb2.LogoutResponse()

    async def GetRevocations(
        self, request: auth_pb2.GetRevocationsRequest, context: Context
    ) -> auth_pb2.GetRevocationsResponse:
        revoked = await self._run(context, self.use_cases.sessions.revocations)
        return auth_pb2.GetRevocationsResponse(
            token_ids=sorted(revoked.token_ids),
            epochs=[auth_pb2.SessionEpoch(user_id=u, epoch=e) for u, e in sorted(revoked.epochs.items())],
        )
