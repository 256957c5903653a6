"""Reading order of line boxes (sections, then Breuel's partial order): columns top to
bottom, left first; headings before the columns they span; single-column layouts in row
order. The untidy magazine layouts are in test_ocr_layout_magazine.py."""

from __future__ import annotations

import random

from ocr_svc.engines.base import Quad
from ocr_svc.layout import reading_order

LINE = 40.0  # line box height
PITCH = 52.0  # baseline to baseline


def box(left: float, top: float, width: float, height: float = LINE) -> Quad:
    right, bottom = left + width, top + height
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def column_page(
    columns: int,
    rows: int,
    *,
    heading: bool = True,
    column_width: float = 500.0,
    gutter: float = 70.0,
    top: float = 300.0,
) -> tuple[list[Quad], list[tuple[str, int]]]:
    """Boxes of a page (heading over `columns` of `rows` lines on one baseline grid) and
    the name of each box in reading order: ("h", 0) then (column, row)."""
    boxes: list[Quad] = []
    names: list[tuple[str, int]] = []
    if heading:
        boxes.append(box(100, 100, columns * column_width + (columns - 1) * gutter, 90))
        names.append(("h", 0))
    for column in range(columns):
        for row in range(rows):
            # Ragged right: every fifth line ends a paragraph early.
            width = column_width * (0.45 if row % 5 == 4 else 0.97)
            boxes.append(box(100 + column * (column_width + gutter), top + row * PITCH, width))
            names.append((f"c{column}", row))
    return boxes, names


def read(boxes: list[Quad]) -> list[int]:
    return [line.index for line in reading_order(boxes)]


def shuffled(boxes: list[Quad], seed: int = 1) -> tuple[list[Quad], list[int]]:
    """`boxes` in a random order, and where each original box went."""
    order = list(range(len(boxes)))
    random.Random(seed).shuffle(order)
    return [boxes[i] for i in order], order


def test_nothing_detected_is_an_empty_order() -> None:
    assert reading_order([]) == []


def test_columns_are_read_top_to_bottom_left_first_after_the_heading_that_spans_them() -> None:
    for columns in (2, 3, 4):
        boxes, names = column_page(columns, 12)
        mixed, origin = shuffled(boxes)
        assert [names[origin[i]] for i in read(mixed)] == names


def test_blocks_are_the_heading_then_one_per_column() -> None:
    boxes, _ = column_page(3, 10)
    blocks = [line.block for line in reading_order(boxes)]
    assert blocks == [0] + [1] * 10 + [2] * 10 + [3] * 10


def test_columns_without_a_heading() -> None:
    boxes, names = column_page(3, 8, heading=False)
    assert [names[i] for i in read(boxes)] == names


def test_a_paragraph_break_at_the_same_height_in_every_column_does_not_cut_the_page_in_rows() -> None:
    boxes, names = column_page(2, 12)
    # Lines 6.. of both columns move down by a blank line: a gap across the whole page.
    moved = [
        box(b[0][0], b[0][1] + (PITCH if name != ("h", 0) and name[1] >= 6 else 0), b[1][0] - b[0][0])
        for b, name in zip(boxes, names, strict=True)
    ]
    assert [names[i] for i in read(moved)] == names


def test_a_single_column_keeps_its_row_order_and_is_one_block() -> None:
    boxes = [box(50, 40 + i * 70, 300 + 37 * (i % 4)) for i in range(8)]
    ordered = reading_order(boxes)
    assert [line.index for line in ordered] == list(range(8))
    assert {line.block for line in ordered} == {0}


def test_a_line_split_in_two_by_the_detector_is_read_left_then_right() -> None:
    boxes = [box(50, 40, 400), box(50, 110, 180), box(420, 112, 200), box(50, 180, 400)]
    assert read(boxes) == [0, 1, 2, 3]


def test_a_speck_in_the_gutter_does_not_merge_the_columns() -> None:
    boxes, names = column_page(2, 10)
    speck = box(100 + 500 + 30, 420, 8, 8)
    order = read([*boxes, speck])
    assert [names[i] for i in order if i < len(boxes)] == names


def test_two_columns_then_a_full_width_line_then_three_columns() -> None:
    upper, upper_names = column_page(2, 6, column_width=760)
    rule_top = 300 + 6 * PITCH + 30
    caption = box(100, rule_top, 1590)
    lower, _ = column_page(3, 5, heading=False, top=rule_top + 100)
    boxes = [*upper, caption, *lower]
    names = [*upper_names, ("caption", 0)] + [(f"l{c}", r) for c in range(3) for r in range(5)]
    mixed, origin = shuffled(boxes, seed=7)
    assert [names[origin[i]] for i in read(mixed)] == names


def test_slightly_skewed_columns_are_still_columns() -> None:
    boxes, names = column_page(3, 15)
    # A scan rotated by about 0.3 degrees: x drifts 5 px per 1000 px down the page.
    skewed = [
        tuple((x + 0.005 * y, y - 0.005 * x) for x, y in quad)  # type: ignore[misc]
        for quad in boxes
    ]
    assert [names[i] for i in read(skewed)] == names  # type: ignore[arg-type]
