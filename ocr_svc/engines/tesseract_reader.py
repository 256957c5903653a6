"""Tesseract's LSTM reading the lines this service's own detector found, in the reading
order it chose: for every language but English (`ocr_svc.languages`), and for English too
with OCR_RECOGNIZER=tesseract (`ocr_svc.engines.tesseract_lines`).

Why: on dense scanned pages the PP-OCR recogniser is compute-bound at 86-90 ms of CPU a line
on the development machines, where Tesseract's LSTM reads the same crops at about 24 ms with
the same text (docs/ocr.md, "Recognition cost"); and PP-OCR's alphabet has no Hangul and
loses Vietnamese's stacked marks, where Tesseract's models read them exactly (docs/ocr.md,
"Languages"). Detection, the stream, reading order and every limit stay the engine's own;
only the recognition of each crop changes. The words of a line, and their boxes, are
Tesseract's own (its result iterator at word level, in the crop's pixels).

Tesseract comes from tesserocr (a wheel with libtesseract inside, the `tesseract` extra)
and its models, `<lang>.traineddata`, from Debian's `tesseract-ocr-<lang>` packages (or
OCR_TESSDATA_DIR). Nothing is downloaded. A Tesseract handle is not thread-safe and reads
one language set, so each thread that reads lines has its own per language set; OpenMP
inside Tesseract is kept to one thread, because the pipeline already reads lines on as
many threads as there are cores.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import EngineUnavailable
from ocr_svc.engines.words import CropReading, CropWord

log = logging.getLogger(__name__)

ENGLISH = "eng"
# Where Debian's tesseract-ocr-<lang> (Tesseract 5, then 4) puts the models.
DEBIAN_TESSDATA_DIRS = (
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
)
# A line with a word Tesseract reads below this confidence (0..1) is read again in the
# retry language set. Measured on lines of Korean with Kor only: words of Hangul read at
# 0.82-0.97, Latin words (names, a URL, an English sentence) at 0.00-0.22 and their lines
# exactly with English added.
RETRY_CONFIDENCE = 0.5
# Language sets one thread keeps a handle for (a Korean model takes about 20 MB): beyond
# this, the set used least recently is closed.
HANDLES_PER_THREAD = 4


def tessdata_candidates(explicit: Path | None, env: dict[str, str] | None = None) -> list[Path]:
    """Where the models may be, in order: `explicit` (OCR_TESSDATA_DIR) alone, else
    TESSDATA_PREFIX, then Debian's directories."""
    if explicit is not None:
        return [explicit]
    env = dict(os.environ) if env is None else env
    prefix = env.get("TESSDATA_PREFIX", "").strip()
    return ([Path(prefix)] if prefix else []) + list(DEBIAN_TESSDATA_DIRS)


def find_tessdata(explicit: Path | None, env: dict[str, str] | None = None) -> Path:
    """The directory holding `eng.traineddata`: `explicit` (OCR_TESSDATA_DIR), else
    TESSDATA_PREFIX, else Debian's. `EngineUnavailable` naming what to install otherwise."""
    candidates = tessdata_candidates(explicit, env)
    for directory in candidates:
        if (directory / f"{ENGLISH}.traineddata").is_file():
            return directory
    looked = ", ".join(str(d) for d in candidates)
    raise EngineUnavailable(
        f"OCR_RECOGNIZER=tesseract needs Tesseract's {ENGLISH}.traineddata (Debian: apt-get install "
        f"tesseract-ocr-eng), or OCR_TESSDATA_DIR naming its directory; looked in {looked}"
    )


def installed_models(
    explicit: Path | None, env: dict[str, str] | None = None
) -> tuple[Path | None, frozenset[str]]:
    """The tessdata directory and the models in it (`{"eng", "vie", ...}`), or (None, {})
    when tesserocr or the English model is missing (every language set includes English)."""
    if importlib.util.find_spec("tesserocr") is None:
        return None, frozenset()
    try:
        directory = find_tessdata(explicit, env)
    except EngineUnavailable:
        return None, frozenset()
    models = frozenset(path.name.removesuffix(".traineddata") for path in directory.glob("*.traineddata"))
    return directory, models


class TesseractLines:
    """Reads line crops with Tesseract's LSTM (`PSM.SINGLE_LINE` or `RAW_LINE`), in any installed
    language set (`"vie+eng"`). Thread-safe: one handle per thread per language set."""

    def __init__(self, tessdata: Path) -> None:
        self.tessdata = tessdata
        self._local = threading.local()

    def handle(self, languages: str) -> Any:
        """This thread's handle for `languages`, created on first use. `EngineUnavailable`
        when Tesseract cannot load the models."""
        handles: OrderedDict[str, Any] | None = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = OrderedDict()
        handle = handles.get(languages)
        if handle is not None:
            handles.move_to_end(languages)
            return handle
        # Before libtesseract starts OpenMP: the pipeline's threads are the parallelism.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        import tesserocr

        try:
            handle = tesserocr.PyTessBaseAPI(
                path=f"{self.tessdata}{os.sep}",
                lang=languages,
                psm=tesserocr.PSM.SINGLE_LINE,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
        except RuntimeError as exc:
            raise EngineUnavailable(f"Tesseract cannot load {languages} from {self.tessdata}: {exc}") from exc
        handles[languages] = handle
        if len(handles) > HANDLES_PER_THREAD:
            _, oldest = handles.popitem(last=False)
            oldest.End()
        return handle

    def read(
        self,
        crops: Sequence[npt.NDArray[np.uint8]],
        languages: str,
        *,
        raw: bool = False,
        retry_with: str | None = None,
    ) -> list[CropReading]:
        """What each crop (BGR, as the PP-OCR path prepares them) reads: its words as
        Tesseract's iterator gives them (text, confidence, box in the crop's pixels), and
        the line's text their texts joined; the line's confidence is Tesseract's mean
        word confidence (0..1). `raw`: each crop is one whole line (`PSM.RAW_LINE`), not
        searched for its line first (`PSM.SINGLE_LINE`). `retry_with`: a crop that reads
        nothing, or a word below `RETRY_CONFIDENCE`, is read again in this language set
        (`"kor+eng"` after `"kor"`), and the more confident reading kept."""
        import cv2
        import tesserocr

        mode = tesserocr.PSM.RAW_LINE if raw else tesserocr.PSM.SINGLE_LINE
        handle = self.handle(languages)
        handle.SetPageSegMode(mode)
        again_handle = None
        read = []
        for crop in crops:
            # Grey, not colour: Tesseract thresholds a colour image channel by channel, which
            # on a noisy colour scan costs about a third more a line for the same text.
            grey = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
            reading = _read_one(handle, grey)
            if retry_with is not None and _read_badly(reading):
                if again_handle is None:
                    again_handle = self.handle(retry_with)
                    again_handle.SetPageSegMode(mode)
                again = _read_one(again_handle, grey)
                if again.confidence >= reading.confidence:
                    reading = again
            read.append(reading)
        return read


def set_grey_image(handle: Any, grey: npt.NDArray[np.uint8]) -> None:
    """Give a Tesseract handle the 8-bit grey image `grey` as raw bytes. tesserocr's
    `SetImage` takes a PIL image and encodes it as PNG for Tesseract to decode again: a
    twentieth of a line's CPU, 12 % of a page's layout analysis, for the same pixels."""
    grey = np.ascontiguousarray(grey)
    height, width = grey.shape
    handle.SetImageBytes(grey.tobytes(), width, height, 1, width)


def _read_one(handle: Any, grey: npt.NDArray[np.uint8]) -> CropReading:
    import tesserocr

    set_grey_image(handle, grey)
    handle.Recognize()
    words = tesseract_words(handle.GetIterator(), tesserocr.RIL.WORD)
    text = " ".join(word.text for word in words)
    return CropReading(text=text, confidence=handle.MeanTextConf() / 100.0 if text else 0.0, words=words)


def _read_badly(reading: CropReading) -> bool:
    return not reading.words or min(word.confidence for word in reading.words) < RETRY_CONFIDENCE


def tesseract_words(iterator: Any, level: Any) -> tuple[CropWord, ...]:
    """The words a Tesseract result iterator holds at `level` (RIL.WORD), in its order:
    text, confidence 0..1 and box (its pixels). Pieces with no blank between them are one
    word, as Tesseract's own text has them: its Korean model cuts an eojeol into syllables
    that `GetUTF8Text` writes without spaces. A word's confidence is its pieces' mean,
    weighted by their lengths."""
    if iterator is None:
        return ()
    pieces: list[tuple[CropWord, bool]] = []
    while True:
        try:
            text = iterator.GetUTF8Text(level)
        except RuntimeError:
            # tesserocr raises on an element with no text at all (seen on a sideways line's
            # crop): nothing to add, the next element may still hold words.
            text = ""
        box = iterator.BoundingBox(level)
        if text and box is not None and text.strip():
            left, top, right, bottom = box
            word = CropWord(
                text="".join(text.split()),
                confidence=min(max(iterator.Confidence(level) / 100.0, 0.0), 1.0),
                left=float(left),
                top=float(top),
                right=float(right),
                bottom=float(bottom),
            )
            pieces.append((word, iterator.BlanksBeforeWord() > 0))
        if not iterator.Next(level):
            break
    words: list[list[CropWord]] = []
    for piece, spaced in pieces:
        if spaced or not words:
            words.append([piece])
        else:
            words[-1].append(piece)
    return tuple(_joined(parts) for parts in words)


def _joined(parts: list[CropWord]) -> CropWord:
    if len(parts) == 1:
        return parts[0]
    lengths = [len(part.text) for part in parts]
    return CropWord(
        text="".join(part.text for part in parts),
        confidence=sum(part.confidence * n for part, n in zip(parts, lengths, strict=True)) / sum(lengths),
        left=min(part.left for part in parts),
        top=min(part.top for part in parts),
        right=max(part.right for part in parts),
        bottom=max(part.bottom for part in parts),
    )
