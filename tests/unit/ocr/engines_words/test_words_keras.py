"""The keras engine reads a line part by part (CRAFT's words): each part that reads
something is a word with the part's own box."""

from __future__ import annotations

import pytest

from ocr_svc.engines.base import Quad, bounding_quad
from ocr_svc.engines.keras import line_of_parts

PARTS: list[Quad] = [
    ((20.0, 20.0), (100.0, 20.0), (100.0, 60.0), (20.0, 60.0)),
    ((110.0, 21.0), (150.0, 21.0), (150.0, 61.0), (110.0, 61.0)),
    ((160.0, 22.0), (290.0, 19.0), (291.0, 59.0), (161.0, 62.0)),
]


def test_each_part_read_is_a_word_with_its_own_box_and_the_text_is_their_join() -> None:
    box = bounding_quad(PARTS)
    line = line_of_parts([("harbour", 0.9), ("", 0.0), ("council", 0.7)], PARTS, box)
    assert line is not None
    assert [(word.text, word.box) for word in line.words] == [("harbour", PARTS[0]), ("council", PARTS[2])]
    assert line.text == "harbour council"
    assert line.confidence == pytest.approx(0.8)
    assert line.box == box


def test_a_line_whose_parts_read_nothing_is_nothing() -> None:
    assert line_of_parts([("", 0.0), ("", 0.0), ("", 0.0)], PARTS, bounding_quad(PARTS)) is None
