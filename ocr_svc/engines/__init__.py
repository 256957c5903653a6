"""OCR engines behind one interface (`OcrEngine`), chosen by OCR_ENGINE."""

from __future__ import annotations

import logging
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocr_svc.engines.base import EngineUnavailable, OcrEngine, RecognizedLine, TextRegion
from ocr_svc.settings import OcrSettings

log = logging.getLogger(__name__)


def create_engine(settings: OcrSettings) -> OcrEngine:
    """The engine OCR_ENGINE (and, for rapidocr, OCR_RECOGNIZER) names, not loaded yet. The
    keras engine's module (and with it TensorFlow) is imported only when chosen."""
    if settings.ocr_engine == "keras":
        from ocr_svc.engines.keras import KerasOcrEngine

        return KerasOcrEngine(
            cache_dir=settings.keras_ocr_cache_dir,
            detector_weights=settings.keras_ocr_detector_weights,
            recognizer_weights=settings.keras_ocr_recognizer_weights,
            allow_download=settings.keras_ocr_download,
            threads=settings.engine_threads(),
        )
    if settings.ocr_recognizer == "tesseract":
        from ocr_svc.engines.tesseract_lines import TesseractLineEngine

        return TesseractLineEngine(
            tessdata_dir=settings.ocr_tessdata_dir,
            threads=settings.engine_threads(),
            spread_threads=settings.spread_threads(),
        )
    from ocr_svc.engines.rapid import RapidOcrEngine

    # An image alone may detect on every core of this process (see OcrPipeline). Lines in
    # other languages than English are read by Tesseract's models (ocr_svc.languages).
    return RapidOcrEngine(
        threads=settings.engine_threads(),
        spread_threads=settings.spread_threads(),
        tessdata_dir=settings.ocr_tessdata_dir,
    )


def warm_up(engine: OcrEngine) -> float:
    """Load `engine` and run it once on a small rendered line, so that the first real call
    does not pay for model loading and first-run allocation. Returns the seconds it took."""
    started = time.perf_counter()
    engine.load()
    image = Image.new("RGB", (320, 64), "white")
    ImageDraw.Draw(image).text((12, 14), "warm up 123", fill="black", font=ImageFont.load_default(size=28))
    pixels = np.asarray(image)
    for region in engine.detect(pixels):
        engine.read(pixels, region)
    elapsed = time.perf_counter() - started
    log.info("engine warmed up", extra={"engine": engine.name, "seconds": round(elapsed, 2)})
    return elapsed


__all__ = ["EngineUnavailable", "OcrEngine", "RecognizedLine", "TextRegion", "create_engine", "warm_up"]
