"""Plain text, hOCR and ALTO, read back with lxml: one page element per page, one word
element per word, boxes in page pixels, the formats' namespaces.

No package we can install (PyPI, Debian) ships the ALTO 4 XSD (ocrd-validators carries
only METS and PAGE, the ALTO readers on PyPI none), and nothing is downloaded at run
time, so the ALTO test checks the structure the schema requires instead."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from ocr_svc.rendering import CHUNK_BYTES, FORMATS, render
from ocr_svc.rendering.alto import ALTO_NS
from ocr_svc.rendering.hocr import XHTML_NS
from tests.unit.ocr.rendering.sample_documents import (
    PAGE_TEXTS,
    SamplePage,
    document_events,
    page_text,
    stream,
)

PAGES = (SamplePage(1000, 700, 300.0), SamplePage(900, 1200, 200.0), SamplePage(1000, 600, 0.0))
HTML = f"{{{XHTML_NS}}}"
ALTO = f"{{{ALTO_NS}}}"


async def rendered(fmt: str, events) -> bytes:
    chunks = [chunk async for chunk in render(stream(events), b"", fmt, filename="/uploads/scan.pdf")]
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)
    return b"".join(chunks)


def blocks_of(page: int) -> int:
    """Layout blocks of a sample page: lines 0-1 are one, the rest another."""
    return 1 if len(PAGE_TEXTS[page - 1]) <= 2 else 2


def title_properties(element) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in element.get("title").split(";"))


def bbox(element) -> tuple[int, ...]:
    return tuple(int(value) for value in title_properties(element)["bbox"].split())


def inside(inner: tuple[int, ...], outer: tuple[int, ...]) -> bool:
    return outer[0] <= inner[0] <= inner[2] <= outer[2] and outer[1] <= inner[1] <= inner[3] <= outer[3]


async def test_text_is_each_pages_lines_with_form_feeds_between_pages() -> None:
    events, _ = document_events(PAGES)

    text = (await rendered("txt", events)).decode("utf-8")

    assert text.split("\f") == [page_text(lines) for lines in PAGE_TEXTS]


async def test_hocr_has_a_page_per_page_and_a_word_per_word_with_its_box() -> None:
    events, words = document_events(PAGES)

    root = etree.fromstring(await rendered("hocr", events))

    assert root.tag == f"{HTML}html"
    metas = {meta.get("name"): meta.get("content") for meta in root.iter(f"{HTML}meta") if meta.get("name")}
    assert metas["ocr-system"] == "ocrmesh (scripted)"
    assert set(metas["ocr-capabilities"].split()) >= {
        "ocr_page",
        "ocr_carea",
        "ocr_par",
        "ocr_line",
        "ocrx_word",
    }
    pages = root.findall(f".//{HTML}div[@class='ocr_page']")
    assert len(pages) == len(PAGES)
    for number, (page, spec) in enumerate(zip(pages, PAGES, strict=True), start=1):
        properties = title_properties(page)
        assert properties["bbox"] == f"0 0 {spec.width} {spec.height}"
        assert properties["ppageno"] == str(number - 1)
        assert properties["image"] == '"scan.pdf"'
        assert len(page.findall(f".//{HTML}div[@class='ocr_carea']")) == blocks_of(number)
        page_words = [w for w in words if w.page == number]
        elements = page.findall(f".//{HTML}span[@class='ocrx_word']")
        assert [element.text for element in elements] == [w.text for w in page_words]
        for element, word in zip(elements, page_words, strict=True):
            assert bbox(element) == word.box
            assert title_properties(element)["x_wconf"] == str(round(word.confidence * 100))
            assert inside(bbox(element), bbox(element.getparent()))  # the word within its line
        for line in page.findall(f".//{HTML}span[@class='ocr_line']"):
            assert inside(bbox(line), bbox(line.getparent()))  # the line within its paragraph
    assert len(set(root.xpath("//@id"))) == len(root.xpath("//@id"))


async def test_alto_has_the_structure_the_alto_4_schema_requires() -> None:
    events, words = document_events(PAGES)

    root = etree.fromstring(await rendered("alto", events))

    assert root.tag == f"{ALTO}alto"
    assert [child.tag for child in root] == [f"{ALTO}Description", f"{ALTO}Layout"]
    description = root.find(f"{ALTO}Description")
    assert [child.tag for child in description] == [
        f"{ALTO}MeasurementUnit",
        f"{ALTO}sourceImageInformation",
        f"{ALTO}OCRProcessing",
    ]
    assert description.findtext(f"{ALTO}MeasurementUnit") == "pixel"
    assert description.find(f"{ALTO}OCRProcessing").get("ID")
    assert (
        description.find(f"{ALTO}OCRProcessing/{ALTO}ocrProcessingStep/{ALTO}processingSoftware") is not None
    )
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert len(pages) == len(PAGES)
    for number, (page, spec) in enumerate(zip(pages, PAGES, strict=True), start=1):
        assert page.get("ID")
        assert page.get("PHYSICAL_IMG_NR") == str(number)
        assert (page.get("WIDTH"), page.get("HEIGHT")) == (str(spec.width), str(spec.height))
        assert [child.tag for child in page] == [f"{ALTO}PrintSpace"]
        blocks = page.findall(f"{ALTO}PrintSpace/{ALTO}TextBlock")
        assert len(blocks) == blocks_of(number)
        strings = [s for block in blocks for s in block.iterfind(f"{ALTO}TextLine/{ALTO}String")]
        page_words = [w for w in words if w.page == number]
        assert [s.get("CONTENT") for s in strings] == [w.text for w in page_words]
        for string, word in zip(strings, page_words, strict=True):
            left, top, right, bottom = word.box
            assert [int(string.get(key)) for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT")] == [
                left,
                top,
                right - left,
                bottom - top,
            ]
            assert 0.0 <= float(string.get("WC")) <= 1.0
            assert float(string.get("WC")) == pytest.approx(word.confidence)
        for line in page.iter(f"{ALTO}TextLine"):
            children = [child.tag for child in line]
            # String (SP String)*: a space between strings, never at either end.
            assert re.fullmatch(r"S(PS)*", "".join("P" if tag == f"{ALTO}SP" else "S" for tag in children))
            for element in line:
                assert element.get("HPOS") is not None
                assert element.get("VPOS") is not None
            for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT"):
                assert line.get(key) is not None
    ids = root.xpath("//@ID")
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z_][\w.-]*", value) for value in ids)  # xsd:ID is an NCName


@pytest.mark.parametrize("fmt", ["txt", "hocr", "alto"])
async def test_each_page_goes_out_before_the_next_pages_events_are_read(fmt: str) -> None:
    events, _ = document_events(PAGES)
    read: list[str] = []

    async def recorded():
        for event in events:
            read.append(event.type)
            yield event

    first_chunk_after = None
    async for _ in render(recorded(), b"", fmt):
        if first_chunk_after is None:
            first_chunk_after = list(read)
    assert first_chunk_after is not None
    assert first_chunk_after.count("page") <= 2  # page 1 was out when page 2 began
    assert "completed" not in first_chunk_after


async def test_markup_and_control_characters_in_words_are_escaped_or_dropped() -> None:
    texts = ((("<b>&amp;", 'say "hi"', "bell\x07", "tab\tok"),),)
    events, _ = document_events((PAGES[0],), texts=texts)

    hocr = etree.fromstring(await rendered("hocr", events))
    alto = etree.fromstring(await rendered("alto", events))

    expected = ["<b>&amp;", 'say "hi"', "bell", "tab\tok"]
    assert [w.text for w in hocr.iter(f"{HTML}span") if w.get("class") == "ocrx_word"] == expected
    assert [s.get("CONTENT") for s in alto.iter(f"{ALTO}String")] == expected


async def test_a_large_page_goes_out_in_chunks_of_at_most_64_kib() -> None:
    many = tuple(tuple(f"từ{line}x{word}" for word in range(10)) for line in range(200))
    events, words = document_events((SamplePage(3000, 12000, 300.0),), texts=(many,))

    output = await rendered("hocr", events)

    assert len(output) > 2 * CHUNK_BYTES
    assert len(etree.fromstring(output).findall(f".//{HTML}span[@class='ocrx_word']")) == len(words)


def test_every_format_names_its_media_type_and_file_name() -> None:
    assert set(FORMATS) == {"txt", "hocr", "alto", "pdf"}
    assert FORMATS["pdf"].content_type == "application/pdf"
    assert FORMATS["txt"].content_type.startswith("text/plain")
    assert FORMATS["hocr"].filename("C:\\scans\\scan.pdf") == "scan.hocr"
    assert FORMATS["alto"].filename("page.png") == "page.alto.xml"
    assert FORMATS["txt"].filename("") == "document.txt"
