"""Reading order of the detected lines of a page: recursive XY-cut over their boxes.

Detection gives every line's box before any is read, so the page is ordered first and the
lines are then recognised, and streamed, in that order. The method is the recursive XY-cut
(Nagy and Seth, 1984) with two refinements for typeset pages:

1. A node (a set of boxes) is cut vertically first: when a gutter (an x range no box
   covers, at least `GUTTER_FACTOR` line heights wide) runs through the whole node, the
   node is split there into columns, read left to right.
2. Otherwise it is cut horizontally, but only at a gap where the column structure changes:
   the gutters of the lines just above the gap differ from those just below it (a
   full-width heading over columns, two columns over three). Gaps between lines of the
   same columns (rows of a page whose columns share a baseline grid, or a paragraph break
   that happens to fall at the same height in every column) are not cuts; cutting there is
   what reads a page row by row across its columns.

A node with neither cut is a block: its lines are read top to bottom, and lines side by
side (a line the detector split in two) left to right, which is also the order of a
single-column page or a screenshot. Blocks are numbered in reading order; a line's block
tells which heading, column or part of a column it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ocr_svc.engines.base import Quad

# A gutter between columns is at least this many (median) line heights wide. Word spaces
# never come near it (the detector keeps words of a line in one box), typeset gutters are
# 1-3 line heights.
GUTTER_FACTOR = 0.5
# Lines this close to a horizontal gap (in line heights) show the column structure there.
NEIGHBOURHOOD_FACTOR = 2.0
# Boxes lower than this fraction of the median line height (specks, rules, accents) do not
# shape gutters; they are placed by their centre.
SMALL_FACTOR = 0.5

Boxes = npt.NDArray[np.float64]  # n x 4: left, top, right, bottom


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
    heights = boxes[:, 3] - boxes[:, 1]
    line_height = max(float(np.median(heights)), 1.0)
    cutter = _XYCut(boxes, line_height)
    blocks: list[list[int]] = []
    cutter.cut(np.arange(len(quads)), blocks)
    return [OrderedLine(index=i, block=b) for b, members in enumerate(blocks) for i in members]


class _XYCut:
    def __init__(self, boxes: Boxes, line_height: float) -> None:
        self.boxes = boxes
        self.line_height = line_height
        self.min_gutter = GUTTER_FACTOR * line_height
        heights = boxes[:, 3] - boxes[:, 1]
        widths = boxes[:, 2] - boxes[:, 0]
        self.shapes_layout = (heights >= SMALL_FACTOR * line_height) & (widths >= line_height)

    def cut(self, ids: npt.NDArray[np.intp], blocks: list[list[int]]) -> None:
        parts = (self._columns(ids) or self._bands(ids)) if len(ids) > 1 else None
        if parts and len(parts) > 1:
            for part in parts:
                self.cut(part, blocks)
        else:
            blocks.append(self._rows(ids))

    def _shaping(self, ids: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        shaping = ids[self.shapes_layout[ids]]
        return shaping if len(shaping) else ids

    def _columns(self, ids: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]] | None:
        shaping = self._shaping(ids)
        gutters = _gaps(self.boxes[shaping][:, [0, 2]], self.min_gutter)
        if not gutters:
            return None
        centres = (self.boxes[ids, 0] + self.boxes[ids, 2]) / 2
        return _split(ids, centres, [(a + b) / 2 for a, b in gutters])

    def _bands(self, ids: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]] | None:
        shaping = self._shaping(ids)
        boxes = self.boxes
        cuts = []
        near = NEIGHBOURHOOD_FACTOR * self.line_height
        for start, end in _gaps(boxes[shaping][:, [1, 3]], 1.0):
            bottoms, tops = boxes[shaping, 3], boxes[shaping, 1]
            above = shaping[(bottoms <= start) & (bottoms >= start - near)]
            below = shaping[(tops >= end) & (tops <= end + near)]
            if not self._same_columns(above, below):
                cuts.append((start + end) / 2)
        if not cuts:
            return None
        centres = (boxes[ids, 1] + boxes[ids, 3]) / 2
        return _split(ids, centres, cuts)

    def _same_columns(self, above: npt.NDArray[np.intp], below: npt.NDArray[np.intp]) -> bool:
        over = _gaps(self.boxes[above][:, [0, 2]], self.min_gutter)
        under = _gaps(self.boxes[below][:, [0, 2]], self.min_gutter)
        if len(over) != len(under):
            return False
        return all(min(a[1], b[1]) > max(a[0], b[0]) for a, b in zip(over, under, strict=True))

    def _rows(self, ids: npt.NDArray[np.intp]) -> list[int]:
        """Top to bottom; boxes that overlap vertically by at least half the lower one's
        height are one row, read left to right."""
        boxes = self.boxes
        order = sorted(ids.tolist(), key=lambda i: (boxes[i, 1], boxes[i, 0]))
        rows: list[list[int]] = []
        row_top = row_bottom = 0.0
        for i in order:
            top, bottom = boxes[i, 1], boxes[i, 3]
            overlap = min(bottom, row_bottom) - max(top, row_top)
            if rows and overlap >= 0.5 * min(bottom - top, row_bottom - row_top):
                rows[-1].append(i)
                row_bottom = max(row_bottom, bottom)
            else:
                rows.append([i])
                row_top, row_bottom = top, bottom
        return [i for row in rows for i in sorted(row, key=lambda i: boxes[i, 0])]


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


def _split(
    ids: npt.NDArray[np.intp], centres: npt.NDArray[np.float64], cuts: list[float]
) -> list[npt.NDArray[np.intp]]:
    part = np.searchsorted(np.asarray(cuts), centres)
    return [ids[part == p] for p in range(len(cuts) + 1) if np.any(part == p)]
