"""Where the recognisers put each word: PP-OCR's CTC time steps (greedy decoding, a word
spans its characters' steps) fitted to the crop's ink, and Tesseract's word iterator
(pieces with no blank between them, as its Korean model cuts an eojeol, are one word)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from ocr_svc.engines.tesseract_reader import tesseract_words
from ocr_svc.engines.words import (
    CTC_STRIDE,
    CropWord,
    ctc_centres,
    ctc_crop_words,
    ctc_decode,
    fit_to_ink,
    ink_columns,
    locate_ctc_words,
)

# Class 0 is CTC's blank and the last class a space, as rapidocr lays them out.
CHARACTERS = ["blank", "a", "b", "c", "d", "e", " "]
CLASS = {char: index for index, char in enumerate(CHARACTERS)}


def ctc_steps(pattern: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Argmax classes and their probabilities for a pattern of steps: '_' blank, '~' space,
    any other character itself; letters score 0.9, the rest 0.99."""
    indices = np.array([0 if c == "_" else CLASS[" " if c == "~" else c] for c in pattern], dtype=np.int64)
    probabilities = np.array([0.9 if c.isalpha() else 0.99 for c in pattern], dtype=np.float32)
    return indices, probabilities


def test_greedy_decoding_collapses_repeats_drops_blanks_and_finds_each_words_steps() -> None:
    indices, probabilities = ctc_steps("__aa_b__c___~~__dd_e_a_~_")
    line = ctc_decode(indices, probabilities, CHARACTERS)
    assert line.text == "abc dea"
    assert [(text, first, last) for text, _, first, last in line.words] == [("abc", 2, 8), ("dea", 16, 21)]
    assert line.words[0][1] == pytest.approx(0.9)
    # Characters within words are 3, 3, 3 and 2 steps apart.
    assert line.pitch == 3.0
    # The line's score is the mean of every character emitted, the space too (rapidocr's).
    assert line.confidence == pytest.approx((6 * 0.9 + 0.99 + 0.99) / 8)


def test_repeated_spaces_and_a_leading_space_make_no_empty_word() -> None:
    indices, probabilities = ctc_steps("~_a_~_~__b~")
    line = ctc_decode(indices, probabilities, CHARACTERS)
    assert line.text == "a b"
    assert [text for text, _, _, _ in line.words] == ["a", "b"]
    assert ctc_decode(*ctc_steps("____"), CHARACTERS).text == ""


def test_ctc_words_span_their_characters_steps_widened_by_half_a_pitch() -> None:
    # Without a space emitted, a wide gap is still one word: words end at spaces only.
    assert ctc_decode(*ctc_steps("__a__b__c_____d__e____"), CHARACTERS).text == "abcde"
    line = ctc_decode(*ctc_steps("__a__b__c__~__d__e____"), CHARACTERS)
    assert line.pitch == 3.0
    scale = 2.0  # the crop is twice as wide as the recogniser's input
    step = CTC_STRIDE * scale
    words = ctc_crop_words(line, scale, width=1000.0, height=30.0)
    assert [(w.text, w.left, w.right, w.top, w.bottom) for w in words] == [
        ("abc", (2.5 - 1.5) * step, (8.5 + 1.5) * step, 0.0, 30.0),
        ("de", (14.5 - 1.5) * step, (17.5 + 1.5) * step, 0.0, 30.0),
    ]
    assert ctc_centres(line, scale) == [(2.5 * step, 8.5 * step), (14.5 * step, 17.5 * step)]


def ink_strip(width: int, height: int, blobs: list[tuple[int, int]]) -> npt.NDArray[np.uint8]:
    """A white BGR strip with black columns [start, stop) over most of its height."""
    crop = np.full((height, width, 3), 255, dtype=np.uint8)
    for start, stop in blobs:
        crop[4 : height - 4, start:stop] = 0
    return crop


def test_ink_is_the_minority_side_so_light_text_on_dark_counts_too() -> None:
    dark_on_light = ink_strip(60, 20, [(10, 14), (30, 40)])
    counts = ink_columns(dark_on_light)
    assert np.flatnonzero(counts).tolist() == [*range(10, 14), *range(30, 40)]
    light_on_dark = np.asarray(255 - dark_on_light, dtype=np.uint8)
    np.testing.assert_array_equal(ink_columns(light_on_dark), counts)


def test_word_edges_move_onto_the_ink_and_the_cut_between_words_is_the_widest_gap() -> None:
    # "abc" is three letters with narrow gaps, "de" two; the space is the widest gap.
    crop = ink_strip(200, 30, [(20, 32), (35, 47), (50, 62), (90, 102), (105, 117)])
    # A speck of scanner noise just left of the first word, and one in the space.
    crop[15, 12] = 0
    crop[14, 75] = 0
    rough = [CropWord("abc", 0.9, 14.0, 0.0, 70.0, 30.0), CropWord("de", 0.8, 80.0, 0.0, 125.0, 30.0)]
    centres = [(26.0, 60.0), (92.0, 110.0)]
    fitted = fit_to_ink(rough, ink_columns(crop), centres)
    assert [(w.text, w.left, w.right) for w in fitted] == [("abc", 20.0, 62.0), ("de", 90.0, 117.0)]
    assert [(w.top, w.bottom, w.confidence) for w in fitted] == [(0.0, 30.0, 0.9), (0.0, 30.0, 0.8)]


def test_a_word_with_no_ink_where_the_recogniser_put_it_keeps_its_place() -> None:
    crop = ink_strip(200, 30, [(20, 40)])
    rough = [CropWord("a", 0.9, 15.0, 0.0, 45.0, 30.0), CropWord("b", 0.9, 120.0, 0.0, 150.0, 30.0)]
    fitted = fit_to_ink(rough, ink_columns(crop), [(30.0, 30.0), (135.0, 135.0)])
    assert [(w.left, w.right) for w in fitted] == [(20.0, 40.0), (120.0, 150.0)]


def test_words_located_in_a_crop_are_their_ink_in_reading_order() -> None:
    # Four words of 3, 6, 1 and 4 letters, 12 px a letter, 24 px spaces, in a crop the
    # recogniser read at its own width (scale 1: 8 crop px a step).
    letters = [3, 6, 1, 4]
    blobs: list[tuple[int, int]] = []
    x = 10
    for count in letters:
        blobs.extend((x + 12 * k, x + 12 * k + 10) for k in range(count))
        x += 12 * count + 24
    crop = ink_strip(x + 10, 32, blobs)
    # One emission per letter, at its centre (letters a, b, c, d, e, a, ... so that no two
    # neighbours repeat), and a space step in the middle of each gap between words.
    steps = ["_"] * (crop.shape[1] // CTC_STRIDE + 1)
    for k, (start, stop) in enumerate(blobs):
        steps[(start + stop) // 2 // CTC_STRIDE] = "abcde"[k % 5]
    ends = np.cumsum(letters)[:-1]
    for end in ends:
        steps[(blobs[end - 1][1] + blobs[end][0]) // 2 // CTC_STRIDE] = "~"
    line = ctc_decode(*ctc_steps("".join(steps)), CHARACTERS)
    assert line.text == "abc deabcd e abcd"
    words = locate_ctc_words(line, crop, scale=1.0)
    firsts = [0, *ends.tolist()]
    lasts = [end - 1 for end in ends.tolist()] + [len(blobs) - 1]
    assert [(w.left, w.right) for w in words] == [
        (float(blobs[first][0]), float(blobs[last][1])) for first, last in zip(firsts, lasts, strict=True)
    ]


@dataclass
class Piece:
    text: str | None
    box: tuple[int, int, int, int]
    confidence: float
    blanks: int


class TesseractIterator:
    """What tesserocr's result iterator answers at word level, for fixed pieces."""

    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = pieces
        self.at = 0

    def GetUTF8Text(self, level: object) -> str:
        text = self.pieces[self.at].text
        if text is None:
            # What tesserocr does for an element with no text at all.
            raise RuntimeError("No text returned")
        return text

    def BoundingBox(self, level: object) -> tuple[int, int, int, int]:
        return self.pieces[self.at].box

    def Confidence(self, level: object) -> float:
        return self.pieces[self.at].confidence

    def BlanksBeforeWord(self) -> int:
        return self.pieces[self.at].blanks

    def Next(self, level: object) -> bool:
        self.at += 1
        return self.at < len(self.pieces)


def test_tesseract_pieces_without_a_blank_between_them_are_one_word() -> None:
    # Tesseract's Korean model gives "마이크로서비스 아키텍처는" as syllables, blanks only
    # before the second eojeol (what its GetUTF8Text writes).
    pieces = [
        Piece("마", (0, 2, 40, 44), 93.0, 0),
        Piece("이", (54, 2, 76, 44), 93.0, 0),
        Piece("서비스", (80, 0, 200, 44), 90.0, 0),
        Piece("아키텍처는", (225, 1, 420, 46), 95.0, 1),
        Piece("   ", (430, 1, 440, 46), 10.0, 1),
    ]
    words = tesseract_words(TesseractIterator(pieces), level=None)
    assert [w.text for w in words] == ["마이서비스", "아키텍처는"]
    assert (words[0].left, words[0].top, words[0].right, words[0].bottom) == (0.0, 0.0, 200.0, 44.0)
    # Weighted by the pieces' lengths: 1, 1 and 3 characters.
    assert words[0].confidence == pytest.approx((0.93 + 0.93 + 3 * 0.90) / 5)
    assert words[1].confidence == pytest.approx(0.95)
    assert tesseract_words(None, level=None) == ()


def test_a_tesseract_element_without_text_is_skipped_not_raised() -> None:
    pieces = [
        Piece(None, (0, 0, 10, 40), 0.0, 0),
        Piece("word", (20, 2, 120, 44), 91.0, 1),
    ]
    words = tesseract_words(TesseractIterator(pieces), level=None)
    assert [w.text for w in words] == ["word"]


def test_decoding_reads_what_rapidocrs_own_decoder_reads() -> None:
    from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

    theirs = CTCLabelDecode(character=list("abcde"))
    rng = np.random.default_rng(11)
    # Blank-heavy scores, as a recogniser's are: most steps blank, some letters, some spaces.
    scores = rng.random((4, 60, len(theirs.character))).astype(np.float32)
    scores[:, :, 0] += rng.random((4, 60)).astype(np.float32) * 1.2
    expected, _ = theirs(scores)
    for row, (text, confidence) in zip(scores, expected, strict=True):
        line = ctc_decode(row.argmax(axis=1), row.max(axis=1), theirs.character)
        assert line.text == " ".join(text.split())
        assert line.confidence == pytest.approx(confidence, abs=1e-4)
