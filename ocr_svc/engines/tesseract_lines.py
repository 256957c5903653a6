"""OCR_RECOGNIZER=tesseract: the rapidocr engine's detection and reading order, with each
line read by Tesseract's LSTM line recogniser instead of PP-OCR's.

Why: on dense scanned pages the PP-OCR recogniser is compute-bound at 86-90 ms of CPU a line
on the development machines, where Tesseract's LSTM reads the same crops at about 24 ms with
the same text (docs/ocr.md, "Recognition cost"). Detection, the stream, reading order and
every limit stay the engine's own; only `_recognise` changes.

Tesseract comes from tesserocr (a wheel with libtesseract inside, the `tesseract` extra)
and its English model, `eng.traineddata`, from Debian's `tesseract-ocr-eng` package (or
OCR_TESSDATA_DIR). Nothing is downloaded. A Tesseract handle is not thread-safe, so each
thread that reads lines has its own; OpenMP inside Tesseract is kept to one thread, because
the pipeline already reads lines on as many threads as there are cores.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.engines.rapid import RapidOcrEngine

log = logging.getLogger(__name__)

LANGUAGE = "eng"
# Where Debian's tesseract-ocr-eng (Tesseract 5, then 4) puts the models.
DEBIAN_TESSDATA_DIRS = (
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
)


def find_tessdata(explicit: Path | None, env: dict[str, str] | None = None) -> Path:
    """The directory holding `eng.traineddata`: `explicit` (OCR_TESSDATA_DIR), else
    TESSDATA_PREFIX, else Debian's. `EngineUnavailable` naming what to install otherwise."""
    env = dict(os.environ) if env is None else env
    if explicit is not None:
        candidates = [explicit]
    else:
        prefix = env.get("TESSDATA_PREFIX", "").strip()
        candidates = [Path(prefix)] if prefix else []
        candidates += list(DEBIAN_TESSDATA_DIRS)
    for directory in candidates:
        if (directory / f"{LANGUAGE}.traineddata").is_file():
            return directory
    looked = ", ".join(str(d) for d in candidates)
    raise EngineUnavailable(
        f"OCR_RECOGNIZER=tesseract needs Tesseract's {LANGUAGE}.traineddata (Debian: apt-get install "
        f"tesseract-ocr-eng), or OCR_TESSDATA_DIR naming its directory; looked in {looked}"
    )


class TesseractLineEngine(RapidOcrEngine):
    """`RapidOcrEngine` whose lines are read by Tesseract's LSTM (one line per call,
    `PSM.SINGLE_LINE`); confidence is Tesseract's mean word confidence over 100."""

    name = "rapidocr+tesseract"

    def __init__(self, *, tessdata_dir: Path | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._tessdata_dir = tessdata_dir
        self._tessdata: Path | None = None
        self._handles = threading.local()

    def _load_recogniser(self, rec_path: Path) -> None:
        # Before libtesseract starts OpenMP: the pipeline's threads are the parallelism.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        try:
            import tesserocr  # noqa: F401
        except ImportError as exc:
            raise EngineUnavailable(
                f"OCR_RECOGNIZER=tesseract needs the 'tesseract' extra (tesserocr): {exc}"
            ) from exc
        self._tessdata = find_tessdata(self._tessdata_dir)
        # This thread's handle now, so that an unreadable model stops the start-up.
        self._handle()
        log.info("tesseract line recogniser loaded", extra={"tessdata": str(self._tessdata)})

    def _handle(self) -> Any:
        handle = getattr(self._handles, "api", None)
        if handle is None:
            import tesserocr

            try:
                handle = tesserocr.PyTessBaseAPI(
                    path=f"{self._tessdata}{os.sep}",
                    lang=LANGUAGE,
                    psm=tesserocr.PSM.SINGLE_LINE,
                    oem=tesserocr.OEM.LSTM_ONLY,
                )
            except RuntimeError as exc:
                raise EngineUnavailable(
                    f"Tesseract cannot load {LANGUAGE} from {self._tessdata}: {exc}"
                ) from exc
            self._handles.api = handle
        return handle

    def _recognise(self, crops: Sequence[npt.NDArray[np.uint8]]) -> list[tuple[str, float]]:
        """(text, confidence) of each crop (BGR, as the PP-OCR path prepares them)."""
        handle = self._handle()
        read = []
        for crop in crops:
            handle.SetImage(Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1])))
            text = " ".join(handle.GetUTF8Text().split())
            read.append((text, handle.MeanTextConf() / 100.0 if text else 0.0))
        return read
