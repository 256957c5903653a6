"""The default engine: RapidOCR 3.x (PP-OCR models in ONNX) on onnxruntime.

The models ship inside the rapidocr wheel; this engine names their files explicitly, so
rapidocr never resolves (and downloads) a model itself, and it never draws results (which
would fetch a font). Detection and recognition run as separate steps so that each line
can be streamed as soon as it is read. Each line's words are located from the
recogniser's CTC time steps and the crop's ink (`ocr_svc.engines.words`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import (
    EngineUnavailable,
    RecognizedLine,
    RgbImage,
    TextRegion,
    clip_quad,
    pad_bottom_right,
    quad_from_array,
)
from ocr_svc.engines.tesseract_layout import TesseractLayout
from ocr_svc.engines.tesseract_reader import ENGLISH, TesseractLines, installed_models
from ocr_svc.engines.words import (
    CropGeometry,
    CropReading,
    ctc_decode,
    line_from_words,
    locate_ctc_words,
    page_words,
)

log = logging.getLogger(__name__)

DETECTION_MODEL = "PP-OCRv6_det_small.onnx"
# Crops per onnxruntime recognition run. Measured on the 2-core development machines with
# one intra-op thread per call (see docs/ocr.md): a line alone costs the least CPU (89 ms
# a 4-column line against 94 ms in pairs, 100 ms in fours, 150 ms in rapidocr's default
# of 6 on 2 intra-op threads): activations of one crop stay in cache, nothing is padded.
# The pipeline gets its parallelism from running several calls at once instead.
RECOGNITION_BATCH = 1
RECOGNITION_MODEL = "PP-OCRv6_rec_small.onnx"
# The recogniser's input: 3 x 48 x width, at least 320 wide (PaddleOCR's and rapidocr's
# padding; narrower inputs were not measured to be safe for one- or two-character lines).
RECOGNITION_HEIGHT = 48
RECOGNITION_MIN_WIDTH = 320
# Recognition runs on onnxruntime's memory arena: with it off (rapidocr's setting) every
# activation above malloc's mmap threshold (1 MiB, ocrmesh/platform/memory.py) is mapped and faulted
# in afresh on each run; measured 95 -> 88.5 ms of CPU per 4-column line (docs/ocr.md).
# The arena keeps its largest size, so a run wider than this gives its memory back after
# it (a 40,000 px banner line must not pin hundreds of MB).
ARENA_SHRINK_WIDTH = 2048


def fit_for_detection(image: RgbImage, max_side: int, min_side: int) -> tuple[RgbImage, float, float]:
    """`image` made safe for rapidocr's resizing, and the factors (height, width) that map
    its coordinates back to the original.

    rapidocr shrinks the long side to `max_side` and then stretches a short side under
    `min_side`, rounding both to multiples of 32: an extreme strip (1 x 5000, 40 x 8000)
    rounds to zero and fails. So shrink here first (the short side keeps at least a pixel),
    and pad a strip that is still too thin instead of letting it be stretched.
    """
    import cv2

    height, width = image.shape[:2]
    longest = max(height, width)
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    ratio_h, ratio_w = height / image.shape[0], width / image.shape[1]
    short, long_ = min(image.shape[:2]), max(image.shape[:2])
    # Stretching the short side to min_side would push the long side past max_side.
    if short < min_side and long_ * min_side / short > max_side:
        image = pad_bottom_right(image, min_side, min_side)
    return image, ratio_h, ratio_w


class RapidOcrEngine:
    """PP-OCR detection + recognition through rapidocr, tuned for documents and screenshots.

    `threads` is onnxruntime's intra-op thread count per call; with several workers on few
    cores, workers x threads should not exceed the cores (see docs/ocr.md).
    `spread_threads`, when above `threads`, loads a second detection session with that many
    threads, which `detect_spread` uses when the pipeline gives one image the cores of
    several calls (an image alone on the machine): its first line comes sooner.

    Lines in other languages than English are read by Tesseract's LSTM in the models
    installed (`tesseract_models`, from `tessdata_dir` or Tesseract's usual places), through
    `read_batch_in` (`ocr_svc.languages` routes them). Where those models are, the lines of a
    page can also be found by Tesseract's layout analysis, `detect_by_layout`.
    """

    name = "rapidocr"

    def __init__(
        self,
        *,
        threads: int = 1,
        spread_threads: int = 0,
        det_limit_side_len: int = 960,
        min_confidence: float = 0.5,
        batch_size: int = RECOGNITION_BATCH,
        model_dir: Path | None = None,
        tessdata_dir: Path | None = None,
    ) -> None:
        self.threads = threads
        self.spread_threads = spread_threads
        self.det_limit_side_len = det_limit_side_len
        self.min_confidence = min_confidence
        self.batch_size = batch_size
        self._model_dir = model_dir
        self._tessdata_dir = tessdata_dir
        self._tessdata: tuple[Path | None, frozenset[str]] | None = None
        self._tesseract: TesseractLines | None = None
        self._layout: TesseractLayout | None = None
        self._ocr: Any = None
        self._det: Any = None
        self._det_spread: Any = None
        self._rec: Any = None
        self._rec_input = ""
        self._characters: list[str] = []
        self._shrink: Any = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        with self._load_lock:
            if self._ocr is not None:
                return
            try:
                import rapidocr
                from rapidocr import RapidOCR
            except ImportError as exc:
                raise EngineUnavailable(
                    f"OCR_ENGINE=rapidocr needs the 'ocr' extra (rapidocr, onnxruntime): {exc}"
                ) from exc
            model_dir = self._model_dir or Path(rapidocr.__file__).resolve().parent / "models"
            det_path, rec_path = model_dir / DETECTION_MODEL, model_dir / RECOGNITION_MODEL
            missing = [str(p) for p in (det_path, rec_path) if not p.is_file()]
            if missing:
                raise EngineUnavailable(
                    "rapidocr's bundled models are missing (a different rapidocr version?): "
                    + ", ".join(missing)
                )
            params: dict[str, Any] = {
                # limit_type=max shrinks only large images, to 960 px on the long side; the
                # default (min, 736) enlarges every small image, which is slow, takes about
                # 1 GB and splits lines into pieces.
                "Det.limit_type": "max",
                "Det.limit_side_len": self.det_limit_side_len,
                # No text-direction classifier: upright text does not need it and it costs time.
                "Global.use_cls": False,
                "Global.log_level": "warning",
                "Det.model_path": str(det_path),
                "Rec.model_path": str(rec_path),
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
            ocr: Any = RapidOCR(params=params)
            # rapidocr logs through its own coloured stderr handler; send its records to ours
            # (JSON lines on stdout) instead.
            rapid_log = logging.getLogger("RapidOCR")
            rapid_log.handlers.clear()
            rapid_log.propagate = True
            # rapidocr loads its models lazily on the first call; load detection now, at
            # start-up. Recognition runs on a session of our own (arena, run options).
            self._det = ocr._load_det_model()
            if self.spread_threads > self.threads:
                # The same detector with more intra-op threads, for an image that has the
                # cores of several calls (docs/ocr.md: 0.97 -> 0.70 s on a dense page).
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.spread_threads
                spread: Any = RapidOCR(params=params)
                self._det_spread = spread._load_det_model()
            self._load_recogniser(rec_path)
            self._load_tesseract()
            self._ocr = ocr
            log.info(
                "rapidocr engine loaded",
                extra={"model_dir": str(model_dir), "threads": self.threads},
            )

    def _load_recogniser(self, rec_path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = True
        self._rec = ort.InferenceSession(str(rec_path), options, providers=["CPUExecutionProvider"])
        self._rec_input = self._rec.get_inputs()[0].name
        # The model carries its alphabet (18,710 characters); blank goes first and space
        # last, as rapidocr's CTCLabelDecode lays out the classes.
        characters = self._rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self._characters = ["blank", *characters, " "]
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def tesseract_models(self) -> frozenset[str]:
        """Tesseract's models installed here (`{"eng", "vie", ...}`), empty without
        tesserocr or without the English one. Looks at files only: known before `load`."""
        if self._tessdata is None:
            self._tessdata = installed_models(self._tessdata_dir)
        return self._tessdata[1]

    def layout_available(self) -> bool:
        return ENGLISH in self.tesseract_models()

    def _load_tesseract(self) -> None:
        directory = self._tessdata[0] if self.tesseract_models() and self._tessdata else None
        if directory is None:
            return
        # Handles are made per thread on first use: a language nobody asks for costs nothing.
        if self._tesseract is None:
            self._tesseract = TesseractLines(directory)
        self._layout = TesseractLayout(directory)

    def _require_loaded(self) -> None:
        if self._ocr is None:
            raise RuntimeError("RapidOcrEngine.load() was not called")

    def _recognise(self, crops: list[npt.NDArray[np.uint8]]) -> list[CropReading]:
        """What each crop reads, with its words, in one onnxruntime run: the CTC output
        decoded greedily (as rapidocr decodes it), each word placed by its characters'
        time steps and fitted to the crop's ink."""
        batch = recognition_input(crops)
        wide = batch.shape[3] > ARENA_SHRINK_WIDTH
        outputs = self._rec.run(None, {self._rec_input: batch}, self._shrink if wide else None)
        scores = np.asarray(outputs[0])
        indices, probabilities = scores.argmax(axis=2), scores.max(axis=2)
        read = []
        for k, crop in enumerate(crops):
            line = ctc_decode(indices[k], probabilities[k], self._characters)
            # Crop pixels per pixel of the recogniser's input (recognition_input's resize).
            scale = crop.shape[1] / recognised_width(crop, batch.shape[3])
            words = locate_ctc_words(line, crop, scale) if line.words else []
            read.append(CropReading(text=line.text, confidence=line.confidence, words=tuple(words)))
        return read

    def detect(self, image: RgbImage) -> list[TextRegion]:
        return self._detect_with(self._det, image)

    def detect_spread(self, image: RgbImage, calls: int) -> list[TextRegion]:
        """`detect` on the multi-threaded session when `calls` calls' threads cover it."""
        wide = self._det_spread is not None and calls * self.threads >= self.spread_threads
        return self._detect_with(self._det_spread if wide else self._det, image)

    def detect_by_layout(self, image: RgbImage, *, join_glyphs: bool = False) -> list[TextRegion]:
        self._require_loaded()
        if self._layout is None:
            raise EngineUnavailable("Tesseract's layout analysis needs tesserocr and its English model")
        return self._layout.lines(image, join_glyphs=join_glyphs)

    def _detect_with(self, detector: Any, image: RgbImage) -> list[TextRegion]:
        self._require_loaded()
        from rapidocr.utils.process_img import apply_vertical_padding, map_boxes_to_original

        height, width = image.shape[:2]
        cfg = self._ocr.cfg.Global
        prepared, ratio_h, ratio_w = fit_for_detection(image, cfg.max_side_len, cfg.min_side_len)
        # Then the same preparation rapidocr's own pipeline does: keep the image within its
        # side bounds, pad very flat images so a single line is still detected.
        work, record = self._ocr.preprocess_img(prepared)
        if cfg.use_vertical_padding:
            work, record = apply_vertical_padding(work, record, cfg.width_height_ratio, cfg.min_height)
        else:
            record["padding_1"] = {"top": 0, "left": 0}
        # PP-OCR models take BGR (OpenCV's order). Flipped after the resize, so a large image
        # is not copied at full size.
        result = detector(np.ascontiguousarray(work[:, :, ::-1]))
        if result.boxes is None or len(result.boxes) == 0:
            return []
        # The detector already sorts boxes top to bottom, then left to right within a row.
        boxes = map_boxes_to_original(
            np.asarray(result.boxes, dtype=np.float32), record, prepared.shape[0], prepared.shape[1]
        )
        boxes[..., 0] *= ratio_w
        boxes[..., 1] *= ratio_h
        return [TextRegion(box=clip_quad(quad_from_array(box), width, height)) for box in boxes]

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        return self.read_batch(image, [region])[0]

    def read_batch(self, image: RgbImage, regions: Sequence[TextRegion]) -> list[RecognizedLine | None]:
        """The lines in `regions`, in that order: the crops sorted by width and recognised
        `batch_size` at a time, each batch padded to its widest crop (as rapidocr does)."""
        return self._read_crops(image, regions, self._recognise_by_width)

    def read_batch_in(
        self,
        image: RgbImage,
        regions: Sequence[TextRegion],
        languages: str,
        retry_with: str | None = None,
    ) -> list[RecognizedLine | None]:
        """`read_batch`, each line read by Tesseract in `languages` (`"vie+eng"`: models of
        `tesseract_models()`), and a line with a word read badly again in `retry_with`."""
        self._require_loaded()
        tesseract = self._tesseract
        if tesseract is None:
            raise EngineUnavailable("no Tesseract models are installed to read other languages than English")
        # Tesseract's own lines are read as they are (PSM.RAW_LINE): a tenth less CPU a line for
        # the same text. The detector's crops may hold slivers of the lines next to them, which
        # Tesseract's line finding (PSM.SINGLE_LINE) leaves out (docs/ocr.md).
        raw = all(region.layout_line for region in regions)
        return self._read_crops(
            image, regions, lambda crops: tesseract.read(crops, languages, raw=raw, retry_with=retry_with)
        )

    def _recognise_by_width(self, crops: list[npt.NDArray[np.uint8]]) -> list[CropReading]:
        read = [CropReading(text="", confidence=0.0)] * len(crops)
        by_width = sorted(range(len(crops)), key=lambda k: crops[k].shape[1] / crops[k].shape[0])
        for start in range(0, len(by_width), self.batch_size):
            batch = by_width[start : start + self.batch_size]
            for k, result in zip(batch, self._recognise([crops[k] for k in batch]), strict=True):
                read[k] = result
        return read

    def _read_crops(
        self,
        image: RgbImage,
        regions: Sequence[TextRegion],
        recognise: Callable[[list[npt.NDArray[np.uint8]]], list[CropReading]],
    ) -> list[RecognizedLine | None]:
        """Each region cut out upright (as rapidocr's `get_rotate_crop_image` cuts it),
        read by `recognise`, and its words mapped back from the crop to the page."""
        self._require_loaded()
        crops = []
        kept: list[tuple[int, CropGeometry]] = []
        for position, region in enumerate(regions):
            geometry = CropGeometry.of(region.box)
            if geometry.width < 1 or geometry.height < 1:
                continue
            # PP-OCR models take BGR (OpenCV's order).
            crops.append(np.ascontiguousarray(geometry.crop(image)[:, :, ::-1]))
            kept.append((position, geometry))
        lines: list[RecognizedLine | None] = [None] * len(regions)
        if not crops:
            return lines
        read = recognise(crops)
        for (position, geometry), reading in zip(kept, read, strict=True):
            confidence = min(max(float(reading.confidence), 0.0), 1.0)
            # Like rapidocr's own pipeline: a low score is noise (texture, a stray mark), not text.
            if not reading.text.strip() or confidence < self.min_confidence:
                continue
            # The line's text is its words' texts joined, so the two always agree.
            lines[position] = line_from_words(
                page_words(reading, geometry), confidence, regions[position].box
            )
        return lines


def recognised_width(crop: npt.NDArray[np.uint8], batch_width: int) -> int:
    """The width `crop` is resized to in a recognition batch `batch_width` wide (its
    height made `RECOGNITION_HEIGHT`, its aspect kept, at most the batch's width)."""
    return max(1, min(batch_width, math.ceil(RECOGNITION_HEIGHT * crop.shape[1] / crop.shape[0])))


def recognition_input(crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """`crops` (BGR) as one float32 NCHW batch for the PP-OCR recogniser, prepared as
    rapidocr prepares it: each crop resized to `RECOGNITION_HEIGHT` keeping its aspect
    (bilinear), scaled to [-1, 1], right-padded with 0 to the widest crop and to at least
    `RECOGNITION_MIN_WIDTH`."""
    import cv2

    height = RECOGNITION_HEIGHT
    ratio = max([RECOGNITION_MIN_WIDTH / height] + [crop.shape[1] / crop.shape[0] for crop in crops])
    width = int(height * ratio)
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for k, crop in enumerate(crops):
        resized_width = recognised_width(crop, width)
        resized = np.asarray(cv2.resize(crop, (resized_width, height)), dtype=np.float32)
        resized /= 255.0
        resized -= 0.5
        resized /= 0.5
        batch[k, :, :, :resized_width] = resized.transpose(2, 0, 1)
    return batch
