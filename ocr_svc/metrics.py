"""ocr_svc's Prometheus metrics: the admission queue, time to the first line, lines per
page and the engine's phases. The RPCs themselves are counted by the shared interceptor
(`ocrmesh.platform.metrics`). Every metric has labels (see `ocrmesh.platform.metrics` for why)."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

OCR_CALLS = Gauge(
    "ocr_calls",
    "OCR calls admitted now: running (holding a worker) or waiting (in the queue).",
    ["state"],
    multiprocess_mode="livesum",
)
OCR_CAPACITY = Gauge(
    "ocr_capacity",
    "Calls that can be admitted at once: workers (OCR_WORKERS) and queue places (OCR_QUEUE_SIZE).",
    ["kind"],
    multiprocess_mode="livesum",
)
OCR_TIME_TO_FIRST_LINE = Histogram(
    "ocr_time_to_first_line_seconds",
    "From admission (so queueing included) to the first recognised line of an image.",
    ["engine"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0),
)
OCR_LINES_PER_PAGE = Histogram(
    "ocr_lines_per_page",
    "Lines recognised per image.",
    ["engine"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500),
)
OCR_ENGINE_PHASE_SECONDS = Histogram(
    "ocr_engine_phase_seconds",
    "Time of each phase of an image: decode, detect, recognize (all of its lines).",
    ["engine", "phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class PipelineMetrics:
    """What one `OcrPipeline` reports, its label children looked up once."""

    def __init__(self, engine: str, *, workers: int, queue_size: int) -> None:
        self.engine = engine
        self._running = OCR_CALLS.labels("running")
        self._waiting = OCR_CALLS.labels("waiting")
        OCR_CAPACITY.labels("workers").set(workers)
        OCR_CAPACITY.labels("queue").set(queue_size)
        self._first_line = OCR_TIME_TO_FIRST_LINE.labels(engine)
        self._lines = OCR_LINES_PER_PAGE.labels(engine)
        self._phases = {
            phase: OCR_ENGINE_PHASE_SECONDS.labels(engine, phase)
            for phase in ("decode", "detect", "recognize")
        }

    def load(self, admitted: int, running: int) -> None:
        """The calls admitted and running now (waiting = admitted - running)."""
        self._running.set(running)
        self._waiting.set(admitted - running)

    def first_line(self, seconds: float) -> None:
        self._first_line.observe(seconds)

    def image_done(self, *, decode_s: float, detect_s: float, recognize_s: float, lines: int) -> None:
        self._phases["decode"].observe(decode_s)
        self._phases["detect"].observe(detect_s)
        self._phases["recognize"].observe(recognize_s)
        self._lines.observe(lines)
