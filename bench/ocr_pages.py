"""The scanned pages phase of `bench.bench_ocr` (harness/pages.py: 300 dpi, a heading over 3
or 4 columns, about 120 lines, as G4 TIFF and noisy JPEG; and a single-column paragraph):
ocr_svc against RapidOCR's own batched pipeline and Tesseract, alternating, and the rows
they give."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bench.ocr_calls import (
    TESSERACT_MODES,
    ensure_tesseract,
    rapid_page,
    rapidocr_own_pipeline,
    recognize_page,
    tesseract_page,
)
from bench.process_memory import peak_rss_now_mib, reset_peak_rss
from bench.report import Row, median, ratio_lower_is_better
from harness.images import render_text_image
from harness.pages import PageSpec, page_error_rate, render_page
from ocrmesh.ocr.v1 import ocr_pb2_grpc

# The small images of the throughput phase, and together the single-column paragraph page.
PARAGRAPHS = [
    ["Invoice 2024-0815 for Ada Lovelace", "Analytical Engine maintenance, 3 hours", "Subtotal 1250.00 EUR"],
    [
        "The quick brown fox jumps over",
        "the lazy dog 0123456789",
        "Pack my box with five dozen",
        "liquor jugs.",
    ],
    ["Meeting notes, Tuesday", "1. Streaming OCR results", "2. Bounded queues", "3. Graceful shutdown"],
]


def bench_pages(quick: bool) -> list[tuple[str, bytes, str, str]]:
    """(name, image bytes, file suffix, truth text) of the pages measured."""
    pages = []
    four = render_page(PageSpec(columns=4, seed=11, lines_per_column=30))
    pages.append(("4-column page, G4 TIFF", four.tiff, ".tif", four.truth_text))
    if not quick:
        three = render_page(PageSpec(columns=3, seed=12, lines_per_column=40))
        pages.append(("3-column page, G4 TIFF", three.tiff, ".tif", three.truth_text))
        pages.append(("3-column page, noisy JPEG", three.jpeg, ".jpg", three.truth_text))
    paragraph = [line for lines in PARAGRAPHS for line in lines]
    pages.append(("single-column paragraph, PNG", render_text_image(paragraph), ".png", "\n".join(paragraph)))
    return pages


async def page_rows(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub,
    token: str,
    quick: bool,
    repeats: int,
    tesseract_lines: ocr_pb2_grpc.OcrServiceAsyncStub | None = None,
) -> list[Row]:
    """`tesseract_lines`: a second ocr_svc whose engine reads lines with Tesseract's LSTM
    (OCR_RECOGNIZER=tesseract), measured in the same alternation."""
    tesseract = ensure_tesseract()
    rapid: Any = None
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, suffix, truth in bench_pages(quick):
            path = Path(tmp) / f"page{suffix}"
            path.write_bytes(data)
            ours: list[tuple[float, float, str]] = []
            theirs: list[tuple[float, str]] = []
            tess: dict[str, list[tuple[float, str]]] = {mode: [] for mode in TESSERACT_MODES}
            lines_by_tesseract: list[tuple[float, float, str]] = []
            print(f"{name}: {repeats} alternating runs of ocr_svc, RapidOCR, Tesseract ...", flush=True)
            for _ in range(repeats):
                if rapid is None:
                    # ocr_svc's own peak on a dense page, before RapidOCR's sessions exist here.
                    reset_peak_rss()
                    ours.append(await recognize_page(stub, token, data))
                    rows.append(
                        Row(
                            "ocr pages",
                            f"peak RSS during one page: {name}",
                            peak_rss_now_mib(),
                            None,
                            "MiB",
                            None,
                            "whole process (service, engine, client); docs/ocr.md: 350-420 MiB under load",
                        )
                    )
                    rapid = rapidocr_own_pipeline()
                else:
                    ours.append(await recognize_page(stub, token, data))
                if tesseract_lines is not None:
                    lines_by_tesseract.append(await recognize_page(tesseract_lines, token, data))
                theirs.append(await asyncio.to_thread(rapid_page, rapid, data))
                if tesseract:
                    for mode, env in TESSERACT_MODES.items():
                        tess[mode].append(await asyncio.to_thread(tesseract_page, tesseract, path, env))
            seconds = median([t for t, _, _ in ours])
            first = median([f for _, f, _ in ours])
            cer = page_error_rate(truth, ours[-1][2])
            rapid_s, rapid_cer = median([t for t, _ in theirs]), page_error_rate(truth, theirs[-1][1])
            rows.append(
                Row(
                    "ocr pages",
                    f"s/page vs RapidOCR batched: {name}",
                    seconds,
                    rapid_s,
                    "s",
                    ratio_lower_is_better(seconds, rapid_s),
                    f"CER ocr_svc {cer:.3f}, RapidOCR {rapid_cer:.3f}",
                )
            )
            if tesseract:
                by_mode = {mode: median([t for t, _ in runs]) for mode, runs in tess.items()}
                best = min(by_mode, key=lambda mode: by_mode[mode])
                tess_s, tess_cer = by_mode[best], page_error_rate(truth, tess[best][-1][1])
                others = ", ".join(f"{mode} {t:.2f} s" for mode, t in by_mode.items() if mode != best)
                rows.append(
                    Row(
                        "ocr pages",
                        f"s/page vs Tesseract: {name}",
                        seconds,
                        tess_s,
                        "s",
                        ratio_lower_is_better(seconds, tess_s),
                        f"CER ocr_svc {cer:.3f}, Tesseract {tess_cer:.3f}; Tesseract's faster mode: "
                        f"{best} ({others})",
                    )
                )
                rows.append(
                    Row(
                        "ocr pages",
                        f"CER vs Tesseract: {name}",
                        cer,
                        tess_cer,
                        "",
                        ratio_lower_is_better(cer, tess_cer) if cer > 0 else None,
                        f"RapidOCR batched {rapid_cer:.3f}",
                    )
                )
            if tesseract and lines_by_tesseract:
                t_seconds = median([t for t, _, _ in lines_by_tesseract])
                t_first = median([f for _, f, _ in lines_by_tesseract])
                t_cer = page_error_rate(truth, lines_by_tesseract[-1][2])
                rows.append(
                    Row(
                        "ocr pages",
                        f"s/page vs Tesseract, OCR_RECOGNIZER=tesseract: {name}",
                        t_seconds,
                        tess_s,
                        "s",
                        ratio_lower_is_better(t_seconds, tess_s),
                        f"CER {t_cer:.3f} (Tesseract {tess_cer:.3f}); first line {t_first * 1e3:.0f} ms; "
                        f"vs RapidOCR batched {ratio_lower_is_better(t_seconds, rapid_s):.2f}x",
                    )
                )
            rows.append(
                Row(
                    "ocr pages",
                    f"time to first line: {name}",
                    first * 1e3,
                    rapid_s * 1e3,
                    "ms",
                    ratio_lower_is_better(first, rapid_s),
                    "baseline: RapidOCR batched gives every line at the end",
                )
            )
    return rows
