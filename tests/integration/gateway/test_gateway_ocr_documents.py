"""PDFs and multi-page TIFFs at /ocr and /ocr/stream against the test OcrService: accepted
by their bytes, `force_ocr` passed on, ocr_svc's document refusals as 413/415/422, the
answer's format chosen by `format` or `Accept` (406/422 listing the formats), a rendered
document streamed chunk by chunk with its Content-Disposition, and a rendering that fails
after its first bytes aborting the connection rather than ending cleanly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.rules.document_refusals import DocumentRefusal

pytestmark = pytest.mark.timeout(60)

PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
TIFF_BYTES = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 64
TWO_PAGES = [["First page", "its second line"], ["Trang hai"]]
WAIT = 15.0


def pdf(
    name: str = "scan.pdf", content: bytes = PDF_BYTES, content_type: str = "application/pdf"
) -> dict[str, Any]:
    return {"file": (name, content, content_type)}


def bearer(mesh) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.token()}"}


@pytest.mark.parametrize(
    ("name", "content", "declared"),
    [
        ("scan.pdf", PDF_BYTES, "application/pdf"),
        ("scan.pdf", PDF_BYTES, "application/octet-stream"),
        ("scan.pdf", PDF_BYTES, "application/x-pdf"),
        ("pages.tiff", TIFF_BYTES, "image/tiff"),
    ],
)
async def test_pdfs_and_tiffs_reach_ocr_svc_as_they_are(
    client: httpx.AsyncClient, mesh, name: str, content: bytes, declared: str
) -> None:
    response = await client.post("/ocr", files=pdf(name, content, declared), headers=bearer(mesh))
    assert response.status_code == 200, response.text
    request = mesh.ocr.requests[-1]
    assert request.image == content
    assert request.filename == name
    assert request.force_ocr is False


async def test_bytes_that_are_no_format_read_stay_415_whatever_they_are_declared_as(
    client: httpx.AsyncClient, mesh
) -> None:
    response = await client.post(
        "/ocr", files=pdf("scan.pdf", b"PK\x03\x04 a zip, not a pdf", "application/pdf"), headers=bearer(mesh)
    )
    assert response.status_code == 415
    assert "PDF" in response.json()["detail"]
    assert mesh.ocr.requests == []


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), (" false ", False)])
async def test_force_ocr_is_passed_on(client: httpx.AsyncClient, mesh, value: str, expected: bool) -> None:
    response = await client.post("/ocr", files=pdf(), data={"force_ocr": value}, headers=bearer(mesh))
    assert response.status_code == 200, response.text
    assert mesh.ocr.requests[-1].force_ocr is expected


async def test_force_ocr_that_is_no_boolean_is_a_422_naming_the_field(
    client: httpx.AsyncClient, mesh
) -> None:
    for value in ("maybe", "1", "yes", "", "x" * 100):
        response = await client.post("/ocr", files=pdf(), data={"force_ocr": value}, headers=bearer(mesh))
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "force_ocr"]
    assert mesh.ocr.requests == []


async def test_the_json_result_has_the_pages_in_order_and_lines_with_their_page_and_words(
    client: httpx.AsyncClient, mesh
) -> None:
    mesh.ocr.pages = TWO_PAGES
    response = await client.post("/ocr", files=pdf(), headers=bearer(mesh))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [page["page"] for page in body["pages"]] == [1, 2]
    assert body["pages"][1] == {
        "page": 2,
        "width": 1240,
        "height": 1754,
        "rotation": 90,
        "skew": 0.5,
        "source": "text_layer",
        "dpi": 150.0,
    }
    assert [(line["page"], line["text"]) for line in body["lines"]] == [
        (1, "First page"),
        (1, "its second line"),
        (2, "Trang hai"),
    ]
    assert [word["text"] for word in body["lines"][2]["words"]] == ["Trang", "hai"]
    assert len(body["lines"][2]["words"][0]["box"]) == 4


async def test_the_stream_passes_page_events_and_the_lines_pages_and_words(
    client: httpx.AsyncClient, mesh
) -> None:
    mesh.ocr.pages = TWO_PAGES
    response = await client.post("/ocr/stream", files=pdf(), data={"force_ocr": "true"}, headers=bearer(mesh))
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["type"] for e in events] == ["started", "page", "line", "line", "page", "line", "completed"]
    assert events[0]["page_count"] == 2
    assert events[0]["document_format"] == "pdf"
    assert events[4]["source"] == "text_layer"
    assert events[5]["page"] == 2
    assert [word["text"] for word in events[5]["words"]] == ["Trang", "hai"]
    assert events[-1]["page_count"] == 2
    assert mesh.ocr.requests[-1].force_ocr is True


REFUSALS = [
    (DocumentRefusal.TOO_MANY_PAGES, 413),
    (DocumentRefusal.PAGE_TOO_LARGE, 413),
    (DocumentRefusal.UNSUPPORTED_FORMAT, 415),
    (DocumentRefusal.ENCRYPTED, 422),
    (DocumentRefusal.UNREADABLE, 422),
]


@pytest.mark.parametrize(("reason", "status"), REFUSALS, ids=[r.value for r, _ in REFUSALS])
@pytest.mark.parametrize("path", ["/ocr", "/ocr?format=pdf", "/ocr/stream"])
async def test_refused_documents_get_their_status_and_ocr_svcs_words(
    client: httpx.AsyncClient, mesh, reason: DocumentRefusal, status: int, path: str
) -> None:
    mesh.ocr.mode = f"refuse:{reason.value}"
    response = await client.post(path, files=pdf(), headers=bearer(mesh))
    assert response.status_code == status, response.text
    message = f"the document is refused: {reason.value.lower().replace('_', ' ')}"
    detail = response.json()["detail"]
    if status == 422:
        # Shaped as every 422 (FastAPI's list of field errors), on the file.
        assert detail == [{"type": "value_error", "loc": ["body", "file"], "msg": message, "input": None}]
    else:
        assert detail == message


@pytest.mark.parametrize(
    ("query", "accept", "content_type", "filename"),
    [
        ("?format=txt", None, "text/plain; charset=utf-8", "scan.txt"),
        ("?format=hocr", None, "text/vnd.hocr+html; charset=utf-8", "scan.hocr"),
        ("?format=alto", None, "application/xml", "scan.xml"),
        ("?format=pdf", None, "application/pdf", "scan.pdf"),
        ("", "text/plain", "text/plain; charset=utf-8", "scan.txt"),
        ("", "application/xhtml+xml", "text/vnd.hocr+html; charset=utf-8", "scan.hocr"),
        ("", "text/vnd.hocr+html", "text/vnd.hocr+html; charset=utf-8", "scan.hocr"),
        ("", "application/xml", "application/xml", "scan.xml"),
        ("", "application/pdf", "application/pdf", "scan.pdf"),
        ("", "image/png, application/pdf;q=0.5, text/plain;q=0.4", "application/pdf", "scan.pdf"),
        # The query parameter wins over the header.
        ("?format=txt", "application/pdf", "text/plain; charset=utf-8", "scan.txt"),
    ],
)
async def test_a_rendered_document_comes_in_the_format_asked_for(
    client: httpx.AsyncClient, mesh, query: str, accept: str | None, content_type: str, filename: str
) -> None:
    mesh.ocr.pages = TWO_PAGES
    headers = bearer(mesh) | ({"Accept": accept} if accept else {})
    response = await client.post(f"/ocr{query}", files=pdf(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == (
        f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    )
    assert response.headers["x-page-count"] == "2"
    assert response.content == b"First page\nits second line\fTrang hai"
    request = mesh.ocr.render_requests[-1]
    assert request.document.image == PDF_BYTES
    assert request.document.filename == "scan.pdf"
    assert mesh.ocr.requests == []  # rendering is RenderDocument's alone


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/*", "text/html;q=0.9, */*;q=0.1"]
)
async def test_json_is_the_default_answer(client: httpx.AsyncClient, mesh, accept: str | None) -> None:
    headers = bearer(mesh) | ({"Accept": accept} if accept else {})
    response = await client.post("/ocr", files=pdf(), headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "content-disposition" not in response.headers
    assert mesh.ocr.render_requests == []


async def test_an_accept_header_naming_no_format_is_a_406_listing_them_before_the_upload_is_sent_on(
    client: httpx.AsyncClient, mesh
) -> None:
    for accept in ("image/png", "application/json;q=0, text/csv"):
        response = await client.post("/ocr", files=pdf(), headers=bearer(mesh) | {"Accept": accept})
        assert response.status_code == 406
        detail = response.json()["detail"]
        for name in ("application/pdf", "text/plain", "json, txt, hocr, alto, pdf"):
            assert name in detail
    assert mesh.ocr.requests == []
    assert mesh.ocr.render_requests == []


async def test_an_unknown_format_is_a_422_listing_the_supported_ones(client: httpx.AsyncClient, mesh) -> None:
    response = await client.post("/ocr?format=docx", files=pdf(), headers=bearer(mesh))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "format"]
    for name in ("json", "txt", "hocr", "alto", "pdf"):
        assert f"'{name}'" in error["msg"]
    assert mesh.ocr.requests == []
    assert mesh.ocr.render_requests == []


async def test_a_file_name_beyond_ascii_is_sent_twice_as_rfc_6266_says(
    client: httpx.AsyncClient, mesh
) -> None:
    response = await client.post("/ocr?format=txt", files=pdf("Bảng kê.pdf"), headers=bearer(mesh))
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"B_ng k_.txt\"; filename*=UTF-8''B%E1%BA%A3ng%20k%C3%AA.txt"
    )


async def test_failures_before_the_first_chunk_keep_their_status(client: httpx.AsyncClient, mesh) -> None:
    mesh.ocr.mode = "busy"
    response = await client.post("/ocr?format=pdf", files=pdf(), headers=bearer(mesh))
    assert response.status_code == 429
    mesh.ocr.mode = "invalid"
    response = await client.post("/ocr?format=pdf", files=pdf(), headers=bearer(mesh))
    assert response.status_code == 400
    assert response.json() == {"detail": "image: cannot decode this file"}


async def test_an_empty_rendering_is_an_empty_file(client: httpx.AsyncClient, mesh) -> None:
    mesh.ocr.rendered = b""
    response = await client.post("/ocr?format=txt", files=pdf(), headers=bearer(mesh))
    assert response.status_code == 200
    assert response.content == b""


async def test_a_rendered_document_is_streamed_chunk_by_chunk(mesh, live_gateway) -> None:
    """Each chunk reaches the client while ocr_svc still holds the next one back: the gateway
    never gathers the document before sending it."""
    mesh.ocr.mode = "gated"
    mesh.ocr.rendered = bytes(range(256)) * 4
    mesh.ocr.chunk_size = 256
    gateway = await live_gateway(mesh.settings())
    mesh.ocr.gate.put_nowait(None)  # the first chunk; each later one waits for the test
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as http,
        http.stream("POST", "/ocr?format=pdf", files=pdf(), headers=bearer(mesh)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        received = bytearray()
        chunks = response.aiter_raw()
        while len(received) < len(mesh.ocr.rendered):
            received += await asyncio.wait_for(anext(chunks), WAIT)
            if len(received) % 256 == 0 and len(received) < len(mesh.ocr.rendered):
                assert mesh.ocr.gate.empty()
                mesh.ocr.gate.put_nowait(None)
    assert bytes(received) == mesh.ocr.rendered


async def test_a_rendering_that_fails_after_its_first_bytes_aborts_the_download(mesh, live_gateway) -> None:
    mesh.ocr.mode = "fail_mid"
    mesh.ocr.rendered = b"%PDF-1.7 and more than one chunk of it"
    gateway = await live_gateway(mesh.settings())
    async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await http.post("/ocr?format=pdf", files=pdf(), headers=bearer(mesh))
        # The gateway itself is fine: the next request is answered.
        mesh.ocr.mode = "ok"
        response = await http.post("/ocr?format=pdf", files=pdf(), headers=bearer(mesh))
        assert response.status_code == 200
        assert response.content == mesh.ocr.rendered


async def test_a_client_that_leaves_a_download_cancels_the_rendering(mesh, live_gateway) -> None:
    mesh.ocr.mode = "gated"
    mesh.ocr.rendered = b"x" * 64
    gateway = await live_gateway(mesh.settings(ocr_timeout_seconds=600))
    mesh.ocr.gate.put_nowait(None)
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as http,
        http.stream("POST", "/ocr?format=txt", files=pdf(), headers=bearer(mesh)) as response,
    ):
        assert response.status_code == 200
        await asyncio.wait_for(anext(response.aiter_raw()), WAIT)
    await asyncio.wait_for(mesh.ocr.cancelled.wait(), WAIT)


def test_the_output_formats_are_renderdocuments() -> None:
    from gateway.document_formats import OUTPUT_FORMATS, DocumentFormat

    assert set(OUTPUT_FORMATS) == set(DocumentFormat) - {DocumentFormat.JSON}
    assert ocr_pb2.OUTPUT_FORMAT_UNSPECIFIED not in OUTPUT_FORMATS.values()
