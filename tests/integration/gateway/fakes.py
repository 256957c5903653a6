"""Small AuthService/OcrService test servicers for the gateway tests: they behave like
auth_svc/ocr_svc only as far as each test needs (the real services meet the gateway in
the e2e suite), and run on real in-process gRPC servers with real signed tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from grpc import aio

from gateway.app import create_app
from gateway.settings import GatewaySettings
from harness.tokens import TokenIssuerForTests
from ocr_svc.servicer import bad_request_metadata
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.rules.document_refusals import DocumentRefusal, refusal_metadata
from ocrmesh.rules.tokens import InvalidToken, TokenVerifier, bearer_token_from_metadata

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
OCR_SERVICE = ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name

# The smallest valid PNG header is enough: the gateway sniffs, ocr_svc decodes.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ADA = {"user_id": "00000000-0000-4000-8000-00000000a0a0", "email": "ada@example.com", "name": "Ada Lovelace"}


def metadata_value(context: aio.ServicerContext[Any, Any], key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


@dataclass
class StoredUser:
    id: str
    name: str
    email: str
    password: str
    is_verified: bool = False

    def proto(self) -> auth_pb2.User:
        return auth_pb2.User(id=self.id, name=self.name, email=self.email, is_verified=self.is_verified)


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    """Users in a dict; tokens from the test issuer; errors with auth_svc's status codes."""

    def __init__(self, issuer: TokenIssuerForTests) -> None:
        self.issuer = issuer
        self.users: dict[str, StoredUser] = {}
        self.verifier = TokenVerifier(self._keys, issuer=issuer.issuer, audience=issuer.audience)
        self.seen_metadata: list[dict[str, str]] = []
        self.otp_requests: list[auth_pb2.VerifyOtpRequest] = []
        self.cooling_down: set[str] = set()
        self.codes_mailed: list[str] = []
        self.spent_budgets: set[str] = set()

    async def _keys(self) -> list[auth_pb2.PublicKey]:
        return self.issuer.public_keys()

    def _record(self, context: aio.ServicerContext[Any, Any]) -> None:
        self.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})

    def add_user(self, *, verified: bool = True, password: str = "correct horse", **who: str) -> StoredUser:
        fields = {**ADA, **who}
        user = StoredUser(
            id=fields["user_id"],
            name=fields["name"],
            email=fields["email"],
            password=password,
            is_verified=verified,
        )
        self.users[user.email] = user
        return user

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.RegisterResponse:
        self._record(context)
        if request.name == "boom":
            raise RuntimeError("connection to postgresql://admin:hunter2@db failed")
        if "@" not in request.email:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "email: not a valid email address")
        if len(request.password) < 12:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "password: at least 12 characters")
        if request.email in self.users:
            return auth_pb2.RegisterResponse()  # taken: the same answer (issue 15)
        user = StoredUser(
            id=f"user-{len(self.users) + 1}",
            name=request.name,
            email=request.email,
            password=request.password,
        )
        self.users[user.email] = user
        return auth_pb2.RegisterResponse()

    async def Login(
        self, request: auth_pb2.LoginRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.LoginResponse:
        self._record(context)
        user = self.users.get(request.email)
        if user is None or user.password != request.password:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
        assert user is not None
        if not user.is_verified:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "verify your email address first")
        token = self.issuer.mint(user_id=user.id, email=user.email, name=user.name)
        return auth_pb2.LoginResponse(access_token=token, token_type="bearer", expires_in=3600)

    async def SendOtp(
        self, request: auth_pb2.SendOtpRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.SendOtpResponse:
        self._record(context)
        # Like auth_svc (issue 28): a request within the cooldown is answered alike and mails
        # nothing; only a spent budget is RESOURCE_EXHAUSTED.
        if request.email in self.spent_budgets:
            context.set_trailing_metadata((("retry-after-seconds", "42"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many attempts; retry in 42 s")
        if request.email not in self.cooling_down:
            self.cooling_down.add(request.email)
            self.codes_mailed.append(request.email)
        return auth_pb2.SendOtpResponse(resend_after_seconds=60, expires_in_seconds=600)

    async def VerifyOtp(
        self, request: auth_pb2.VerifyOtpRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.VerifyOtpResponse:
        self._record(context)
        self.otp_requests.append(request)
        user = self.users.get(request.email)
        if user is None or request.otp != "012345":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wrong or expired code")
        assert user is not None
        user.is_verified = True
        return auth_pb2.VerifyOtpResponse(user=user.proto())

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetCurrentUserResponse:
        self._record(context)
        try:
            claims = await self.verifier.verify(
                bearer_token_from_metadata(context.invocation_metadata() or ())
            )
        except InvalidToken as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.reason)
            raise
        user = self.users.get(claims.email)
        if user is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no such user")
        assert user is not None
        return auth_pb2.GetCurrentUserResponse(user=user.proto())

    async def GetPublicKeys(
        self, request: auth_pb2.GetPublicKeysRequest, context: aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetPublicKeysResponse:
        return auth_pb2.GetPublicKeysResponse(
            keys=self.issuer.public_keys(), issuer=self.issuer.issuer, audience=self.issuer.audience
        )


def started_event() -> ocr_pb2.RecognizeResponse:
    return ocr_pb2.RecognizeResponse(
        started=ocr_pb2.Started(engine="fake", image_width=640, image_height=480)
    )


def line_event(index: int, text: str) -> ocr_pb2.RecognizeResponse:
    corners = [ocr_pb2.Point(x=x, y=y) for x, y in ((0, 0), (100, 0), (100, 20), (0, 20))]
    return ocr_pb2.RecognizeResponse(
        line=ocr_pb2.Line(index=index, text=text, confidence=0.9375, box=corners)
    )


def completed_event(texts: list[str]) -> ocr_pb2.RecognizeResponse:
    return ocr_pb2.RecognizeResponse(
        completed=ocr_pb2.Completed(
            full_text="\n".join(texts),
            line_count=len(texts),
            timings=ocr_pb2.Timings(decode_ms=1, detect_ms=2, recognize_ms=3, total_ms=6),
        )
    )


def page_event(page: int, *, source: str = "ocr", rotation: int = 0) -> ocr_pb2.RecognizeResponse:
    return ocr_pb2.RecognizeResponse(
        page=ocr_pb2.Page(
            page=page, width=1240, height=1754, rotation=rotation, skew=0.5, source=source, dpi=150
        )
    )


def document_events(pages: list[list[str]]) -> list[ocr_pb2.RecognizeResponse]:
    """A document's stream as ocr_svc sends it: started, per page a page event and its lines
    (with `page` and one word per space-separated part), completed."""
    events = [
        ocr_pb2.RecognizeResponse(
            started=ocr_pb2.Started(
                engine="fake",
                image_width=1240,
                image_height=1754,
                page_count=len(pages),
                document_format="pdf",
            )
        )
    ]
    index = 0
    for number, texts in enumerate(pages, start=1):
        events.append(
            page_event(number, source="text_layer" if number == 2 else "ocr", rotation=90 * (number - 1))
        )
        for text in texts:
            line = line_event(index, text)
            line.line.page = number
            for position, word in enumerate(text.split()):
                corners = [
                    ocr_pb2.Point(x=x + 50 * position, y=y) for x, y in ((0, 0), (40, 0), (40, 20), (0, 20))
                ]
                line.line.words.append(ocr_pb2.Word(text=word, confidence=0.5, box=corners))
            events.append(line)
            index += 1
    every = [text for texts in pages for text in texts]
    done = completed_event(every)
    done.completed.page_count = len(pages)
    events.append(done)
    return events


# What the fake's RenderDocument sends per format: (content type, extension).
RENDERED_TYPES = {
    ocr_pb2.OUTPUT_FORMAT_TXT: ("text/plain; charset=utf-8", "txt"),
    ocr_pb2.OUTPUT_FORMAT_HOCR: ("application/xhtml+xml", "hocr"),
    ocr_pb2.OUTPUT_FORMAT_ALTO: ("application/xml", "xml"),
    ocr_pb2.OUTPUT_FORMAT_PDF: ("application/pdf", "pdf"),
}


@dataclass
class FakeOcr(ocr_pb2_grpc.OcrServiceServicer):
    """Streams started / one line per text / completed, or the failure a test asks for.

    mode: "ok", "invalid" (INVALID_ARGUMENT before any event), "busy" (RESOURCE_EXHAUSTED),
    "fail_mid" (started, one line, then INTERNAL), "gated" (each event waits for `gate`),
    "hang" (nothing at all), "hang_after_start" (started, then nothing), "no_completion" (started, then ends),
    "refuse:<DocumentRefusal>" (INVALID_ARGUMENT with that refusal's ErrorInfo, as ocr_svc refuses
    a document). With `pages` set, Recognize streams that document (document_events).
    A request naming a language not in `languages` is refused as ocr_svc refuses it
    (INVALID_ARGUMENT with a BadRequest naming the field).

    RenderDocument: a header, then `rendered` (by default the format's name and the lines) in
    `chunk_size` chunks; modes "ok", "invalid", "busy", "refuse:<reason>" (before the header),
    "fail_mid" (after the first chunk), "gated" (each chunk waits for `gate`).
    """

    texts: list[str] = field(default_factory=lambda: ["Hello", "world"])
    mode: str = "ok"
    gate: asyncio.Queue[None] = field(default_factory=asyncio.Queue)
    requests: list[ocr_pb2.RecognizeRequest] = field(default_factory=list)
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    calls_started: asyncio.Event = field(default_factory=asyncio.Event)
    pages: list[list[str]] | None = None
    rendered: bytes | None = None
    chunk_size: int = 8
    render_requests: list[ocr_pb2.RenderDocumentRequest] = field(default_factory=list)
    languages: list[ocr_pb2.Language] = field(
        default_factory=lambda: [
            ocr_pb2.Language(code="en", name="English", engine="rapidocr"),
            ocr_pb2.Language(code="vi", name="Vietnamese", engine="rapidocr+tesseract"),
        ]
    )

    async def ListLanguages(
        self, request: ocr_pb2.ListLanguagesRequest, context: aio.ServicerContext[Any, Any]
    ) -> ocr_pb2.ListLanguagesResponse:
        self.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        return ocr_pb2.ListLanguagesResponse(languages=self.languages)

    async def Recognize(
        self, request: ocr_pb2.RecognizeRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ocr_pb2.RecognizeResponse]:
        self.requests.append(request)
        self.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.calls_started.set()
        try:
            readable = [language.code for language in self.languages]
            unknown = [code for code in request.languages if code not in readable]
            if unknown:
                message = (
                    f"language {unknown[0]!r} is not read here; this deployment reads: {', '.join(readable)}"
                )
                context.set_trailing_metadata(bad_request_metadata("languages", message))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            await self._refuse_if_asked(context)
            if self.mode == "invalid":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image: cannot decode this file")
            if self.mode == "hang":
                await asyncio.sleep(3600)
            if self.mode == "busy":
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the OCR queue is full, retry later")
            if self.pages is not None:
                events = document_events(self.pages)
            else:
                events = [started_event(), *(line_event(i, t) for i, t in enumerate(self.texts))]
                events.append(completed_event(self.texts))
            if self.mode == "fail_mid":
                yield events[0]
                yield events[1]
                raise RuntimeError("onnxruntime exploded at /opt/models/det.onnx")
            if self.mode == "hang_after_start":
                yield events[0]
                await asyncio.sleep(3600)
            if self.mode == "no_completion":
                yield events[0]
                return
            for event in events:
                if self.mode == "gated":
                    await self.gate.get()
                yield event
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def _refuse_if_asked(self, context: aio.ServicerContext[Any, Any]) -> None:
        if self.mode.startswith("refuse:"):
            reason = DocumentRefusal(self.mode.removeprefix("refuse:"))
            message = f"the document is refused: {reason.value.lower().replace('_', ' ')}"
            context.set_trailing_metadata(refusal_metadata(reason, message))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    async def RenderDocument(
        self, request: ocr_pb2.RenderDocumentRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ocr_pb2.RenderDocumentResponse]:
        self.render_requests.append(request)
        self.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.calls_started.set()
        try:
            await self._refuse_if_asked(context)
            if self.mode == "invalid":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image: cannot decode this file")
            if self.mode == "busy":
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the OCR queue is full, retry later")
            content_type, extension = RENDERED_TYPES[request.format]
            stem = (request.document.filename or "document").rsplit(".", 1)[0]
            pages = self.pages if self.pages is not None else [self.texts]
            yield ocr_pb2.RenderDocumentResponse(
                header=ocr_pb2.RenderedHeader(
                    content_type=content_type, filename=f"{stem}.{extension}", page_count=len(pages)
                )
            )
            body = self.rendered
            if body is None:
                body = "\f".join("\n".join(texts) for texts in pages).encode()
            for start in range(0, len(body), self.chunk_size):
                if self.mode == "gated":
                    await self.gate.get()
                yield ocr_pb2.RenderDocumentResponse(chunk=body[start : start + self.chunk_size])
                if self.mode == "fail_mid":
                    raise RuntimeError("fpdf2 exploded at /opt/fonts/DejaVuSans.ttf")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@dataclass
class Mesh:
    """The test servicers on their servers, and the token issuer."""

    issuer: TokenIssuerForTests
    auth: FakeAuth
    ocr: FakeOcr
    auth_server: MeshServer
    ocr_server: MeshServer
    auth_port: int
    ocr_port: int

    def settings(self, **overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "auth_addr": f"127.0.0.1:{self.auth_port}",
            "ocr_addr": f"127.0.0.1:{self.ocr_port}",
            "token_issuer": self.issuer.issuer,
            "token_audience": self.issuer.audience,
            "grpc_timeout_seconds": 3.0,
            "ocr_timeout_seconds": 10.0,
            **overrides,
        }
        return GatewaySettings(**values)

    def token(self, **claims: Any) -> str:
        return self.issuer.mint(**{**ADA, **claims})

    async def restart_ocr(self) -> None:
        """A new OcrService server on the same port, as after a restart of ocr_svc."""
        self.ocr_server, port = create_server(
            [HostedService.of(self.ocr, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)],
            port=self.ocr_port,
            host="127.0.0.1",
        )
        assert port == self.ocr_port
        await self.ocr_server.start()


@asynccontextmanager
async def gateway_client(settings: GatewaySettings, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app with its lifespan running, and an in-process client for it
    (ASGITransport: responses arrive whole, fine for everything but flush timing)."""
    app = create_app(settings, **app_options)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client
