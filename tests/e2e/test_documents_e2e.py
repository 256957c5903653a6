"""Documents through the real mesh (gateway, auth_svc, ocr_svc as processes): a 2-page
scanned PDF read page by page as JSON, as text with a form feed between its pages and as
a searchable PDF that an independent reader (pypdf) opens; a born-digital PDF's own text
layer returned as it is (and OCRed when asked); hostile documents refused with their
status, never a 5xx. Documents come from harness.documents (small pages: about a second
each)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from pypdf import PdfReader

from harness.documents import (
    Document,
    encrypted_pdf,
    fake_pdf,
    huge_page_pdf,
    many_pages_pdf,
    scanned_pdf,
    text_layer_pdf,
    truncated_pdf,
)
from harness.images import character_error_rate
from tests.e2e.conftest import SignedUpUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OCR_TIMEOUT = 120.0
# Generated scans of clean print: the default engine reads them nearly exactly.
MAX_CER = 0.08


@pytest.fixture(scope="module")
def scanned() -> Document:
    return scanned_pdf(pages=2)


def post(
    client: httpx.Client, user: SignedUpUser, document: bytes, path: str = "/ocr", **form: str
) -> httpx.Response:
    return client.post(
        path,
        files={"file": ("scan.pdf", document, "application/pdf")},
        data=form or None,
        headers=user.auth,
        timeout=OCR_TIMEOUT,
    )


def test_a_scanned_pdf_is_read_page_by_page_in_order(
    client: httpx.Client, user: SignedUpUser, scanned: Document
) -> None:
    response = post(client, user, scanned.data, languages="en")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [page["page"] for page in body["pages"]] == [1, 2]
    assert {page["source"] for page in body["pages"]} == {"ocr"}
    pages = [[line for line in body["lines"] if line["page"] == number] for number in (1, 2)]
    assert [line["page"] for line in body["lines"]] == sorted(line["page"] for line in body["lines"])
    for number, lines in enumerate(pages):
        text = "\n".join(line["text"] for line in lines)
        assert character_error_rate(scanned.page_texts[number], text) <= MAX_CER, text
        # Every line carries its words, whose texts make the line's.
        for line in lines:
            assert line["words"], line
            assert " ".join(word["text"] for word in line["words"]).split() == line["text"].split()


def test_a_scanned_pdf_as_text_has_a_form_feed_between_its_pages(
    client: httpx.Client, user: SignedUpUser, scanned: Document
) -> None:
    response = client.post(
        "/ocr?format=txt",
        files={"file": ("scan.pdf", scanned.data, "application/pdf")},
        headers=user.auth,
        timeout=OCR_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert 'filename="scan.' in response.headers["content-disposition"]
    pages = response.text.rstrip("\n\f").split("\f")
    assert len(pages) == 2
    for number, text in enumerate(pages):
        assert character_error_rate(scanned.page_texts[number], text.strip()) <= MAX_CER, text


def test_a_scanned_pdf_as_a_searchable_pdf_opens_in_pypdf_with_its_words(
    client: httpx.Client, user: SignedUpUser, scanned: Document
) -> None:
    with client.stream(
        "POST",
        "/ocr",
        params={"format": "pdf"},
        files={"file": ("scan.pdf", scanned.data, "application/pdf")},
        headers=user.auth | {"Accept": "application/pdf"},
        timeout=OCR_TIMEOUT,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["x-page-count"] == "2"
        assert response.headers["content-disposition"].startswith("attachment; ")
        data = b"".join(response.iter_bytes())
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 2
    source = PdfReader(io.BytesIO(scanned.data))
    for number, page in enumerate(reader.pages):
        # Every page keeps its size.
        assert abs(float(page.mediabox.width) - float(source.pages[number].mediabox.width)) < 1
        text = " ".join(page.extract_text().split())
        truth = " ".join(scanned.page_texts[number].split())
        assert character_error_rate(truth, text) <= MAX_CER, text


def test_a_text_layer_pdf_returns_its_own_text_and_is_ocred_only_when_asked(
    client: httpx.Client, user: SignedUpUser
) -> None:
    document = text_layer_pdf(pages=2)
    response = post(client, user, document.data, languages="vi,en")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(page["page"], page["source"]) for page in body["pages"]] == [
        (1, "text_layer"),
        (2, "text_layer"),
    ]
    for number in (1, 2):
        text = "\n".join(line["text"] for line in body["lines"] if line["page"] == number)
        assert character_error_rate(document.page_texts[number - 1], text) <= 0.01, text

    forced = post(client, user, document.data, languages="vi,en", force_ocr="true")
    assert forced.status_code == 200, forced.text
    assert {page["source"] for page in forced.json()["pages"]} == {"ocr"}


def test_the_stream_sends_each_page_event_before_its_lines(client: httpx.Client, user: SignedUpUser) -> None:
    document = text_layer_pdf(pages=2, vietnamese=False)
    response = post(client, user, document.data, path="/ocr/stream")
    assert response.status_code == 200, response.text
    events = [json.loads(line) for line in response.text.splitlines()]
    assert events[0]["type"] == "started"
    assert events[0]["page_count"] == 2
    page = 0
    for event in events[1:-1]:
        if event["type"] == "page":
            page += 1
            assert event["page"] == page
        else:
            assert event["type"] == "line"
            assert event["page"] == page
    assert page == 2
    assert events[-1]["type"] == "completed"
    assert events[-1]["page_count"] == 2


@pytest.mark.parametrize(
    ("make", "status", "words"),
    [
        (encrypted_pdf, 422, "password"),
        (truncated_pdf, 422, ""),
        (fake_pdf, 422, ""),
        (lambda: many_pages_pdf(205), 413, "200"),
        (huge_page_pdf, 413, ""),
    ],
    ids=["encrypted", "truncated", "fake", "too-many-pages", "huge-page"],
)
@pytest.mark.parametrize("path", ["/ocr", "/ocr?format=pdf"])
def test_hostile_documents_are_refused_with_their_status(
    client: httpx.Client, user: SignedUpUser, make, status: int, words: str, path: str
) -> None:
    response = post(client, user, make().data, path=path)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    message = detail if isinstance(detail, str) else detail[0]["msg"]
    assert words in message
    assert "internal error" not in message
