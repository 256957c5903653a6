"""/auth/*: registration, email verification, login and the current user, over AuthService."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, status

from gateway.deps import AuthStub, BearerToken, ClientAddress
from gateway.errors import LOGIN_OVERRIDES, error_responses, rpc_errors
from gateway.schemas import (
    ChangePasswordRequest,
    ForgotPasswordRequest,
    GenerateOtpRequest,
    LoginRequest,
    OtpSentOut,
    PasswordResetOut,
    RegisteredOut,
    RegisterRequest,
    ResetPasswordRequest,
    ResetRequestedOut,
    TokenForm,
    TokenOut,
    UserOut,
    VerifiedOut,
    VerifyOtpRequest,
)
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.platform import metadata
from ocrmesh.platform.grpc_client import bearer_metadata

# auth_svc throttles per client address: it hears who the client is from us.
CLIENT_ADDRESS_KEY = metadata.CLIENT_ADDRESS


def _client(address: str) -> tuple[tuple[str, str], ...]:
    return ((CLIENT_ADDRESS_KEY, address),) if address else ()


router = APIRouter(prefix="/auth", tags=["auth"])

AUTH = "auth"


_DESCRIPTIONS = {
    400: "Refused by the auth service's rules that no schema states (a common password, the "
    "user's own name or address as password, an undeliverable address, a wrong or expired code); "
    "its message says which.",
    401: "Missing, invalid, expired or revoked credentials.",
    403: "The email address is not verified yet.",
    422: "The body does not match the schema (FastAPI's list of field errors).",
    429: "Too many attempts or code requests for this email address (whether or not it has an "
    "account), or from this client; see Retry-After.",
    503: "The auth service is unavailable.",
    504: "The auth service did not answer in time.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses({code: _DESCRIPTIONS[code] for code in (*codes, 429, 503, 504)})


# OpenAPI links: what a client does next with what it just sent or got (sign up, verify,
# log in, ask who it is). Schemathesis' stateful tests walk them too.
def _then(status_code: int, description: str, **links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {status_code: {"description": description, "links": links}}


_REGISTERED = _then(
    202,
    "Accepted; a code is on its way to a new address.",
    VerifyEmail={"operationId": "verify_otp", "requestBody": {"email": "$request.body#/email"}},
    ResendCode={"operationId": "generate_otp", "requestBody": {"email": "$request.body#/email"}},
    LogIn={
        "operationId": "login",
        "requestBody": {"username": "$request.body#/email", "password": "$request.body#/password"},
    },
)
_VERIFIED = _then(
    200,
    "Verified.",
    LogIn={"operationId": "login", "requestBody": {"username": "$response.body#/user/email"}},
)
_LOGGED_IN = _then(
    200,
    "A bearer token.",
    WhoAmI={
        "operationId": "me",
        "parameters": {"header.Authorization": "Bearer {$response.body#/access_token}"},
    },
)


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="register",
    responses={**_REGISTERED, **_errors(400, 422)},
    summary="Create an account and email a verification code",
    description=(
        "Answers 202 alike whether or not the address already has an account: a new address "
        "gets a verification code, an existing owner a notice that someone tried to sign up "
        "(none within the resend cooldown, so a double-click mails once)."
    ),
)
async def register(body: RegisterRequest, auth: AuthStub, client: ClientAddress) -> RegisteredOut:
    with rpc_errors(AUTH):
        await auth.Register(
            auth_pb2.RegisterRequest(name=body.name, email=body.email, password=body.password),
            metadata=_client(client),
        )
    return RegisteredOut()


@router.post(
    "/generate_otp",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="generate_otp",
    responses=_errors(400, 422),
    summary="Email a new verification code (the same answer for every address)",
    description=(
        "Answers 202 alike for every address, with or without an account. At most one code per "
        "`resend_after_seconds` goes to an address; a request sooner gets the same answer and "
        "mails nothing."
    ),
)
async def generate_otp(body: GenerateOtpRequest, auth: AuthStub, client: ClientAddress) -> OtpSentOut:
    with rpc_errors(AUTH):
        reply = await auth.SendOtp(auth_pb2.SendOtpRequest(email=body.email), metadata=_client(client))
    return OtpSentOut(
        resend_after_seconds=reply.resend_after_seconds, expires_in_seconds=reply.expires_in_seconds
    )


@router.post(
    "/verify_otp",
    operation_id="verify_otp",
    responses={**_VERIFIED, **_errors(400, 422)},
    summary="Verify the email address with the emailed code",
)
async def verify_otp(body: VerifyOtpRequest, auth: AuthStub, client: ClientAddress) -> VerifiedOut:
    with rpc_errors(AUTH):
        reply = await auth.VerifyOtp(
            auth_pb2.VerifyOtpRequest(email=body.email, otp=body.code), metadata=_client(client)
        )
    return VerifiedOut(user=UserOut.from_proto(reply.user))


async def _login(auth: AuthStub, email: str, password: str, client: str) -> TokenOut:
    with rpc_errors(AUTH, LOGIN_OVERRIDES):
        reply = await auth.Login(
            auth_pb2.LoginRequest(email=email, password=password), metadata=_client(client)
        )
    return TokenOut(access_token=reply.access_token, expires_in=reply.expires_in)


@router.post(
    "/login",
    operation_id="login",
    responses={**_LOGGED_IN, **_errors(400, 401, 403, 422)},
    summary="Log in with JSON {username, password}; username is the email",
)
async def login(body: LoginRequest, auth: AuthStub, client: ClientAddress) -> TokenOut:
    return await _login(auth, body.username, body.password, client)


@router.post(
    "/token",
    responses=_errors(400, 401, 403, 422),
    summary="Log in with an OAuth2 password-flow form (what the /docs Authorize button uses)",
)
async def token(form: Annotated[TokenForm, Form()], auth: AuthStub, client: ClientAddress) -> TokenOut:
    return await _login(auth, form.username, form.password, client)


@router.get("/me", operation_id="me", responses=_errors(401), summary="The user the bearer token belongs to")
async def me(token: BearerToken, auth: AuthStub) -> UserOut:
    with rpc_errors(AUTH):
        reply = await auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token))
    return UserOut.from_proto(reply.user)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_errors(400, 422),
    summary="Email a password reset code (the same answer for every address)",
    description=(
        "Answers 202 alike for every address, with or without an account; like generate_otp, "
        "a request within the resend cooldown of the address's last code mails nothing."
    ),
)
async def forgot_password(
    body: ForgotPasswordRequest, auth: AuthStub, client: ClientAddress
) -> ResetRequestedOut:
    with rpc_errors(AUTH):
        reply = await auth.RequestPasswordReset(
            auth_pb2.RequestPasswordResetRequest(email=body.email), metadata=_client(client)
        )
    return ResetRequestedOut(expires_in_seconds=reply.expires_in_seconds)


@router.post(
    "/password/reset",
    responses=_errors(400, 422),
    summary="Set a new password with the emailed reset code; logs out every session",
)
async def reset_password(
    body: ResetPasswordRequest, auth: AuthStub, client: ClientAddress
) -> PasswordResetOut:
    with rpc_errors(AUTH):
        await auth.ResetPassword(
            auth_pb2.ResetPasswordRequest(email=body.email, otp=body.otp, new_password=body.new_password),
            metadata=_client(client),
        )
    return PasswordResetOut()


@router.post(
    "/password/change",
    responses=_errors(400, 401, 422),
    summary="Change the password (the current one is required); other sessions are logged out",
)
async def change_password(
    body: ChangePasswordRequest, token: BearerToken, auth: AuthStub, client: ClientAddress
) -> TokenOut:
    with rpc_errors(AUTH):
        reply = await auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(
                current_password=body.current_password, new_password=body.new_password
            ),
            metadata=(*bearer_metadata(token), *_client(client)),
        )
    return TokenOut(access_token=reply.access_token, expires_in=reply.expires_in)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(401),
    summary="Revoke the bearer token",
)
async def logout(token: BearerToken, auth: AuthStub) -> Response:
    with rpc_errors(AUTH):
        await auth.Logout(auth_pb2.LogoutRequest(), metadata=bearer_metadata(token))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout_all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(401),
    summary="Revoke every token of the bearer's user (log out everywhere)",
)
async def logout_all(token: BearerToken, auth: AuthStub) -> Response:
    with rpc_errors(AUTH):
        await auth.Logout(auth_pb2.LogoutRequest(everywhere=True), metadata=bearer_metadata(token))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
