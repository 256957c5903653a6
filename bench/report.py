"""Shared output of the benchmarks: each prints its own table and, with `--json PATH`,
writes its rows so `bench.run_all` can print one summary table."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

_T0 = time.perf_counter()


@dataclass(frozen=True)
class Row:
    """One measured figure, with the baseline measured in the same run.

    `ratio` is how many times better ocrmesh is than the baseline (>1 is better), whatever
    the unit: for throughput ocrmesh/baseline, for latency baseline/ocrmesh.
    """

    benchmark: str
    figure: str
    ocrmesh: float
    baseline: float | None
    unit: str
    ratio: float | None
    note: str = ""


def say(message: str) -> None:
    """A progress line, stamped with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _T0:6.1f}s] {message}", flush=True)


def ratio_higher_is_better(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


def ratio_lower_is_better(ours: float, baseline: float) -> float:
    return baseline / ours if ours else float("inf")


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, nearest-rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[Row]) -> str:
    headers = ("benchmark", "figure", "ocrmesh", "baseline", "unit", "ratio", "note")
    cells = [
        (
            r.benchmark,
            r.figure,
            _fmt(r.ocrmesh),
            _fmt(r.baseline),
            r.unit,
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(out)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")


def emit(rows: Sequence[Row], json_path: Path | None) -> None:
    """Print the table; write the rows as JSON when asked (for run_all)."""
    print(format_table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))


def load(json_path: Path) -> list[Row]:
    return [Row(**item) for item in json.loads(json_path.read_text())]
