"""Which recogniser reads the lines out of the box (issue 25, item 7): Tesseract's LSTM where
it is installed, PP-OCR's where it is not; an explicit OCR_RECOGNIZER always wins."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ocr_svc.settings import OcrSettings
from ocrmesh.platform.settings import load_settings

needs_tesserocr = pytest.mark.skipif(
    importlib.util.find_spec("tesserocr") is None, reason="the 'tesseract' extra (tesserocr) is not installed"
)


@pytest.fixture
def tessdata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OCR_RECOGNIZER", "OCR_ENGINE", "OCR_TESSDATA_DIR", "TESSDATA_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "eng.traineddata").write_bytes(b"")
    monkeypatch.setenv("OCR_TESSDATA_DIR", str(tmp_path))
    return tmp_path


@needs_tesserocr
def test_out_of_the_box_tesseract_reads_the_lines_where_its_english_model_is_installed(
    tessdata: Path,
) -> None:
    settings = load_settings(OcrSettings)
    assert settings.ocr_recognizer == "tesseract"
    assert settings.ocr_tessdata_dir == tessdata


def test_without_tesseracts_english_model_the_default_falls_back_to_ppocr(
    tessdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tessdata / "eng.traineddata").unlink()
    assert load_settings(OcrSettings).ocr_recognizer == "ppocr"
    monkeypatch.setenv("OCR_RECOGNIZER", "auto")
    assert load_settings(OcrSettings).ocr_recognizer == "ppocr"


def test_the_keras_engine_keeps_its_own_recogniser_by_default(
    tessdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCR_ENGINE", "keras")
    assert load_settings(OcrSettings).ocr_recognizer == "ppocr"


@pytest.mark.parametrize("chosen", ["ppocr", "tesseract"])
def test_an_explicit_recogniser_is_kept_whatever_is_installed(
    tessdata: Path, monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    monkeypatch.setenv("OCR_RECOGNIZER", chosen)
    assert load_settings(OcrSettings).ocr_recognizer == chosen
