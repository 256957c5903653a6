"""OCR_RECOGNIZER=tesseract: the rapidocr engine's detection and reading order, with every
line, English too, read by Tesseract's LSTM instead of PP-OCR's recogniser
(`ocr_svc.engines.tesseract_reader` says why and how).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ocr_svc.engines.base import EngineUnavailable, RecognizedLine, RgbImage, TextRegion
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.engines.tesseract_reader import ENGLISH, TesseractLines, find_tessdata

log = logging.getLogger(__name__)


class TesseractLineEngine(RapidOcrEngine):
    """OCR_RECOGNIZER=tesseract: `RapidOcrEngine` whose English lines, too, are read by
    Tesseract's LSTM; confidence is Tesseract's mean word confidence over 100, and the
    words are Tesseract's own."""

    name = "rapidocr+tesseract"

    def _load_recogniser(self, rec_path: Path) -> None:
        try:
            import tesserocr  # noqa: F401
        except ImportError as exc:
            raise EngineUnavailable(
                f"OCR_RECOGNIZER=tesseract needs the 'tesseract' extra (tesserocr): {exc}"
            ) from exc
        self._tesseract = TesseractLines(find_tessdata(self._tessdata_dir))
        # This thread's handle now, so that an unreadable model stops the start-up.
        self._tesseract.handle(ENGLISH)
        log.info("tesseract line recogniser loaded", extra={"tessdata": str(self._tesseract.tessdata)})

    def read_batch(self, image: RgbImage, regions: Sequence[TextRegion]) -> list[RecognizedLine | None]:
        return self.read_batch_in(image, regions, ENGLISH)


__all__ = ["TesseractLineEngine", "find_tessdata"]
