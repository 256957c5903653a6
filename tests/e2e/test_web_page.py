"""The web page at GET / in a real browser (Debian's Chromium driven by Playwright) against
the mesh as processes: a new user signs up, reads the code from the mail folder, verifies,
logs in and watches an image's lines stream in over it; a file that is no image is refused in
words. Screenshots go to each test's tmp_path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from harness.images import (
    SAMPLE_PARAGRAPH,
    character_error_rate,
    render_text_image,
    sample_multiline_png,
)
from harness.mesh import Mesh
from notifier.mailbox import VERIFICATION_CODE, wait_for_mail
from tests.e2e.conftest import SignedUpUser, random_email

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no {CHROMIUM}: `python scripts/debian_tools.py test` (run by `make test`) installs it",
    ),
]

# Stream events arrive within seconds, but the first OCR call warms the engine up.
OCR_TIMEOUT_MS = 90_000
SESSION_KEY = "ocrmesh.session"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's Chromium gets --no-sandbox unless asked otherwise, so root is fine too.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


class PageProblems:
    """What the page would hide from a user: uncaught exceptions and CSP refusals."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.seen.append(message.text)

    def error(self, error: Exception) -> None:
        self.seen.append(f"uncaught: {error}")


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Browser, mesh: Mesh, problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(base_url=mesh.gateway_url, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=mesh.gateway_url)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    tab.on("console", problems.console)
    tab.on("pageerror", problems.error)
    yield tab
    context.close()


def screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")  # where to look, in pytest's output (-s)


def log_in(page: Page, email: str, password: str) -> None:
    login = page.locator("#login-form")
    login.get_by_label("Email").fill(email)
    login.get_by_label("Password").fill(password)
    login.get_by_role("button", name="Log in").click()
    expect(page.locator("#session")).to_be_visible()
    expect(page.locator("#reader")).to_be_visible()


def test_a_new_user_signs_up_and_reads_an_image_as_it_streams_over_it(
    page: Page, mesh: Mesh, problems: PageProblems, tmp_path: Path
) -> None:
    email, password = random_email(), "correct horse battery"
    page.goto("/")
    expect(page.locator("#reader")).to_be_hidden()
    expect(page.locator("#signup-form")).to_contain_text("var/mail/")

    signup = page.locator("#signup-form")
    signup.get_by_label("Name").fill("Ada Lovelace")
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Password").fill(password)
    signup.get_by_role("button", name="Sign up").click()
    expect(page.locator("#status")).to_contain_text(f"Check the mail to {email}")

    code = wait_for_mail(mesh.mail_dir, email, kind=VERIFICATION_CODE).code
    assert code is not None
    verify = page.locator("#verify-form")
    expect(verify.get_by_label("Email")).to_have_value(email)
    verify.get_by_label("Code").fill(code)
    verify.get_by_role("button", name="Verify").click()
    expect(page.locator("#status")).to_contain_text("Email verified")

    expect(page.locator("#login-form").get_by_label("Email")).to_have_value(email)
    log_in(page, email, password)
    expect(page.locator("#session-name")).to_contain_text("Ada Lovelace")
    # The token is the tab's, never a cookie.
    assert page.context.cookies() == []
    assert json.loads(page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')"))["token"]

    page.locator("#file").set_input_files(
        files=[{"name": "invoice.png", "mimeType": "image/png", "buffer": sample_multiline_png()}]
    )
    # The image shows at once, before any line is recognised.
    expect(page.locator("#image")).to_be_visible()
    lines = page.locator("#lines li")
    expect(lines).to_have_count(len(SAMPLE_PARAGRAPH), timeout=OCR_TIMEOUT_MS)
    expect(page.locator("#timings")).to_be_visible(timeout=OCR_TIMEOUT_MS)
    expect(page.locator("#progress")).to_contain_text(f"{len(SAMPLE_PARAGRAPH)} lines in")
    expect(page.locator("#timings")).to_contain_text("total")

    texts = page.locator("#lines .text").all_inner_texts()
    assert character_error_rate("\n".join(SAMPLE_PARAGRAPH), "\n".join(texts)) <= 0.05, texts

    # One box per line, drawn over the image, top to bottom in reading order.
    boxes = page.locator("#boxes polygon")
    expect(boxes).to_have_count(len(SAMPLE_PARAGRAPH))
    image = page.locator("#image").bounding_box()
    assert image is not None
    assert image["width"] > 0
    tops = []
    for index in range(len(SAMPLE_PARAGRAPH)):
        box = boxes.nth(index).bounding_box()
        assert box is not None
        assert image["x"] - 1 <= box["x"]
        assert box["x"] + box["width"] <= image["x"] + image["width"] + 1
        assert image["y"] - 1 <= box["y"]
        assert box["y"] + box["height"] <= image["y"] + image["height"] + 1
        tops.append(box["y"])
    assert tops == sorted(tops)

    # Hovering a line lights its box, and hovering a box lights its line.
    lines.nth(2).hover()
    expect(boxes.nth(2)).to_have_class("active")
    expect(boxes.nth(1)).not_to_have_class("active")
    boxes.nth(4).hover()
    expect(lines.nth(4)).to_have_class("active")
    expect(lines.nth(2)).not_to_have_class("active")

    page.get_by_role("button", name="Copy all text").click()
    expect(page.locator("#status")).to_contain_text("clipboard")
    assert page.evaluate("navigator.clipboard.readText()") == "\n".join(texts)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download as JSON").click()
    download = download_info.value
    assert download.suggested_filename == "invoice.ocr.json"
    result = json.loads(Path(download.path()).read_text())
    assert [line["text"] for line in result["lines"]] == texts
    assert result["full_text"] == "\n".join(texts)
    assert result["line_count"] == len(texts)
    assert all(len(line["box"]) == 4 for line in result["lines"])

    screenshot(page, tmp_path / "web_page_ocr.png")

    # Logging out forgets the token here and revokes it at the gateway.
    token = json.loads(page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')"))["token"]
    with page.expect_response("**/auth/logout") as logout:
        page.get_by_role("button", name="Log out").click()
    assert logout.value.status == 204
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#reader")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')") is None
    me = httpx.get(f"{mesh.gateway_url}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert me.status_code == 401
    assert problems.seen == []


def test_a_file_that_is_no_image_is_refused_in_words(
    page: Page, user: SignedUpUser, problems: PageProblems, tmp_path: Path
) -> None:
    page.goto("/")
    log_in(page, user.email, user.password)
    page.locator("#file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some words\n"}]
    )
    error = page.locator("#ocr-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("send an image")
    expect(error).to_contain_text("HTTP 415")
    expect(page.locator("#lines li")).to_have_count(0)
    screenshot(page, tmp_path / "web_page_not_an_image.png")
    assert problems.seen == []


def test_an_image_the_browser_cannot_show_still_gets_its_boxes_on_a_blank_sheet(
    page: Page, user: SignedUpUser, problems: PageProblems, tmp_path: Path
) -> None:
    # Chromium does not display TIFF; ocr_svc reads it.
    tiff = render_text_image(SAMPLE_PARAGRAPH[:3], image_format="TIFF")
    page.goto("/")
    log_in(page, user.email, user.password)
    page.locator("#file").set_input_files(
        files=[{"name": "scan.tiff", "mimeType": "image/tiff", "buffer": tiff}]
    )
    expect(page.locator("#lines li")).to_have_count(3, timeout=OCR_TIMEOUT_MS)
    expect(page.locator("#canvas")).to_have_class(re.compile(r"\bno-preview\b"))
    expect(page.locator("#image")).to_be_hidden()
    boxes = page.locator("#boxes polygon")
    expect(boxes).to_have_count(3)
    for index in range(3):
        expect(boxes.nth(index)).to_be_visible()
    screenshot(page, tmp_path / "web_page_tiff.png")
    assert problems.seen == []


def test_a_session_the_gateway_no_longer_accepts_asks_to_log_in_again(
    page: Page, problems: PageProblems
) -> None:
    session = json.dumps({"token": "not-a-token", "expiresAt": 32503680000000})
    page.context.add_init_script(f"sessionStorage.setItem({json.dumps(SESSION_KEY)}, {json.dumps(session)})")
    page.goto("/")
    expect(page.locator("#status")).to_contain_text("log in again")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#reader")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')") is None
    assert problems.seen == []
