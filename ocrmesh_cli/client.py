"""The gateway's REST API as typed async calls (httpx), every failure a `CliError` with
the exit code its status deserves (ocrmesh_cli.errors)."""

from __future__ import annotations

import contextlib
import json
import mimetypes
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Final, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from ocrmesh.rules.ocr_events import OcrEvent
from ocrmesh_cli.documents import Rendered
from ocrmesh_cli.errors import CliError, ExitCode, exit_code_for_http
from ocrmesh_cli.events import parse_event

DEFAULT_URL: Final = "http://127.0.0.1:8000"
# Answers of the auth routes are a few hundred bytes; an error body is shown, so is bounded.
MAX_RESPONSE_BYTES: Final = 1024 * 1024
# One NDJSON event: a line with its box, or `completed` with the whole page's text.
MAX_EVENT_BYTES: Final = 4 * 1024 * 1024
# Connecting to a gateway that is there takes milliseconds; waiting longer helps no one.
CONNECT_TIMEOUT_S: Final = 10.0
USER_AGENT: Final = "ocrmesh-cli"

M = TypeVar("M", bound=BaseModel)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Answer):
    id: str
    name: str
    email: str
    is_verified: bool
    created_at: str | None = None


class Token(_Answer):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the scheme's name
    expires_in: int


class _Verified(_Answer):
    user: User


class _Detail(_Answer):
    detail: str = ""


def normalize_url(url: str) -> str:
    """`url` as the base of every request (no trailing slash). Raises ValueError unless it
    is an absolute http(s) URL."""
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return str(parsed).rstrip("/")


def error_detail(body: bytes) -> str:
    """The human part of an error body: the gateway's `detail` (a string, or FastAPI's list
    of validation errors), else the start of the body."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        if parts:
            return "; ".join(parts)
    text = body[:200].decode("utf-8", "replace").strip()
    return text or "no details"


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def http_error(status: int, body: bytes, headers: httpx.Headers, *, what: str) -> CliError:
    """The CliError for an error answer to `what` ("login", "me", ...; "" for no prefix)."""
    code = exit_code_for_http(status)
    detail = error_detail(body)
    if code == ExitCode.AUTH and status == 401:
        detail += " (run `ocrmesh login` again)"
    elif status in (404, 405):  # every route this client calls exists on an ocrmesh gateway
        detail += "; is --url an ocrmesh gateway?"
    retry_after = _retry_after(headers) if status == 429 else None
    message = f"{what}: {detail} (HTTP {status})" if what else f"{detail} (HTTP {status})"
    return CliError(code, message, retry_after=retry_after)


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise CliError(ExitCode.FAILURE, f"the answer from {response.url} is larger than {limit} bytes")
    return bytes(body)


async def _lines(response: httpx.Response, limit: int) -> AsyncIterator[bytes]:
    # httpx's aiter_lines has no bound on a line's length.
    pending = bytearray()
    async for chunk in response.aiter_bytes():
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            yield bytes(pending[:end])
            del pending[: end + 1]
        if len(pending) > limit:
            raise CliError(ExitCode.FAILURE, f"an OCR event from {response.url} is larger than {limit} bytes")
    if pending:
        yield bytes(pending)


# The declared type of an uploaded file: the bytes decide at the gateway; this is a courtesy.
_DOCUMENT_TYPES: Final = {".pdf": "application/pdf"}


def upload_type(filename: str) -> str:
    """The media type to declare for a file to read: its image or PDF type by name, else
    application/octet-stream (the gateway decides by the bytes)."""
    guessed, _ = mimetypes.guess_type(filename)
    if guessed and (guessed.startswith("image/") or guessed == "application/pdf"):
        return guessed
    suffix = "." + filename.rpartition(".")[2].lower() if "." in filename else ""
    return _DOCUMENT_TYPES.get(suffix, "application/octet-stream")


def _ocr_form(languages: Sequence[str], force_ocr: bool) -> dict[str, str] | None:
    form: dict[str, str] = {}
    if languages:
        form["languages"] = ",".join(languages)
    if force_ocr:
        form["force_ocr"] = "true"
    return form or None


class Gateway:
    """Calls to one gateway (`url`), each bounded by `timeout` seconds per network wait."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: httpx's own by default; tests pass an ASGI app's."""
        self.url = url
        self._http = httpx.AsyncClient(
            base_url=url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
            limits=httpx.Limits(max_connections=max_connections),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,  # a redirect would carry the token elsewhere
        )

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            message = f"the gateway at {self.url} did not answer in time"
            raise CliError(ExitCode.UNAVAILABLE, message) from None
        except httpx.TransportError as exc:
            message = f"cannot reach the gateway at {self.url}: {str(exc) or type(exc).__name__}"
            raise CliError(ExitCode.UNAVAILABLE, message) from None

    async def _call(
        self, method: str, path: str, *, what: str, body: Mapping[str, Any] | None = None, token: str = ""
    ) -> bytes:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with self._transport_errors():
            async with self._http.stream(method, path, json=body, headers=headers) as response:
                content = await _read_limited(response, MAX_RESPONSE_BYTES)
        if response.status_code >= 400 or response.status_code < 200:
            raise http_error(response.status_code, content, response.headers, what=what)
        return content

    def _parse(self, model: type[M], content: bytes) -> M:
        try:
            return model.model_validate_json(content)
        except ValidationError:
            raise CliError(
                ExitCode.FAILURE, f"{self.url} answered something other than the ocrmesh gateway's API"
            ) from None

    async def register(self, name: str, email: str, password: str) -> str:
        """Sign up; the answer says to look for the code in the mail."""
        body = {"name": name, "email": email, "password": password}
        content = await self._call("POST", "/auth/register", what="register", body=body)
        return self._parse(_Detail, content).detail

    async def verify(self, email: str, code: str) -> User:
        content = await self._call(
            "POST", "/auth/verify_otp", what="verify", body={"email": email, "otp": code}
        )
        return self._parse(_Verified, content).user

    async def login(self, email: str, password: str) -> Token:
        content = await self._call(
            "POST", "/auth/login", what="login", body={"username": email, "password": password}
        )
        return self._parse(Token, content)

    async def me(self, token: str) -> User:
        return self._parse(User, await self._call("GET", "/auth/me", what="me", token=token))

    async def logout(self, token: str) -> None:
        await self._call("POST", "/auth/logout", what="logout", token=token)

    async def recognize(
        self,
        token: str,
        data: bytes,
        filename: str,
        languages: Sequence[str] = (),
        *,
        force_ocr: bool = False,
    ) -> AsyncGenerator[OcrEvent, None]:
        """The events of `/ocr/stream` for one image or document in `languages` (none: the
        gateway's default, English), each as soon as it arrives."""
        request = self._http.build_request(
            "POST",
            "/ocr/stream",
            files={"file": (filename, data, upload_type(filename))},
            data=_ocr_form(languages, force_ocr),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson"},
        )
        with self._transport_errors():
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code != 200:
                    content = await _read_limited(response, MAX_RESPONSE_BYTES)
                    raise http_error(response.status_code, content, response.headers, what="")
                async for line in _lines(response, MAX_EVENT_BYTES):
                    event = parse_event(line)
                    if event is not None:
                        yield event
            finally:
                await response.aclose()

    async def render(
        self,
        token: str,
        data: bytes,
        filename: str,
        output_format: str,
        sink: BinaryIO,
        languages: Sequence[str] = (),
        *,
        force_ocr: bool = False,
    ) -> Rendered:
        """`/ocr?format=<output_format>` for one document, its answer written to `sink` chunk
        by chunk as it arrives (never held whole). Raises CliError; an answer that breaks
        off before its end is a failure (what reached `sink` is incomplete)."""
        request = self._http.build_request(
            "POST",
            "/ocr",
            params={"format": output_format},
            files={"file": (filename, data, upload_type(filename))},
            data=_ocr_form(languages, force_ocr),
            headers={"Authorization": f"Bearer {token}"},
        )
        with self._transport_errors():
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code != 200:
                    content = await _read_limited(response, MAX_RESPONSE_BYTES)
                    raise http_error(response.status_code, content, response.headers, what="")
                size = 0
                try:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                        size += len(chunk)
                except httpx.RemoteProtocolError:
                    raise CliError(
                        ExitCode.FAILURE, "the gateway's answer broke off before its end (nothing saved)"
                    ) from None
            finally:
                await response.aclose()
        count = response.headers.get("x-page-count", "")
        return Rendered(
            filename=_attachment_name(response.headers.get("content-disposition", "")),
            content_type=response.headers.get("content-type", ""),
            page_count=int(count) if count.isdigit() else None,
            size=size,
        )


def _attachment_name(disposition: str) -> str:
    """The plain `filename` of a Content-Disposition ("" when none): shown, never used as a path."""
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename":
            return value.strip().strip('"')
    return ""
