"""`ocrmesh ocr --grpc`: OcrService.Recognize (and RenderDocument, for --format) straight
from ocr_svc, for internal callers that can reach it (OCR_ADDR), with the token from
`ocrmesh login` as bearer metadata. TLS as every mesh client: the GRPC_TLS_* variables
(ocrmesh.platform.settings.GrpcTls)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import BinaryIO, Final

import grpc

from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform import metadata
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.platform.settings import GrpcTls
from ocrmesh.platform.units import MiB
from ocrmesh.rules.ocr_events import OcrEvent, event_from_proto
from ocrmesh_cli.documents import Rendered
from ocrmesh_cli.errors import CliError, ExitCode, exit_code_for_grpc

# --format's names as RenderDocument's formats (JSON is the gateway's result; --json gives
# Recognize's events).
OUTPUT_FORMATS: Final = {
    "txt": ocr_pb2.OUTPUT_FORMAT_TXT,
    "hocr": ocr_pb2.OUTPUT_FORMAT_HOCR,
    "alto": ocr_pb2.OUTPUT_FORMAT_ALTO,
    "pdf": ocr_pb2.OUTPUT_FORMAT_PDF,
}

# ocr_svc's trailing metadata on RESOURCE_EXHAUSTED: seconds until a retry may work.
RETRY_AFTER_KEY: Final = metadata.RETRY_AFTER_SECONDS


def error_from_rpc(error: grpc.aio.AioRpcError, *, addr: str) -> CliError:
    """The CliError for a failed Recognize call."""
    code = error.code()
    retry_after = None
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        for key, value in error.trailing_metadata() or ():
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            if key == RETRY_AFTER_KEY and text.isdigit():
                retry_after = float(text)
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach ocr_svc at {addr}: {error.details() or 'unavailable'}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"ocr_svc at {addr} did not answer in time"
    else:
        message = f"{error.details() or code.name.lower()} ({code.name})"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            message += " (run `ocrmesh login` again)"
    return CliError(exit_code_for_grpc(code), message, retry_after=retry_after)


class GrpcOcr:
    """Recognize calls to ocr_svc at `addr` on one channel, each with `timeout` seconds."""

    def __init__(self, addr: str, token: str, *, timeout: float, max_image_bytes: int, tls: GrpcTls) -> None:
        self.addr = addr
        self._token = token
        self._timeout = timeout
        try:
            self._channel = create_channel(
                addr, tls=tls, stream_timeout=timeout, max_message_bytes=max_image_bytes + MiB
            )
        except OSError as exc:  # a TLS file that cannot be read
            raise CliError(ExitCode.USAGE, f"cannot read the gRPC TLS files: {exc}") from None
        self._stub = ocr_pb2_grpc.OcrServiceStub(self._channel)

    async def __aenter__(self) -> GrpcOcr:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def recognize(
        self, data: bytes, filename: str, languages: Sequence[str] = (), *, force_ocr: bool = False
    ) -> AsyncGenerator[OcrEvent, None]:
        """The events of Recognize for one image or document in `languages` (none: English),
        each as soon as it arrives."""
        call = self._stub.Recognize(
            ocr_pb2.RecognizeRequest(image=data, filename=filename, languages=languages, force_ocr=force_ocr),
            metadata=bearer_metadata(self._token),
            timeout=self._timeout,
        )
        try:
            async for response in call:
                event = event_from_proto(response)
                if event is not None:
                    yield event
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, addr=self.addr) from None
        finally:
            call.cancel()

    async def render(
        self,
        data: bytes,
        filename: str,
        output_format: str,
        sink: BinaryIO,
        languages: Sequence[str] = (),
        *,
        force_ocr: bool = False,
    ) -> Rendered:
        """RenderDocument for one document: its chunks written to `sink` as they arrive.
        Raises CliError (a failure after the first chunk too: `sink` is then incomplete)."""
        document = ocr_pb2.RecognizeRequest(
            image=data, filename=filename, languages=languages, force_ocr=force_ocr
        )
        call = self._stub.RenderDocument(
            ocr_pb2.RenderDocumentRequest(document=document, format=OUTPUT_FORMATS[output_format]),
            metadata=bearer_metadata(self._token),
            timeout=self._timeout,
        )
        header: ocr_pb2.RenderedHeader | None = None
        size = 0
        try:
            async for part in call:
                kind = part.WhichOneof("part")
                if kind == "header" and header is None:
                    header = part.header
                elif kind == "chunk":
                    sink.write(part.chunk)
                    size += len(part.chunk)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, addr=self.addr) from None
        finally:
            call.cancel()
        if header is None:
            raise CliError(ExitCode.FAILURE, f"ocr_svc at {self.addr} sent no document header")
        return Rendered(
            filename=header.filename,
            content_type=header.content_type,
            page_count=header.page_count,
            size=size,
        )
