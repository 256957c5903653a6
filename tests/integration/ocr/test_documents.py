"""ocr_svc reading documents over real gRPC with the real default engine: scanned PDFs and
multi-page TIFFs page by page, in order, a page event before each page's lines; a PDF's
text layer returned as it is (or OCRed when asked); pages scanned turned or crooked read
upright; every hostile file refused with its reason while the worker keeps serving, a PDF
renderer that dies mid-document costing only that request; RenderDocument streaming the
file back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import Sequence

import grpc
import psutil  # type: ignore[import-untyped]
import pytest

from harness import documents
from harness.images import SAMPLE_PARAGRAPH, sample_multiline_png
from harness.pages import page_error_rate
from ocr_svc.engines.rapid import RapidOcrEngine
from ocrmesh.ocr.v1 import ocr_pb2
from ocrmesh.platform import metadata
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.rules.document_refusals import DocumentRefusal, refusal_from_metadata
from tests.integration.ocr.conftest import StartOcr
from tests.integration.ocr.ocr_support import RunningOcr, completed_of, lines_of
from tests.unit.ocr.scripted_engine import ScriptedEngine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MAX_CER = 0.02
SERVING = 1


def call(
    ocr: RunningOcr, data: bytes, *, force_ocr: bool = False, languages: Sequence[str] = ()
) -> grpc.aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse]:
    return ocr.stub.Recognize(
        ocr_pb2.RecognizeRequest(image=data, force_ocr=force_ocr, languages=languages),
        metadata=bearer_metadata(ocr.token()),
        timeout=120,
    )


async def events_of(ocr: RunningOcr, data: bytes, **kwargs: object) -> list[ocr_pb2.RecognizeResponse]:
    return [event async for event in call(ocr, data, **kwargs)]  # type: ignore[arg-type]


def pages_of(events: Sequence[ocr_pb2.RecognizeResponse]) -> list[tuple[ocr_pb2.Page, list[ocr_pb2.Line]]]:
    """The page events, each with the lines that follow it; checks the stream's order."""
    assert events[0].WhichOneof("event") == "started"
    assert events[-1].WhichOneof("event") == "completed"
    pages: list[tuple[ocr_pb2.Page, list[ocr_pb2.Line]]] = []
    for event in events[1:-1]:
        kind = event.WhichOneof("event")
        if kind == "page":
            pages.append((event.page, []))
        else:
            assert kind == "line"
            assert pages, "a line before any page event"
            assert event.line.page == pages[-1][0].page
            pages[-1][1].append(event.line)
    lines = [line for _, page_lines in pages for line in page_lines]
    assert [line.index for line in lines] == list(range(len(lines)))
    assert [line.block for line in lines] == sorted(line.block for line in lines)
    return pages


@pytest.mark.parametrize("kind", ["pdf", "tiff"])
async def test_a_scanned_document_is_read_page_by_page_in_order(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine, kind: str
) -> None:
    doc = (documents.scanned_pdf if kind == "pdf" else documents.scanned_tiff)(3, lines=2)
    ocr = await start_ocr(rapid_engine)
    events = await events_of(ocr, doc.data)
    started = events[0].started
    assert (started.page_count, started.document_format) == (3, kind)
    assert (started.image_width, started.image_height) == (2550, 1260)
    pages = pages_of(events)
    assert [page.page for page, _ in pages] == [1, 2, 3]
    for (page, lines), truth in zip(pages, doc.page_texts, strict=True):
        assert (page.width, page.height, page.source, page.dpi, page.rotation) == (
            2550,
            1260,
            "ocr",
            300.0,
            0,
        )
        text = "\n".join(line.text for line in lines)
        assert page_error_rate(truth, text) <= MAX_CER, f"page {page.page}:\n{text}"
    completed = completed_of(events)
    assert (completed.page_count, completed.line_count) == (3, sum(len(lines) for _, lines in pages))


async def test_a_text_layer_is_returned_as_it_is_fast_and_force_ocr_reads_the_pixels(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    doc = documents.text_layer_pdf(pages=2)
    ocr = await start_ocr(rapid_engine)
    began = time.perf_counter()
    events = await events_of(ocr, doc.data)
    elapsed = time.perf_counter() - began
    pages = pages_of(events)
    assert [(page.page, page.source, page.dpi) for page, _ in pages] == [
        (1, "text_layer", 300.0),
        (2, "text_layer", 300.0),
    ]
    # Exact, Vietnamese tones included: nothing was OCRed.
    assert ["\n".join(line.text for line in lines) for _, lines in pages] == list(doc.page_texts)
    for _, lines in pages:
        for line in lines:
            assert " ".join(word.text for word in line.words) == line.text
            assert all(len(word.box) == 4 for word in line.words)
    assert completed_of(events).timings.detect_ms == 0.0
    assert elapsed < 3.0, f"{elapsed:.2f} s for two text-layer pages"

    english = documents.text_layer_pdf(pages=1, vietnamese=False)
    forced = await events_of(ocr, english.data, force_ocr=True)
    [(page, lines)] = pages_of(forced)
    assert page.source == "ocr"
    assert page_error_rate(english.truth_text, "\n".join(line.text for line in lines)) <= MAX_CER


async def test_pages_scanned_turned_or_crooked_are_read_upright(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    doc = documents.turned_pdf(((90, 0.0), (180, 4.0), (270, 0.0), (0, -4.0)))
    ocr = await start_ocr(rapid_engine)
    pages = pages_of(await events_of(ocr, doc.data))
    assert [page.rotation for page, _ in pages] == list(doc.upright_rotations)
    for (page, lines), skew, truth in zip(pages, doc.skews, doc.page_texts, strict=True):
        assert page.skew == pytest.approx(skew, abs=0.3)
        text = "\n".join(line.text for line in lines)
        # Upright, these pages read at CER 0.000-0.003: within 0.01 of that.
        assert page_error_rate(truth, text) <= 0.01, f"page {page.page}:\n{text}"


async def test_hostile_files_are_refused_with_their_reason_and_the_worker_keeps_serving(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    ocr = await start_ocr(rapid_engine, ocr_max_pages=3)
    for name, hostile in documents.hostile_documents(max_pages=3).items():
        began = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await events_of(ocr, hostile.data)
        error = refused.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert refusal_from_metadata(error.trailing_metadata()) is hostile.refusal, (name, error.details())
        assert time.perf_counter() - began < 5.0, name
    assert lines_of(await ocr.events(sample_multiline_png())) == list(SAMPLE_PARAGRAPH)
    assert await ocr.health() == SERVING


async def drain(
    stream: grpc.aio.UnaryStreamCall[ocr_pb2.RecognizeRequest, ocr_pb2.RecognizeResponse],
) -> None:
    while await stream.read() is not grpc.aio.EOF:
        pass


def pdf_helpers() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if any("pdf_helper.py" in part for part in child.cmdline())
    ]


async def test_a_pdf_renderer_that_dies_mid_document_costs_only_that_request(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    # Long enough that pages are still to render when the helper dies: the pages just ahead
    # of the one sent are read meanwhile.
    doc = documents.scanned_pdf(10, lines=2)
    ocr = await start_ocr(rapid_engine)
    stream = call(ocr, doc.data)
    for expected in ("started", "page"):
        event = await stream.read()
        assert isinstance(event, ocr_pb2.RecognizeResponse)
        assert event.WhichOneof("event") == expected
    [helper] = pdf_helpers()
    os.kill(helper.pid, signal.SIGKILL)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await drain(stream)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal_from_metadata(refused.value.trailing_metadata()) is DocumentRefusal.UNREADABLE
    # The page being rendered when it died: one after page 1.
    died = re.search(r"^page (\d+) of the PDF cannot be read", refused.value.details() or "")
    assert died is not None
    assert 2 <= int(died.group(1)) <= 10
    # The worker serves on, documents included, and leaves no helper behind.
    events = await events_of(ocr, documents.text_layer_pdf(pages=1).data)
    assert completed_of(events).page_count == 1
    await asyncio.sleep(0.2)
    assert pdf_helpers() == []
    assert await ocr.health() == SERVING


async def test_render_document_streams_a_header_then_the_file(
    start_ocr: StartOcr, rapid_engine: RapidOcrEngine
) -> None:
    doc = documents.text_layer_pdf(pages=2)
    ocr = await start_ocr(rapid_engine)
    request = ocr_pb2.RenderDocumentRequest(
        document=ocr_pb2.RecognizeRequest(image=doc.data, filename="report.pdf"),
        format=ocr_pb2.OUTPUT_FORMAT_TXT,
    )
    parts = [
        part
        async for part in ocr.stub.RenderDocument(request, metadata=bearer_metadata(ocr.token()), timeout=60)
    ]
    header = parts[0].header
    assert (header.content_type, header.filename, header.page_count) == (
        "text/plain; charset=utf-8",
        "report.txt",
        2,
    )
    text = b"".join(part.chunk for part in parts[1:]).decode()
    for truth in doc.page_texts:
        assert truth in text

    request.format = ocr_pb2.OUTPUT_FORMAT_PDF
    parts = [
        part
        async for part in ocr.stub.RenderDocument(request, metadata=bearer_metadata(ocr.token()), timeout=60)
    ]
    assert (parts[0].header.content_type, parts[0].header.filename) == ("application/pdf", "report.pdf")
    assert b"".join(part.chunk for part in parts[1:]).startswith(b"%PDF-")

    request.format = ocr_pb2.OUTPUT_FORMAT_UNSPECIFIED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in ocr.stub.RenderDocument(request, metadata=bearer_metadata(ocr.token()), timeout=60):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "OUTPUT_FORMAT_TXT" in (refused.value.details() or "")


async def test_a_user_whose_documents_in_flight_would_pass_the_page_budget_is_told_to_wait(
    start_ocr: StartOcr,
) -> None:
    # Each page's second line is held: the document is started, and in flight. It holds two
    # workers (its first two pages are read at once); the third is free for the next call.
    engine = ScriptedEngine(["line", "line"])
    held = engine.gate(1)
    ocr = await start_ocr(
        engine, ocr_workers=3, ocr_max_calls_per_user=0, ocr_max_pages_per_user=4, ocr_upright_pages=False
    )
    greedy = ocr.issuer.mint(sub=str(uuid.uuid4()), email="greedy@example.com")
    long_call = ocr.stub.Recognize(
        ocr_pb2.RecognizeRequest(image=documents.scanned_pdf(3, lines=2).data),
        metadata=bearer_metadata(greedy),
        timeout=60,
    )
    first = await long_call.read()
    assert isinstance(first, ocr_pb2.RecognizeResponse)
    assert first.started.page_count == 3
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in ocr.stub.Recognize(
            ocr_pb2.RecognizeRequest(image=documents.scanned_pdf(2, lines=2).data),
            metadata=bearer_metadata(greedy),
            timeout=60,
        ):
            pass
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "3 pages in progress" in (refused.value.details() or "")
    assert dict(refused.value.trailing_metadata() or ()).get(metadata.RETRY_AFTER_SECONDS) == "2"
    held.set()
    await drain(long_call)
    # Its pages are given back when the document is done.
    events = await events_of(ocr, documents.scanned_pdf(2, lines=2).data)
    assert completed_of(events).page_count == 2
