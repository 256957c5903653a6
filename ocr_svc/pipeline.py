"""The Recognize use case: admission (bounded queue), a worker pool for the engine, and
the stream of events (started, one per line as soon as it is read, completed)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ocr_svc.engines.base import OcrEngine, RecognizedLine
from ocr_svc.images import DecodedImage, ImageLimits, decode_image

log = logging.getLogger(__name__)

T = TypeVar("T")


class Overloaded(Exception):
    """Every worker is busy and the queue in front of them is full."""


@dataclass(frozen=True)
class Started:
    """The image is decoded and the engine has it."""

    engine: str
    width: int
    height: int


@dataclass(frozen=True)
class LineRecognized:
    """One line, `index` 0-based in reading order."""

    index: int
    line: RecognizedLine


@dataclass(frozen=True)
class Timings:
    """Milliseconds per phase. `total_ms` runs from admission, so it includes queueing."""

    decode_ms: float
    detect_ms: float
    recognize_ms: float
    total_ms: float


@dataclass(frozen=True)
class Completed:
    """The image is done."""

    full_text: str
    line_count: int
    timings: Timings


OcrEvent = Started | LineRecognized | Completed


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class OcrPipeline:
    """Runs `engine` for callers, at most `workers` images at a time, with at most
    `queue_size` more callers waiting; anyone beyond that gets `Overloaded` immediately.

    Engine calls run in a thread pool of `workers` threads, off the event loop. A caller
    that goes away (its task is cancelled) stops its image at the next line: the step
    running in a thread finishes, nothing after it starts. Memory stays bounded: at most
    `workers + queue_size` uploads are held, and only `workers` of them decoded.
    """

    def __init__(self, engine: OcrEngine, limits: ImageLimits, *, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.engine = engine
        self.limits = limits
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr-worker")
        self._slots = asyncio.Semaphore(workers)
        self._admitted = 0
        self._running = 0

    @property
    def admitted(self) -> int:
        """Calls holding a place: running plus waiting."""
        return self._admitted

    @property
    def running(self) -> int:
        """Calls holding a worker."""
        return self._running

    async def recognize(self, image: bytes) -> AsyncGenerator[OcrEvent, None]:
        """The events of recognising `image`. Raises `Overloaded` before anything else when
        there is no room, and `ocr_svc.images.InvalidImage` when the upload is refused."""
        if self._admitted >= self.capacity:
            waiting = self.capacity - self.workers
            raise Overloaded(f"all {self.workers} OCR workers are busy and {waiting} calls wait; retry later")
        self._admitted += 1
        admitted_at = time.perf_counter()
        try:
            async with self._slots:
                self._running += 1
                try:
                    async for event in self._run_image(image, admitted_at):
                        yield event
                finally:
                    self._running -= 1
        finally:
            self._admitted -= 1

    async def _run_image(self, data: bytes, admitted_at: float) -> AsyncIterator[OcrEvent]:
        t0 = time.perf_counter()
        decoded: DecodedImage = await self._in_worker(decode_image, data, self.limits)
        decode_s = time.perf_counter() - t0
        yield Started(engine=self.engine.name, width=decoded.width, height=decoded.height)

        t0 = time.perf_counter()
        regions = await self._in_worker(self.engine.detect, decoded.pixels)
        detect_s = time.perf_counter() - t0

        lines: list[RecognizedLine] = []
        recognize_s = 0.0
        for region in regions:
            t0 = time.perf_counter()
            line = await self._in_worker(self.engine.read, decoded.pixels, region)
            recognize_s += time.perf_counter() - t0
            if line is None:
                continue
            lines.append(line)
            yield LineRecognized(index=len(lines) - 1, line=line)

        timings = Timings(
            decode_ms=_ms(decode_s),
            detect_ms=_ms(detect_s),
            recognize_ms=_ms(recognize_s),
            total_ms=_ms(time.perf_counter() - admitted_at),
        )
        log.info(
            "image recognised",
            extra={
                "engine": self.engine.name,
                "width": decoded.width,
                "height": decoded.height,
                "regions": len(regions),
                "lines": len(lines),
                "decode_ms": timings.decode_ms,
                "detect_ms": timings.detect_ms,
                "recognize_ms": timings.recognize_ms,
                "total_ms": timings.total_ms,
            },
        )
        yield Completed(
            full_text="\n".join(line.text for line in lines),
            line_count=len(lines),
            timings=timings,
        )

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        # The worker thread sees this call's context (request id in its log lines).
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        future = loop.run_in_executor(self._executor, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # A running thread cannot be interrupted: keep the worker slot until this step
            # is done, so that never more than `workers` engine calls run at once.
            future.add_done_callback(_discard_result)
            await asyncio.wait([future])
            raise

    def close(self) -> None:
        """Stop the worker threads (queued steps are dropped, running ones finish)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _discard_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("step of a cancelled call failed", exc_info=future.exception())
