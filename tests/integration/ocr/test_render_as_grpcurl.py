"""A debugging caller with no proto files (grpcurl) fetches a document's text rendering:
RenderDocument is found through server reflection, the request is written as JSON, and the
answers read back as JSON, a header then base64 chunks (docs/ocr.md, "Output formats").

grpcurl itself is in neither Debian's packages nor PyPI, so this test does what it does, step
by step, with the reflection client of grpcio-reflection and protobuf's JSON mapping."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from harness import documents
from ocr_svc.engines.rapid import RapidOcrEngine
from tests.integration.ocr.conftest import StartOcr

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICE = "ocrmesh.ocr.v1.OcrService"


def render_as_grpcurl_would(port: int, token: str, request_json: str) -> list[dict[str, object]]:
    """`grpcurl -plaintext -H 'authorization: Bearer ..' -d <json> host:port
    ocrmesh.ocr.v1.OcrService/RenderDocument`: every answer as grpcurl prints it (JSON)."""
    with grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    ) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(SERVICE).methods_by_name["RenderDocument"]
        request_class = GetMessageClass(method.input_type)
        response_class = GetMessageClass(method.output_type)
        request = json_format.Parse(request_json, request_class())
        call = channel.unary_stream(
            f"/{SERVICE}/RenderDocument",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        answers = call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=60)
        return [json_format.MessageToDict(answer) for answer in answers]


async def test_a_reflection_client_fetches_the_text_rendering_as_json(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    doc = documents.text_layer_pdf(pages=2)
    ocr = await start_ocr(rapid_engine)
    request_json = json.dumps(
        {
            "document": {"image": base64.b64encode(doc.data).decode(), "filename": "scan.pdf"},
            "format": "OUTPUT_FORMAT_TXT",
        }
    )

    answers = await asyncio.to_thread(render_as_grpcurl_would, ocr.app.port, ocr.token(), request_json)

    header = answers[0]["header"]
    assert header == {"contentType": "text/plain; charset=utf-8", "filename": "scan.txt", "pageCount": 2}
    chunks = [answer["chunk"] for answer in answers[1:]]
    text = b"".join(base64.b64decode(str(chunk)) for chunk in chunks).decode()
    pages = text.split("\f")
    assert len(pages) == 2
    for page, truth in zip(pages, doc.page_texts, strict=True):
        assert truth in page
