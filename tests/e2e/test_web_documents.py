"""The web page with a PDF, in a real browser (Debian's Chromium driven by Playwright)
against the mesh as processes: a 2-page scanned PDF streams in page by page under a heading
per page, then "Download searchable PDF" saves a PDF that pypdf opens with both pages and
their words, and "Download text" the text with a form feed between the pages."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pypdf import PdfReader

from harness.documents import scanned_pdf
from harness.images import character_error_rate
from tests.e2e.conftest import SignedUpUser

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no {CHROMIUM}: `python scripts/debian_tools.py test` (run by `make test`) installs it",
    ),
]

OCR_TIMEOUT_MS = 120_000
MAX_CER = 0.08


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, mesh) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=mesh.gateway_url, accept_downloads=True)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    tab.on(
        "console",
        lambda message: problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield tab
    context.close()
    assert problems == []


def test_a_pdf_streams_in_page_by_page_and_downloads_as_a_searchable_pdf_and_text(
    page: Page, user: SignedUpUser, tmp_path: Path
) -> None:
    document = scanned_pdf(pages=2)
    page.goto("/")
    login = page.locator("#login-form")
    login.get_by_label("Email").fill(user.email)
    login.get_by_label("Password").fill(user.password)
    login.get_by_role("button", name="Log in").click()
    expect(page.locator("#reader")).to_be_visible()

    page.locator("#file").set_input_files(
        files=[{"name": "minutes.pdf", "mimeType": "application/pdf", "buffer": document.data}]
    )
    # A heading per page, in order, each followed by that page's lines.
    headings = page.locator("#lines .page-heading")
    expect(headings).to_have_count(2, timeout=OCR_TIMEOUT_MS)
    expect(page.locator("#timings")).to_be_visible(timeout=OCR_TIMEOUT_MS)
    expect(headings.nth(0)).to_contain_text("Page 1 of 2")
    expect(headings.nth(1)).to_contain_text("Page 2 of 2")
    expect(headings.nth(0)).to_contain_text("OCR")
    expect(page.locator("#progress")).to_contain_text("on 2 pages")
    for number in (1, 2):
        texts = page.locator(f'#lines ol[data-page="{number}"] .text').all_inner_texts()
        assert character_error_rate(document.page_texts[number - 1], "\n".join(texts)) <= MAX_CER, texts
    # The PDF is no image the browser shows: the boxes are on a blank sheet.
    expect(page.locator("#canvas")).to_have_class("canvas no-preview")
    expect(page.locator("#boxes polygon").first).to_be_visible()

    with page.expect_download(timeout=OCR_TIMEOUT_MS) as download_info:
        page.get_by_role("button", name="Download searchable PDF").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    reader = PdfReader(io.BytesIO(Path(download.path()).read_bytes()))
    assert len(reader.pages) == 2
    for number, pdf_page in enumerate(reader.pages):
        text = " ".join(pdf_page.extract_text().split())
        truth = " ".join(document.page_texts[number].split())
        assert character_error_rate(truth, text) <= MAX_CER, text
    expect(page.locator("#status")).to_contain_text("Saved")

    with page.expect_download(timeout=OCR_TIMEOUT_MS) as text_info:
        page.get_by_role("button", name="Download text").click()
    text_download = text_info.value
    assert text_download.suggested_filename.endswith(".txt")
    assert Path(text_download.path()).read_text(encoding="utf-8").rstrip("\n\f").count("\f") == 1
    page.screenshot(path=tmp_path / "web_page_pdf.png", full_page=True)
