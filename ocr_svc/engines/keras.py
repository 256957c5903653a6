"""The keras-ocr engine (CRAFT detector + CRNN recognizer on TensorFlow), as the original
system used it. Optional: it needs the `keras` extra, and TensorFlow is imported only
when this engine is chosen.

keras-ocr downloads its pretrained weights from GitHub on first use. Services here run
without that: the weights come from a pre-seeded cache directory (checked against the
sha256 keras-ocr publishes) or from explicit files, and a missing file stops the service
at start-up with a message saying where to put it. Fetching is opt-in
(`KERAS_OCR_DOWNLOAD=true`).

keras-ocr gives no confidence. This engine reads the recognizer's per-step character
probabilities itself and reports, for each line, the mean probability of the characters
it emitted (greedy CTC decoding, as keras-ocr decodes). CRAFT detects words and a line
is read word by word, so each word's box is the one CRAFT found.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import (
    EngineUnavailable,
    Quad,
    RecognizedLine,
    RecognizedWord,
    RgbImage,
    TextRegion,
    bounding_quad,
    clip_quad,
    pad_bottom_right,
    quad_from_array,
    quad_to_array,
)
from ocr_svc.engines.words import line_from_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedFile:
    """A weight file keras-ocr 0.9.3 publishes (its own URL and sha256)."""

    filename: str
    url: str
    sha256: str


DETECTOR_FILE = PretrainedFile(
    filename="craft_mlt_25k.h5",
    url="https://github.com/faustomorales/keras-ocr/releases/download/v0.8.4/craft_mlt_25k.h5",
    sha256="7283ce2ff05a0617e9740c316175ff3bacdd7215dbdf1a726890d5099431f899",
)
RECOGNIZER_FILE = PretrainedFile(
    filename="crnn_kurapan.h5",
    url="https://github.com/faustomorales/keras-ocr/releases/download/v0.8.4/crnn_kurapan.h5",
    sha256="a7d8086ac8f5c3d6a0a828f7d6fbabcaf815415dd125c32533013f85603be46d",
)
DOWNLOAD_TIMEOUT_S = 60.0
MIN_DETECTION_SIDE = 32


def default_cache_dir() -> Path:
    """Where keras-ocr itself looks: $KERAS_OCR_CACHE_DIR, else ~/.keras-ocr."""
    return Path(os.environ.get("KERAS_OCR_CACHE_DIR") or Path.home() / ".keras-ocr")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class KerasWeights:
    """The two weight files the engine loads."""

    detector: Path
    recognizer: Path


def _fetch(spec: PretrainedFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        # A fixed https URL of keras-ocr's releases, never one from a caller.
        response = urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
        with response, partial.open("wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        if sha256_of(partial) != spec.sha256:
            raise EngineUnavailable(f"downloaded {spec.url} but its sha256 does not match")
        partial.replace(target)
    except OSError as exc:
        raise EngineUnavailable(f"cannot download {spec.url}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def resolve_weights(
    *,
    cache_dir: Path | None = None,
    detector: Path | None = None,
    recognizer: Path | None = None,
    allow_download: bool = False,
) -> KerasWeights:
    """The weight files to load, or `EngineUnavailable` saying what is missing and how to
    provide it.

    An explicit file is used as it is (fine-tuned weights have their own hash). Otherwise
    the file keras-ocr publishes is taken from `cache_dir` (default: keras-ocr's own) and
    must match its published sha256; when absent it is downloaded only if `allow_download`.
    """
    cache = cache_dir or default_cache_dir()
    resolved: list[Path] = []
    problems: list[str] = []
    for explicit, spec, variable in (
        (detector, DETECTOR_FILE, "KERAS_OCR_DETECTOR_WEIGHTS"),
        (recognizer, RECOGNIZER_FILE, "KERAS_OCR_RECOGNIZER_WEIGHTS"),
    ):
        if explicit is not None:
            if not explicit.is_file():
                problems.append(f"{variable}={explicit} is not a file")
            resolved.append(explicit)
            continue
        path = cache / spec.filename
        resolved.append(path)
        if path.is_file():
            if sha256_of(path) != spec.sha256:
                problems.append(
                    f"{path} is not keras-ocr's published {spec.filename} (sha256 mismatch); "
                    f"replace it, or name a custom file with {variable}"
                )
            continue
        if allow_download:
            log.info("downloading keras-ocr weights", extra={"url": spec.url, "path": str(path)})
            try:
                _fetch(spec, path)
            except EngineUnavailable as exc:
                problems.append(str(exc))
            continue
        problems.append(f"{path} is missing (download {spec.url}, sha256 {spec.sha256})")
    if problems:
        raise EngineUnavailable(
            "keras-ocr weights are not available: "
            + "; ".join(problems)
            + ". Pre-seed KERAS_OCR_CACHE_DIR with craft_mlt_25k.h5 and crnn_kurapan.h5, or set "
            "KERAS_OCR_DETECTOR_WEIGHTS and KERAS_OCR_RECOGNIZER_WEIGHTS to weight files, "
            "or allow fetching them with KERAS_OCR_DOWNLOAD=true."
        )
    return KerasWeights(detector=resolved[0], recognizer=resolved[1])


def group_into_lines(words: list[Quad]) -> list[list[Quad]]:
    """Word boxes grouped into lines: a word joins a line when it overlaps the line
    vertically by at least half of the smaller height. Lines come top to bottom, words
    left to right (CRAFT finds words; the service streams lines)."""

    def span(quad: Quad) -> tuple[float, float]:
        ys = [y for _, y in quad]
        return min(ys), max(ys)

    lines: list[tuple[list[Quad], float, float]] = []
    for word in sorted(words, key=lambda q: sum(y for _, y in q) / 4):
        top, bottom = span(word)
        for index, (members, line_top, line_bottom) in enumerate(lines):
            overlap = min(bottom, line_bottom) - max(top, line_top)
            if overlap >= 0.5 * min(bottom - top, line_bottom - line_top):
                members.append(word)
                lines[index] = (members, min(top, line_top), max(bottom, line_bottom))
                break
        else:
            lines.append(([word], top, bottom))
    ordered = sorted(lines, key=lambda line: (line[1] + line[2]) / 2)
    return [sorted(members, key=lambda q: min(x for x, _ in q)) for members, _, _ in ordered]


def ctc_greedy_decode(probabilities: npt.NDArray[Any], alphabet: str) -> tuple[str, float]:
    """Text and confidence from one row of per-step class probabilities (blank is the last
    class): repeated classes collapse, blanks drop out, as keras-ocr's greedy decoder does.
    The confidence is the mean of the emitted characters' probabilities (0 for no text)."""
    blank = len(alphabet)
    best = probabilities.argmax(axis=-1)
    chars: list[str] = []
    scores: list[float] = []
    previous = -1
    for step, index in enumerate(best.tolist()):
        if index != previous and index != blank and 0 <= index < blank:
            chars.append(alphabet[index])
            scores.append(float(probabilities[step, index]))
        previous = index
    return "".join(chars), (float(np.mean(scores)) if scores else 0.0)


def line_of_parts(decoded: list[tuple[str, float]], parts: list[Quad], box: Quad) -> RecognizedLine | None:
    """The line `box` whose parts (CRAFT's words, in reading order) read `decoded` (text,
    confidence): each part that reads something is a word, with the part's box; the
    line's confidence is its words' mean. None when no part reads anything."""
    words = [
        RecognizedWord(text=text, confidence=min(max(score, 0.0), 1.0), box=part)
        for (text, score), part in zip(decoded, parts, strict=True)
        if text
    ]
    if not words:
        return None
    return line_from_words(words, float(np.mean([word.confidence for word in words])), box)


class KerasOcrEngine:
    """keras-ocr's CRAFT + CRNN, run step by step: detect words, group them into lines,
    then recognise one line (its words in one batch) per `read`."""

    name = "keras"

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        detector_weights: Path | None = None,
        recognizer_weights: Path | None = None,
        allow_download: bool = False,
        threads: int = 0,
        scale: float = 2.0,
        max_size: int = 2048,
    ) -> None:
        self.cache_dir = cache_dir
        self.detector_weights = detector_weights
        self.recognizer_weights = recognizer_weights
        self.allow_download = allow_download
        self.threads = threads
        # keras-ocr's Pipeline defaults: enlarge small text twice, cap the long side.
        self.scale = scale
        self.max_size = max_size
        self._detector: Any = None
        self._recognizer: Any = None
        self._alphabet = ""
        self._load_lock = threading.Lock()

    def load(self) -> None:
        with self._load_lock:
            if self._detector is not None:
                return
            # Fail on missing weights before paying for the TensorFlow import.
            weights = resolve_weights(
                cache_dir=self.cache_dir,
                detector=self.detector_weights,
                recognizer=self.recognizer_weights,
                allow_download=self.allow_download,
            )
            detection, recognition, tf = _import_keras_ocr()
            if self.threads > 0:
                try:
                    tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                    tf.config.threading.set_inter_op_parallelism_threads(1)
                except RuntimeError:
                    # TensorFlow was initialised already (another engine in this process).
                    log.warning("tensorflow threads already configured")
            try:
                detector = detection.Detector(weights=None)
                detector.model.load_weights(str(weights.detector))
            except Exception as exc:
                raise EngineUnavailable(f"cannot load detector weights {weights.detector}: {exc}") from exc
            try:
                recognizer = recognition.Recognizer(
                    alphabet=recognition.DEFAULT_ALPHABET,
                    weights=None,
                    build_params=recognition.DEFAULT_BUILD_PARAMS,
                )
                recognizer.model.load_weights(str(weights.recognizer))
            except Exception as exc:
                raise EngineUnavailable(
                    f"cannot load recognizer weights {weights.recognizer}: {exc}"
                ) from exc
            self._alphabet = recognizer.alphabet
            self._recognizer = recognizer
            self._detector = detector
            log.info(
                "keras-ocr engine loaded",
                extra={"detector": str(weights.detector), "recognizer": str(weights.recognizer)},
            )

    def _require_loaded(self) -> None:
        if self._detector is None:
            raise RuntimeError("KerasOcrEngine.load() was not called")

    def detect(self, image: RgbImage) -> list[TextRegion]:
        self._require_loaded()
        import cv2
        from keras_ocr import detection

        height, width = image.shape[:2]
        longest = max(height, width)
        scale = self.scale if longest * self.scale <= self.max_size else self.max_size / longest
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        resized = np.asarray(cv2.resize(image, dsize=size), dtype=np.uint8)
        # CRAFT halves the image five times: a thinner strip would vanish inside the network.
        resized = pad_bottom_right(resized, MIN_DETECTION_SIDE, MIN_DETECTION_SIDE)
        batch = detection.compute_input(resized)[np.newaxis]
        # A direct call instead of model.predict(): no per-call dataset machinery, and safe
        # to run from several worker threads.
        maps = self._detector.model(batch, training=False).numpy()
        boxes = detection.getBoxes(maps)[0]
        words = [
            clip_quad(quad_from_array(np.asarray(box, dtype=np.float64) / scale), width, height)
            for box in boxes
        ]
        return [TextRegion(box=bounding_quad(line), parts=tuple(line)) for line in group_into_lines(words)]

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        self._require_loaded()
        import cv2
        from keras_ocr import tools

        _, target_height, target_width, _ = self._recognizer.model.input_shape
        crops = []
        boxes: list[Quad] = []
        for part in region.parts or (region.box,):
            box = quad_to_array(part)
            width, height = float(np.ptp(box[:, 0])), float(np.ptp(box[:, 1]))
            scale = min(target_width / max(width, 1e-6), target_height / max(height, 1e-6))
            # warpBox fits the box into the recogniser's input; a sliver that would shrink
            # to nothing in either direction holds no readable character anyway.
            if int(width * scale) < 2 or int(height * scale) < 2:
                continue
            try:
                crop = tools.warpBox(
                    image=image, box=box, target_height=target_height, target_width=target_width
                )
            except (ValueError, cv2.error):
                # A rotated sliver can still collapse inside warpBox: nothing to read there.
                continue
            crops.append(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
            boxes.append(part)
        if not crops:
            return None
        batch = (np.array(crops, dtype=np.float32) / 255.0)[..., np.newaxis]
        probabilities = self._recognizer.model(batch, training=False).numpy()
        decoded = [ctc_greedy_decode(row, self._alphabet) for row in probabilities]
        return line_of_parts(decoded, boxes, region.box)


def _import_keras_ocr() -> tuple[Any, Any, Any]:
    # keras-ocr's recognizer breaks under Keras 3; tf-keras (Keras 2) is selected by this
    # variable, which must be set before TensorFlow is first imported.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        from keras_ocr import detection, recognition
    except ImportError as exc:
        raise EngineUnavailable(
            f"OCR_ENGINE=keras needs the 'keras' extra (keras-ocr, tensorflow-cpu, tf-keras): {exc}"
        ) from exc
    return detection, recognition, tf
