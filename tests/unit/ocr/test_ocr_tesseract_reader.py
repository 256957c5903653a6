"""Lines read by Tesseract in a request's language set: a line of Hangul is read once in the
document's own model, a line with Latin words in it is read again with English added, and
the more confident reading is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont

from harness.language_pages import FONT_FILES, FONT_PACKAGES
from harness.pages import page_error_rate
from ocr_svc.engines.tesseract_reader import TesseractLines, installed_models

HANGUL = "마이크로서비스 아키텍처는 최근 몇 년 동안 널리 사용되고 있습니다."
MIXED = "PostgreSQL 데이터베이스와 RabbitMQ 큐를 통해 이메일을 보냅니다."


@pytest.fixture(scope="module")
def lines() -> TesseractLines:
    directory, models = installed_models(None)
    if directory is None or "kor" not in models:
        pytest.skip("tesserocr or Tesseract's kor/eng models are not installed (Debian: tesseract-ocr-kor)")
    if not FONT_FILES["ko"].is_file():
        pytest.skip(f"{FONT_FILES['ko']} is missing (Debian: {FONT_PACKAGES['ko']})")
    return TesseractLines(directory)


def line_crop(text: str, font_file: Path) -> npt.NDArray[np.uint8]:
    """`text` in 46 px type on a white strip, as a BGR crop (what the engine hands over)."""
    font = ImageFont.truetype(str(font_file), 46)
    image = Image.new("RGB", (2300, 80), (255, 255, 255))
    ImageDraw.Draw(image).text((20, 10), text, font=font, fill=(0, 0, 0))
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


class CountingLines(TesseractLines):
    """`TesseractLines` noting each language set a crop was read in."""

    def __init__(self, tessdata: Path) -> None:
        super().__init__(tessdata)
        self.sets: list[str] = []

    def handle(self, languages: str) -> object:
        self.sets.append(languages)
        return super().handle(languages)


def test_a_line_of_hangul_is_read_once_in_the_documents_model(lines: TesseractLines) -> None:
    counting = CountingLines(lines.tessdata)
    [read] = counting.read([line_crop(HANGUL, FONT_FILES["ko"])], "kor", retry_with="kor+eng")
    assert counting.sets == ["kor"]
    assert page_error_rate(HANGUL, read.text) == 0.0


def test_a_line_with_latin_words_is_read_again_with_english(lines: TesseractLines) -> None:
    counting = CountingLines(lines.tessdata)
    crop = line_crop(MIXED, FONT_FILES["ko"])
    [alone] = counting.read([crop], "kor")
    [read] = counting.read([crop], "kor", retry_with="kor+eng")
    # Kor alone reads the Latin names as noise, at a low confidence.
    assert "PostgreSQL" not in alone.text
    assert counting.sets == ["kor", "kor", "kor+eng"]
    assert "PostgreSQL" in read.text
    assert "RabbitMQ" in read.text
    assert read.confidence > alone.confidence
