"""Reading order of the detected lines of a page: sections, then Breuel's partial order.

Detection gives every line's box before any is read, so the page is ordered first and the
lines are then recognised, and streamed, in that order. Real pages (a heading across only
some of the columns, beside a full-height first column; a caption across two columns; a
running header; a page number) block the whole-node cuts that recursive XY-cut needs, so
the order is found in three steps:

1. **Sections.** The page is cut horizontally at full-width gaps where the column structure
   changes: the columns of the lines just above the gap do not start where those of the
   lines just below it do (a running header over the body, the body over a page number, a
   full-width heading over columns, two columns over three). Gaps between rows of the same
   columns (a baseline grid, a paragraph break at the same height in every column, the row
   after which one column ends) are not cuts. Sections are read top to bottom.
2. **Order within a section**: Breuel's partial order of the lines and a topological sort
   (`ocr_svc.layout_order`): a line precedes the lines below it that overlap it in x, and
   the lines entirely right of it unless a line between them spans both (a heading).
3. **Blocks**: consecutive lines in that order form one block while each next line overlaps
   the block in x, starts at most `BLOCK_GAP_FACTOR` line heights below it and is about as
   high as the block's lines (not a heading over body text); blocks are numbered in
   reading order.

Boxes lower or narrower than half a line height (specks, accents, a stray dot) and thin
boxes (rules) take no part in steps 1-3: they could join or separate columns that are not
joined or separated. Each is placed next to the nearest line (after it when it lies below
or right of it, before otherwise) and takes that line's block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import Quad
from ocr_svc.layout_order import Boxes, position_rank, precedence, topological_order

# A gutter between columns is at least this many line heights wide. Word spaces never come
# near it (the detector keeps words of a line in one box), typeset gutters are 1-3 line
# heights.
GUTTER_FACTOR = 0.5
# Lines this close to a horizontal gap (in line heights) show the column structure there.
NEIGHBOURHOOD_FACTOR = 2.0
# The columns above and below a gap are the same when there are as many and each starts
# within this many line heights of its counterpart. Where they end is not compared: a
# ragged-right line (a paragraph's short last line) moves a column's end, never its start.
SAME_COLUMN_FACTOR = 1.5
# A strip of the page at most this many line heights high above its first full-width gap
# (or below its last) is a running header (or a footer, a page number): one line. At 3 a
# two-line figure caption at the foot, the page number not found, was taken for a footer
# and read after every column.
EDGE_STRIP_FACTOR = 1.5
# A line whose height differs from the mean of its block's by more than this ratio (a
# heading over body text) starts a new block. Detected boxes of one font vary by up to 1.3x
# (descenders, a speck touching the line).
SIZE_CHANGE = 1.5
# Boxes lower or narrower than this fraction of the line height do not shape the layout.
SMALL_FACTOR = 0.5
# A line starting more than this many line heights below a block starts a new one.
BLOCK_GAP_FACTOR = 0.8

Ids = npt.NDArray[np.intp]


@dataclass(frozen=True)
class OrderedLine:
    """Position `index` of the input in reading order, in block `block`."""

    index: int
    block: int


def reading_order(quads: Sequence[Quad]) -> list[OrderedLine]:
    """`quads` (line boxes, any order) in reading order, each with its block number."""
    if not quads:
        return []
    corners = np.asarray(quads, dtype=np.float64).reshape(len(quads), 4, 2)
    boxes = np.stack(
        [corners[:, :, 0].min(1), corners[:, :, 1].min(1), corners[:, :, 0].max(1), corners[:, :, 1].max(1)],
        axis=1,
    )
    line_height = _line_height(boxes)
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    shaping = (heights >= SMALL_FACTOR * line_height) & (widths >= SMALL_FACTOR * line_height)
    main = np.flatnonzero(shaping) if shaping.any() else np.arange(len(boxes))

    ordered: list[int] = []
    blocks: list[int] = []
    for section in _sections(boxes, main, line_height):
        sub = boxes[section]
        order = section[topological_order(precedence(sub), position_rank(sub))]
        first = blocks[-1] + 1 if blocks else 0
        ordered.extend(order.tolist())
        blocks.extend(_blocks(boxes, order, line_height, first))
    small = np.setdiff1d(np.arange(len(boxes)), main)
    return _place_small(boxes, ordered, blocks, small)


def _line_height(boxes: Boxes) -> float:
    """The median height of the line-like boxes (at least twice as wide as high), so that
    specks do not shrink it."""
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    line_like = heights[widths >= 2 * heights]
    return max(float(np.median(line_like if len(line_like) else heights)), 1.0)


def _sections(boxes: Boxes, ids: Ids, line_height: float) -> list[Ids]:
    """`ids` cut at the full-width gaps where the column structure changes, top first.

    No column may run on across the gap (`_continues`), and a gap is a cut only where what
    lies just above it and just below it is stacked (`_stacked`: a heading over columns,
    columns over a caption across them) or where one side is a strip at the page's edge (a
    running header, a page number). Columns that merely end at different heights leave a
    full-width gap beside a figure's caption, between lines that lie side by side: Breuel's
    order places those, a cut there would not."""
    min_gutter = GUTTER_FACTOR * line_height
    near = NEIGHBOURHOOD_FACTOR * line_height
    edge = EDGE_STRIP_FACTOR * line_height
    tops, bottoms = boxes[ids, 1], boxes[ids, 3]
    page_top, page_bottom = tops.min(), bottoms.max()
    cuts = []
    for start, end in _gaps(boxes[ids][:, [1, 3]], 1.0):
        above = boxes[ids[(bottoms <= start) & (bottoms >= start - near)]]
        below = boxes[ids[(tops >= end) & (tops <= end + near)]]
        over = _column_starts(above[:, [0, 2]], min_gutter)
        under = _column_starts(below[:, [0, 2]], min_gutter)
        if len(over) == len(under) and np.all(np.abs(over - under) <= SAME_COLUMN_FACTOR * line_height):
            continue
        if _continues(above, below, line_height):
            continue
        if _stacked(above, below, min_gutter) or start - page_top <= edge or page_bottom - end <= edge:
            cuts.append((start + end) / 2)
    centres = (tops + bottoms) / 2
    part = np.searchsorted(np.asarray(cuts), centres)
    return [ids[part == p] for p in range(len(cuts) + 1) if np.any(part == p)]


def _continues(above: Boxes, below: Boxes, line_height: float) -> bool:
    """Some line below is the next line of a column above: it starts where that one starts,
    is about as high and follows at line spacing (on a baseline grid, the gap after a row
    where another column ends runs across the whole page; it is no section break)."""
    same_start = np.abs(above[:, None, 0] - below[None, :, 0]) <= SAME_COLUMN_FACTOR * line_height
    close = below[None, :, 1] - above[:, None, 3] <= BLOCK_GAP_FACTOR * line_height
    high_above, high_below = above[:, 3] - above[:, 1], below[:, 3] - below[:, 1]
    alike = np.maximum(high_above[:, None], high_below[None, :]) <= SIZE_CHANGE * np.minimum(
        high_above[:, None], high_below[None, :]
    )
    return bool(np.any(same_start & close & alike))


def _stacked(above: Boxes, below: Boxes, min_gutter: float) -> bool:
    """Every column just above the gap has a line just below it in x: a heading over the
    columns, or the columns over a caption across all of them. A caption under some of the
    columns only (a figure below columns 1-2, column 3 running on beside the figure) is not
    stacked: Breuel's order reads it after the columns it is under and before the column
    right of it, where a cut would push it past every column."""
    if not len(above) or not len(below):
        return False
    return all(
        bool(np.any((below[:, 0] < end) & (below[:, 2] > start)))
        for start, end in _column_spans(above[:, [0, 2]], min_gutter)
    )


def _column_spans(intervals: Boxes, min_gutter: float) -> list[tuple[float, float]]:
    """The columns of these x-intervals, (start, end) each: split at every gutter at least
    `min_gutter` wide."""
    gaps = _gaps(intervals, min_gutter)
    starts = [float(intervals[:, 0].min())] + [end for _, end in gaps]
    ends = [start for start, _ in gaps] + [float(intervals[:, 1].max())]
    return list(zip(starts, ends, strict=True))


def _column_starts(intervals: Boxes, min_gutter: float) -> npt.NDArray[np.float64]:
    """Where the columns of these x-intervals start: the first start, then the end of each
    gutter (a running header's one wide gutter ends where the body's does not; a page
    number starts where no column does)."""
    return np.asarray([start for start, _ in _column_spans(intervals, min_gutter)])


def _blocks(boxes: Boxes, order: Ids, line_height: float, first: int) -> list[int]:
    """Block numbers (from `first`) of the lines of one section in reading order."""
    blocks: list[int] = []
    block = first - 1
    left = right = bottom = last_top = height_sum = 0.0
    count = 0
    for i in order.tolist():
        x0, t, x1, b = boxes[i]
        joins = (
            bool(blocks)
            and x0 < right
            and x1 > left
            and t - bottom <= BLOCK_GAP_FACTOR * line_height
            and t >= last_top - SMALL_FACTOR * line_height
            and max(b - t, height_sum / count) <= SIZE_CHANGE * min(b - t, height_sum / count)
        )
        if joins:
            left, right, bottom = min(left, x0), max(right, x1), max(bottom, b)
            height_sum, count = height_sum + (b - t), count + 1
        else:
            block += 1
            left, right, bottom = x0, x1, b
            height_sum, count = b - t, 1
        last_top = t
        blocks.append(block)
    return blocks


def _place_small(boxes: Boxes, ordered: list[int], blocks: list[int], small: Ids) -> list[OrderedLine]:
    """The ordered lines with each small box next to its nearest line, in its block."""
    if not len(small):
        return [OrderedLine(index=i, block=b) for i, b in zip(ordered, blocks, strict=True)]
    lines = boxes[ordered]
    specks = boxes[small]
    dx = np.maximum(
        0.0, np.maximum(lines[None, :, 0] - specks[:, None, 2], specks[:, None, 0] - lines[None, :, 2])
    )
    dy = np.maximum(
        0.0, np.maximum(lines[None, :, 1] - specks[:, None, 3], specks[:, None, 1] - lines[None, :, 3])
    )
    nearest = np.argmin(np.hypot(dx, dy), axis=1)
    before: dict[int, list[int]] = {}
    after: dict[int, list[int]] = {}
    for speck, position in zip(small.tolist(), nearest.tolist(), strict=True):
        line = lines[position]
        s = boxes[speck]
        below_or_right = (s[1] + s[3]) / 2 > line[3] or ((s[1] + s[3]) / 2 >= line[1] and s[0] >= line[0])
        (after if below_or_right else before).setdefault(position, []).append(speck)

    def by_position(ids: list[int]) -> list[int]:
        return sorted(ids, key=lambda i: (boxes[i, 1], boxes[i, 0]))

    result: list[OrderedLine] = []
    for position, (i, block) in enumerate(zip(ordered, blocks, strict=True)):
        result.extend(OrderedLine(index=s, block=block) for s in by_position(before.get(position, [])))
        result.append(OrderedLine(index=i, block=block))
        result.extend(OrderedLine(index=s, block=block) for s in by_position(after.get(position, [])))
    return result


def _gaps(intervals: Boxes, min_gap: float) -> list[tuple[float, float]]:
    """The uncovered stretches, at least `min_gap` long, between the first start and the
    last end of `intervals` (n x 2)."""
    if len(intervals) < 2:
        return []
    order = np.argsort(intervals[:, 0], kind="stable")
    starts, ends = intervals[order, 0], intervals[order, 1]
    reach = np.maximum.accumulate(ends)
    gaps = []
    for k in range(1, len(starts)):
        if starts[k] - reach[k - 1] >= min_gap:
            gaps.append((float(reach[k - 1]), float(starts[k])))
    return gaps
