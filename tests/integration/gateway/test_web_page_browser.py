"""The web page in Chromium against the gateway under a real uvicorn and the test servicers,
where a test decides when each stream event leaves ocr_svc: lines appear one by one as they
arrive, and failures (an `error` event mid-stream, a 429) are shown in words."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.settings import GatewaySettings
from harness.images import encode
from tests.integration.gateway.conftest import LiveGateway
from tests.integration.gateway.fakes import Mesh

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no {CHROMIUM}: `python scripts/debian_tools.py test` (run by `make test`) installs it",
    ),
]

# The size FakeOcr's `started` event reports, so the boxes sit where they would.
BLANK_PAGE = encode(Image.new("RGB", (640, 480), "white"))
SESSION_KEY = "ocrmesh.session"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        await chromium.close()


@pytest.fixture
async def gateway_page(
    browser: Browser, mesh: Mesh, live_gateway: Callable[[GatewaySettings], Awaitable[LiveGateway]]
) -> AsyncIterator[Page]:
    """A browser tab on a live gateway whose auth_svc knows Ada."""
    mesh.auth.add_user()
    gateway = await live_gateway(mesh.settings())
    context = await browser.new_context(base_url=gateway.url)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
async def signed_in_page(gateway_page: Page, mesh: Mesh) -> Page:
    """The page with a token for Ada in the tab's session, as after logging in."""
    session = json.dumps({"token": mesh.token(), "expiresAt": 32503680000000})
    await gateway_page.goto("/")
    await gateway_page.evaluate(
        "([key, value]) => sessionStorage.setItem(key, value)", [SESSION_KEY, session]
    )
    await gateway_page.reload()
    await expect(gateway_page.locator("#session-name")).to_contain_text("Ada Lovelace")
    return gateway_page


async def choose_image(page: Page) -> None:
    await page.locator("#file").set_input_files(
        files=[{"name": "page.png", "mimeType": "image/png", "buffer": BLANK_PAGE}]
    )


async def test_each_line_is_listed_and_boxed_as_its_event_arrives(signed_in_page: Page, mesh: Mesh) -> None:
    page = signed_in_page
    mesh.ocr.mode = "gated"
    mesh.ocr.texts = ["first line", "second line", "third line"]
    mesh.ocr.gate.put_nowait(None)  # "started"; every later event waits for the test
    await choose_image(page)
    lines, boxes = page.locator("#lines li"), page.locator("#boxes polygon")
    await expect(page.locator("#image")).to_be_visible()
    for count, text in enumerate(mesh.ocr.texts, start=1):
        mesh.ocr.gate.put_nowait(None)
        await expect(lines).to_have_count(count)
        await expect(boxes).to_have_count(count)
        await expect(lines.nth(count - 1)).to_contain_text(text)
        # No result yet: the stream is still open.
        await expect(page.locator("#timings")).to_be_hidden()
        await expect(page.locator("#copy")).to_be_disabled()
    mesh.ocr.gate.put_nowait(None)  # "completed"
    await expect(page.locator("#timings")).to_be_visible()
    await expect(page.locator("#progress")).to_contain_text("3 lines in 6 ms")
    await expect(page.locator("#copy")).to_be_enabled()
    await expect(lines.nth(0)).to_contain_text("94%")


async def test_the_languages_are_offered_from_the_api_and_the_chosen_one_reaches_ocr_svc(
    signed_in_page: Page, mesh: Mesh
) -> None:
    page = signed_in_page
    languages = page.locator("#languages")
    # FakeOcr's list (en, vi), as GET /ocr/languages gives it; English ticked by default.
    await expect(languages.get_by_label("Vietnamese")).to_be_visible()
    await expect(languages.get_by_role("checkbox")).to_have_count(len(mesh.ocr.languages))
    await expect(languages.get_by_label("English")).to_be_checked()
    await expect(languages.get_by_label("Vietnamese")).not_to_be_checked()
    await languages.get_by_label("Vietnamese").check()
    await languages.get_by_label("English").uncheck()
    await choose_image(page)
    await expect(page.locator("#progress")).to_contain_text("2 lines in")
    assert [list(request.languages) for request in mesh.ocr.requests] == [["vi"]]


async def test_english_is_sent_unless_another_language_is_chosen(signed_in_page: Page, mesh: Mesh) -> None:
    page = signed_in_page
    await expect(page.locator("#languages").get_by_label("Vietnamese")).to_be_visible()
    await choose_image(page)
    await expect(page.locator("#progress")).to_contain_text("2 lines in")
    assert [list(request.languages) for request in mesh.ocr.requests] == [["en"]]


async def test_an_error_event_mid_stream_is_shown_in_words_after_the_lines_so_far(
    signed_in_page: Page, mesh: Mesh
) -> None:
    page = signed_in_page
    mesh.ocr.mode = "fail_mid"  # started, one line, then ocr_svc fails
    await choose_image(page)
    error = page.locator("#ocr-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("internal error")
    await expect(error).to_contain_text("HTTP 500")
    await expect(error).not_to_contain_text("onnxruntime")
    await expect(page.locator("#lines li")).to_have_count(1)
    await expect(page.locator("#download")).to_be_disabled()


async def test_a_busy_ocr_service_is_shown_with_when_to_retry(signed_in_page: Page, mesh: Mesh) -> None:
    page = signed_in_page
    mesh.ocr.mode = "busy"
    await choose_image(page)
    error = page.locator("#ocr-error")
    await expect(error).to_contain_text("the OCR queue is full")
    await expect(error).to_contain_text("HTTP 429")
    await expect(page.locator("#result")).to_be_hidden()


async def test_asking_for_codes_too_often_says_when_to_ask_again(gateway_page: Page, mesh: Mesh) -> None:
    page = gateway_page
    await page.goto("/")
    verify = page.locator("#verify-form")
    await verify.get_by_label("Email").fill("ada@example.com")
    await verify.get_by_role("button", name="Send a new code").click()
    await expect(page.locator("#status")).to_contain_text("valid for 10 minutes")
    # A repeat within the cooldown is answered alike (issue 28); only a spent budget is 429.
    mesh.auth.spent_budgets.add("ada@example.com")
    await verify.get_by_role("button", name="Send a new code").click()
    status = page.locator("#status")
    await expect(status).to_contain_text("too many attempts; retry in 42 s")
    await expect(status).to_contain_text("(try again in 42 s) (HTTP 429)")


PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n the test servicer does not read it"


async def test_a_pdfs_pages_stream_in_under_their_headings_and_download_as_pdf_and_text(
    signed_in_page: Page, mesh: Mesh, tmp_path: Path
) -> None:
    page = signed_in_page
    mesh.ocr.pages = [["First page", "its second line"], ["Trang hai"]]
    mesh.ocr.rendered = b"%PDF-1.7 searchable"
    await page.get_by_label("OCR every page").check()
    await page.locator("#file").set_input_files(
        files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}]
    )
    headings = page.locator("#lines .page-heading")
    await expect(headings).to_have_count(2)
    await expect(headings.nth(0)).to_have_text("Page 1 of 2 · deskewed 0.5° · OCR")
    await expect(headings.nth(1)).to_have_text("Page 2 of 2 · turned 90° · deskewed 0.5° · PDF text layer")
    await expect(page.locator('#lines ol[data-page="1"] .text')).to_have_text(
        ["First page", "its second line"]
    )
    await expect(page.locator('#lines ol[data-page="2"] .text')).to_have_text(["Trang hai"])
    await expect(page.locator("#progress")).to_contain_text("3 lines on 2 pages")
    # A PDF is no image: its boxes go on a blank sheet, the last page's as it was read.
    await expect(page.locator("#canvas")).to_have_class("canvas no-preview")
    await expect(page.locator("#boxes polygon")).to_have_count(1)
    # Hovering a line of page 1 turns the sheet to page 1.
    await page.locator('#lines ol[data-page="1"] li').nth(1).hover()
    await expect(page.locator("#boxes polygon")).to_have_count(2)
    assert mesh.ocr.requests[0].force_ocr is True

    async with page.expect_download() as pdf_info:
        await page.get_by_role("button", name="Download searchable PDF").click()
    pdf = await pdf_info.value
    assert pdf.suggested_filename == "scan.pdf"
    assert Path(await pdf.path()).read_bytes() == mesh.ocr.rendered
    async with page.expect_download() as text_info:
        await page.get_by_role("button", name="Download text").click()
    text = await text_info.value
    assert text.suggested_filename == "scan.txt"
    assert [request.format for request in mesh.ocr.render_requests] == [4, 1]  # PDF, TXT
    # The downloads read the file as the run did: same bytes, languages and force_ocr.
    assert {request.document.force_ocr for request in mesh.ocr.render_requests} == {True}
    assert {request.document.image for request in mesh.ocr.render_requests} == {PDF_BYTES}
    await expect(page.locator("#status")).to_contain_text("Saved scan.txt")


async def test_a_download_that_breaks_off_is_reported_not_saved(signed_in_page: Page, mesh: Mesh) -> None:
    page = signed_in_page
    mesh.ocr.pages = [["First page"], ["Trang hai"]]
    await page.locator("#file").set_input_files(
        files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}]
    )
    await expect(page.locator("#progress")).to_contain_text("on 2 pages")
    mesh.ocr.mode = "fail_mid"
    mesh.ocr.rendered = b"%PDF-1.7 and more than one chunk of it"
    await page.get_by_role("button", name="Download searchable PDF").click()
    await expect(page.locator("#status")).to_contain_text("broke off")
