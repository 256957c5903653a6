"""The keras engine's pure parts (no TensorFlow needed): weight resolution, line grouping,
greedy CTC decoding with a confidence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ocr_svc.engines.base import EngineUnavailable, Quad
from ocr_svc.engines.keras import (
    DETECTOR_FILE,
    RECOGNIZER_FILE,
    ctc_greedy_decode,
    group_into_lines,
    resolve_weights,
)


def _box(left: float, top: float, right: float, bottom: float) -> Quad:
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def test_missing_weights_fail_with_a_message_saying_how_to_provide_them(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as failed:
        resolve_weights(cache_dir=tmp_path)
    message = str(failed.value)
    assert str(tmp_path / "craft_mlt_25k.h5") in message
    assert str(tmp_path / "crnn_kurapan.h5") in message
    assert DETECTOR_FILE.url in message
    assert "KERAS_OCR_CACHE_DIR" in message
    assert "KERAS_OCR_DETECTOR_WEIGHTS" in message


def test_a_cached_file_that_is_not_the_published_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / DETECTOR_FILE.filename).write_bytes(b"not the weights")
    (tmp_path / RECOGNIZER_FILE.filename).write_bytes(b"not the weights either")
    with pytest.raises(EngineUnavailable) as failed:
        resolve_weights(cache_dir=tmp_path)
    assert "sha256 mismatch" in str(failed.value)


def test_cached_files_are_found_in_the_cache_dir_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the real files match the published sha256; pretend these are by patching the specs.
    detector, recognizer = tmp_path / DETECTOR_FILE.filename, tmp_path / RECOGNIZER_FILE.filename
    detector.write_bytes(b"d")
    recognizer.write_bytes(b"r")
    import ocr_svc.engines.keras as keras_engine

    monkeypatch.setattr(
        keras_engine,
        "DETECTOR_FILE",
        DETECTOR_FILE.__class__(DETECTOR_FILE.filename, DETECTOR_FILE.url, hashlib.sha256(b"d").hexdigest()),
    )
    monkeypatch.setattr(
        keras_engine,
        "RECOGNIZER_FILE",
        RECOGNIZER_FILE.__class__(
            RECOGNIZER_FILE.filename, RECOGNIZER_FILE.url, hashlib.sha256(b"r").hexdigest()
        ),
    )
    monkeypatch.setenv("KERAS_OCR_CACHE_DIR", str(tmp_path))
    weights = keras_engine.resolve_weights()
    assert (weights.detector, weights.recognizer) == (detector, recognizer)


def test_explicit_weight_files_are_used_as_they_are(tmp_path: Path) -> None:
    detector, recognizer = tmp_path / "d.h5", tmp_path / "r.h5"
    detector.write_bytes(b"custom")
    recognizer.write_bytes(b"custom")
    weights = resolve_weights(cache_dir=tmp_path / "empty", detector=detector, recognizer=recognizer)
    assert (weights.detector, weights.recognizer) == (detector, recognizer)


def test_an_explicit_weight_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as failed:
        resolve_weights(cache_dir=tmp_path, detector=tmp_path / "nope.h5", recognizer=tmp_path / "nope2.h5")
    assert "KERAS_OCR_DETECTOR_WEIGHTS=" in str(failed.value)
    assert "nope.h5" in str(failed.value)


def test_words_are_grouped_into_lines_in_reading_order() -> None:
    words = [
        _box(200, 52, 260, 70),  # line 2, second word
        _box(10, 10, 80, 30),  # line 1, first word
        _box(100, 12, 180, 31),  # line 1, second word
        _box(12, 50, 150, 72),  # line 2, first word
        _box(10, 100, 90, 118),  # line 3
    ]
    lines = group_into_lines(words)
    assert lines == [
        [_box(10, 10, 80, 30), _box(100, 12, 180, 31)],
        [_box(12, 50, 150, 72), _box(200, 52, 260, 70)],
        [_box(10, 100, 90, 118)],
    ]


def test_no_words_make_no_lines() -> None:
    assert group_into_lines([]) == []


def test_greedy_ctc_decoding_collapses_repeats_and_drops_blanks() -> None:
    alphabet = "abc"
    blank = 3
    steps = [0, 0, blank, 0, 1, 1, blank, 2]  # a a _ a b b _ c -> "aabc"
    probabilities = np.full((len(steps), 4), 0.05, dtype=np.float32)
    for t, index in enumerate(steps):
        probabilities[t, index] = 0.9 if index != 2 else 0.6
    text, confidence = ctc_greedy_decode(probabilities, alphabet)
    assert text == "aabc"
    assert confidence == pytest.approx((0.9 + 0.9 + 0.9 + 0.6) / 4)


def test_only_blanks_decode_to_no_text_and_zero_confidence() -> None:
    probabilities = np.zeros((5, 4), dtype=np.float32)
    probabilities[:, 3] = 1.0
    assert ctc_greedy_decode(probabilities, "abc") == ("", 0.0)
