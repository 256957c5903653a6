"""Choosing what /ocr answers with from the Accept header, and the attachment's name."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from gateway.document_formats import (
    DocumentFormat,
    content_disposition,
    negotiate_document_format,
    safe_filename,
)

F = DocumentFormat


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, F.JSON),
        ("", F.JSON),
        ("*/*", F.JSON),
        ("application/*", F.JSON),
        ("application/json", F.JSON),
        ("text/*", F.TXT),
        ("text/plain; charset=utf-8", F.TXT),
        ("TEXT/PLAIN", F.TXT),
        ("text/vnd.hocr+html", F.HOCR),
        ("application/xhtml+xml", F.HOCR),
        ("application/xml", F.ALTO),
        ("text/xml", F.ALTO),
        ("application/alto+xml", F.ALTO),
        ("application/pdf", F.PDF),
        # The highest quality wins; at equal quality the exact type before a wildcard.
        ("text/plain;q=0.5, application/pdf", F.PDF),
        ("*/*, application/pdf", F.PDF),
        ("*/*;q=0.1, text/plain;q=0.2", F.TXT),
        # An explicit q=0 refuses a type a wildcard would otherwise give.
        ("application/json;q=0, application/*", F.HOCR),
        ("application/json;q=0, */*", F.TXT),
        # Unknown types are skipped when a known one follows; a bad q counts as 1.
        ("image/png, application/pdf;q=0.3", F.PDF),
        ("application/pdf;q=abc", F.PDF),
    ],
)
def test_the_accept_header_chooses_the_format(accept: str | None, expected: DocumentFormat) -> None:
    assert negotiate_document_format(accept) is expected


@pytest.mark.parametrize(
    "accept",
    ["image/png", "text/csv, image/*", "application/pdf;q=0", "application/msword", ", ,"],
)
def test_an_accept_header_naming_nothing_answerable_is_a_406_listing_the_formats(accept: str) -> None:
    with pytest.raises(HTTPException) as refused:
        negotiate_document_format(accept)
    assert refused.value.status_code == 406
    assert "json, txt, hocr, alto, pdf" in str(refused.value.detail)
    assert "application/pdf" in str(refused.value.detail)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\scan.hocr", "scan.hocr"),
        ('a"b;c\r\nd.txt', "a_b_c__d.txt"),
        ("", "document.pdf"),
        ("...", "document.pdf"),
        ("x" * 300 + ".pdf", ("x" * 300 + ".pdf")[-200:]),
    ],
)
def test_file_names_from_the_service_are_made_safe(name: str, expected: str) -> None:
    assert safe_filename(name, DocumentFormat.PDF) == expected


def test_the_attachment_names_the_file_in_ascii_and_in_utf8() -> None:
    assert content_disposition("Bảng kê.pdf") == (
        "attachment; filename=\"B_ng k_.pdf\"; filename*=UTF-8''B%E1%BA%A3ng%20k%C3%AA.pdf"
    )
    assert content_disposition("scan.pdf") == "attachment; filename=\"scan.pdf\"; filename*=UTF-8''scan.pdf"
