"""The Recognize use case: admission (bounded queue), a worker pool for the engine, and
the stream of events: started, then for each page of the document in order a page event
and that page's lines, each as soon as it is read, then completed.

A document (an image, a multi-page TIFF, a PDF: `ocr_svc.documents`) is read page by
page: each page is fetched (decoded, rendered by the PDF helper, or taken from the PDF's
text layer), turned upright and straightened (`ocr_svc.documents.upright`), detected,
ordered and read. At most two pages' pixels are held at a time (see Fairness).

Fairness: a worker slot is taken per page, not per call. A long document gives its slot
back after each page and queues again for the next, behind the callers already waiting
(asyncio's semaphore wakes waiters first come, first served), so another caller's image
runs between two pages of a 500-page PDF instead of after all of them. While a page is
read, the next one starts on a second worker only when that worker is free and nobody
waits for it (whether the stream has moved on or not, at most `PAGES_AHEAD` past the page
being sent); its lines are held until the page before is sent. Admission (the queue of
`workers + queue_size` calls) still counts calls, since each admitted call holds its
upload in memory.

Detection of an image that finds cores no other image holds runs on them too, when the
engine can (`SpreadDetector`: more inference threads in one call), so the first line of an
image alone on the machine comes sooner.

After detection the lines are put in reading order (`ocr_svc.layout`) and recognised in
that order in windows that grow (the first line alone, so the first event comes early, or
one first line per idle core when each is a line of prose, worth a core; then twice as
many each time up to `MAX_WINDOW` lines), each window's lines streamed, in reading order,
as soon as the window is read. For an engine that reads batches (`BatchReader`) a window
is dealt into one share per core this image may use (its own, plus the cores no other
image is using right now, see `OcrPipeline`), shares of about equal work, read at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from ocr_svc.documents.model import Document, DocumentLimits, SourcePage
from ocr_svc.documents.reader import open_document
from ocr_svc.documents.upright import (
    MIN_OSD_CONFIDENCE,
    SUSPECT_OSD_CONFIDENCE,
    OrientationDetector,
    Upright,
    make_upright,
    page_turn,
)
from ocr_svc.engines.base import (
    BatchReader,
    LanguageReader,
    LayoutDetector,
    OcrEngine,
    RecognizedLine,
    RgbImage,
    SpreadDetector,
    TextRegion,
)
from ocr_svc.images import ImageLimits
from ocr_svc.languages import Route
from ocr_svc.layout import OrderedLine, reading_order
from ocr_svc.metrics import PipelineMetrics
from ocrmesh.platform.telemetry import now_ns, record_span, span

log = logging.getLogger(__name__)

T = TypeVar("T")

# The largest window of lines recognised before any of them is sent.
MAX_WINDOW = 32
# A window borrows another core only for at least this many lines per share: a short
# image (a few lines) never delays the start of another caller's image for a gain of one line.
MIN_SHARE = 2
# ... or for at least this much work per share, in line heights of width (a line costs about
# its width over its height): one line of single-column prose (a Letter page's line is 25-45
# heights wide, a column's 8-12) is worth a core as much as two lines of a column are.
# Measured on pages of prose (bench.documents, languages): en 1.23x -> 1.52x the Tesseract
# CLI's pages/s, vi 1.51x -> 1.95x, de 1.40x -> 1.76x, fr 1.49x -> 1.70x, ko on joined glyphs
# 0.70x -> 0.79x.
MIN_SHARE_WORK = 20.0
# Pages of a document fetched or being read at once (each holds its pixels), and how far
# past the page being sent they may run. Pages start from the page tasks as each frees its
# worker, not only as the stream moves on: a stream slow to send (a slow client) does not
# keep a worker idle, and a client that stops reading has at most PAGES_AHEAD more pages read
# for it. (With the bench's client, which reads at once, the 20-page PDF used the same 1.82
# of the 2 cores before and after.)
PAGES_IN_FLIGHT = 2
PAGES_AHEAD = 2
# The first lines of a page read with at least this mean confidence stand it upright without
# OSD: upright lines read at 0.92-1.0 (Tesseract's LSTM and PP-OCR alike), the same lines
# upside down at most 0.76, and Tesseract's mostly below its 0.5 floor (not returned at all).
UPRIGHT_CONFIDENCE = 0.85


class Overloaded(Exception):
    """Every worker is busy and the queue in front of them is full."""


class Warming(Exception):
    """The engine is still loading (a worker that has just started, or restarted after a
    crash): nothing can be read yet, and the caller should try again in a moment."""


@dataclass(frozen=True)
class Started:
    """The document is opened and its first page is ready: `width` x `height` is that
    page's size as its `PageStarted` gives it; `document_format` "pdf", "tiff", "png",
    "jpeg", "webp" or "bmp"."""

    engine: str
    width: int
    height: int
    page_count: int = 1
    document_format: str = ""


@dataclass(frozen=True)
class PageStarted:
    """A page begins; its lines follow. `page` 1-based; `width` x `height` the upright page
    image the lines' boxes refer to, at `dpi` (0.0: unknown); `rotation` the clockwise
    quarter turn applied, `skew` the skew corrected (degrees, counter-clockwise positive);
    `source` "ocr" or "text_layer" (a PDF page's own text, not OCRed)."""

    page: int
    width: int
    height: int
    rotation: int = 0
    skew: float = 0.0
    source: Literal["ocr", "text_layer"] = "ocr"
    dpi: float = 0.0


@dataclass(frozen=True)
class LineRecognized:
    """One line, `index` 0-based in reading order across the document; `block` 0-based,
    the layout block (a heading, a column, a part of a column) the line belongs to, in
    reading order across the document; `page` 1-based."""

    index: int
    line: RecognizedLine
    block: int = 0
    page: int = 1


@dataclass(frozen=True)
class Timings:
    """Milliseconds per phase. `total_ms` runs from admission, so it includes queueing."""

    decode_ms: float
    detect_ms: float
    recognize_ms: float
    total_ms: float


@dataclass(frozen=True)
class Completed:
    """The document is done: every page's lines joined with "\n"."""

    full_text: str
    line_count: int
    timings: Timings
    page_count: int = 1


OcrEvent = Started | PageStarted | LineRecognized | Completed


@dataclass(frozen=True)
class _ReadyPage:
    """A page fetched: its page event (`event`: the upright page's size, turn and skew, or a
    text-layer page), its upright `pixels` (None: a text-layer page, or the stream's copy,
    `streamed`), detected, its lines in reading order cut into windows, and the first
    window read already (`first`)."""

    page: SourcePage
    event: PageStarted
    pixels: RgbImage | None = None
    regions: list[TextRegion] = field(default_factory=list)
    windows: list[list[OrderedLine]] = field(default_factory=list)
    first: list[RecognizedLine | None] = field(default_factory=list)

    def streamed(self) -> _ReadyPage:
        """The page as the stream holds it while its events go out: without pixels. The
        task reading its windows keeps them, and they go when it is done, whatever the
        stream's pace."""
        return replace(self, page=replace(self.page, pixels=None), pixels=None)


@dataclass(frozen=True)
class _WindowRead:
    """A window of a page's lines (after its first), read."""

    window: list[OrderedLine]
    lines: list[RecognizedLine | None]


_PagePart = _ReadyPage | _WindowRead


@dataclass(frozen=True)
class _PageTask:
    """A page being fetched and read (`OcrPipeline._page_work`): its task, the parts it
    puts out in order (None last), and whether it holds its worker yet."""

    task: asyncio.Task[None]
    parts: asyncio.Queue[_PagePart | None]
    has_worker: asyncio.Event


@dataclass
class _Progress:
    """What a document's pages add up to, as they are read."""

    lines: list[str] = field(default_factory=list)
    blocks: int = 0
    regions: int = 0
    decode_s: float = 0.0
    detect_s: float = 0.0
    recognize_s: float = 0.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class OcrPipeline:
    """Runs `engine` for callers, at most `workers` images at a time, with at most
    `queue_size` more callers waiting; anyone beyond that gets `Overloaded` immediately.

    Engine calls run in a thread pool of `cores` threads (default `workers`), off the
    event loop, so never more than `cores` engine calls run at once. Each running image
    has one of them; a batching engine's image also borrows, for one window at a time,
    the ones no other image holds: one image alone on the machine uses every core, and
    under full load each image gets its own. (`cores` counts engine calls: with several
    inference threads per call, `cores` x threads is what should match the CPU.)

    A caller that goes away (its task is cancelled) stops its image at the next window:
    the steps running in threads finish, nothing after them starts. Memory stays bounded:
    at most `workers + queue_size` uploads are held, and only `workers` of them decoded.
    """

    def __init__(
        self,
        engine: OcrEngine,
        limits: ImageLimits,
        *,
        workers: int,
        queue_size: int,
        cores: int | None = None,
        documents: DocumentLimits | None = None,
        upright: bool = False,
        orientation: OrientationDetector | None = None,
    ) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.engine = engine
        self.limits = limits
        self.documents = documents or DocumentLimits(image=limits)
        # Pages turned upright (`orientation`: by OSD; None: only straightened) when set.
        self.upright = upright
        self.orientation = orientation
        self.workers = workers
        self.cores = max(workers, cores or workers)
        self.capacity = workers + queue_size
        # Cleared by the app while the engine loads (see `Warming`); a pipeline made around
        # an engine that is already loaded (tests, benches) reads at once.
        self.warm = True
        self._executor = ThreadPoolExecutor(max_workers=self.cores, thread_name_prefix="ocr-worker")
        self._slots = asyncio.Semaphore(workers)
        self._admitted = 0
        self._running = 0
        self._borrowed = 0
        self.metrics = PipelineMetrics(engine.name, workers=workers, queue_size=queue_size)

    @property
    def admitted(self) -> int:
        """Calls holding a place: running plus waiting."""
        return self._admitted

    @property
    def running(self) -> int:
        """Calls holding a worker."""
        return self._running

    async def recognize(
        self,
        image: bytes,
        route: Route | None = None,
        *,
        force_ocr: bool = False,
        admit_pages: Callable[[int], None] | None = None,
    ) -> AsyncGenerator[OcrEvent, None]:
        """The events of recognising the document `image` (an image, a TIFF, a PDF), its
        lines read as `route` says (default: the engine's own recogniser); `force_ocr`:
        PDF pages with a text layer are OCRed too. Raises `Overloaded` before anything else
        when there is no room, `Warming` while the engine loads, and
        `ocr_svc.images.InvalidImage` (`ocr_svc.documents.model.DocumentRefused` for a
        document's refusals) when the upload is refused, before the first event.
        `admit_pages(page_count)` is called once the document is open, before any page is
        rendered or read; what it raises ends the call there (a per-user page budget)."""
        if not self.warm:
            raise Warming("the OCR engine is still loading; retry in a moment")
        if self._admitted >= self.capacity:
            waiting = self.capacity - self.workers
            raise Overloaded(f"all {self.workers} OCR workers are busy and {waiting} calls wait; retry later")
        self._admitted += 1
        self.metrics.load(self._admitted, self._running)
        admitted_at, admitted_ns = time.perf_counter(), now_ns()
        try:
            async for event in self._run_document(
                image, admitted_at, admitted_ns, route, force_ocr, admit_pages
            ):
                yield event
        finally:
            self._admitted -= 1
            self.metrics.load(self._admitted, self._running)

    async def _take_slot(self) -> None:
        """A worker for one page: taken per page, so that callers waiting get theirs between
        two pages of a long document (asyncio's semaphore wakes waiters first come, first
        served)."""
        await self._slots.acquire()
        self._running += 1
        self.metrics.load(self._admitted, self._running)

    def _give_slot(self) -> None:
        """Give back a worker taken by `_take_slot`."""
        self._running -= 1
        self._slots.release()
        self.metrics.load(self._admitted, self._running)

    async def _page_work(
        self,
        document: Document,
        index: int,
        progress: _Progress,
        route: Route | None,
        out: asyncio.Queue[_PagePart | None],
        has_worker: asyncio.Event,
        fetching: asyncio.Lock,
    ) -> None:
        """Page `index` fetched and read on a worker of its own, taken for this page and
        given back after it (`has_worker` set once taken): its parts put on `out` as they
        are ready (the page fetched with its first window read, then each further window's
        lines), None last."""
        await self._take_slot()
        has_worker.set()
        try:
            ready = await self._fetch_page(document, index, progress, route, fetching)
            out.put_nowait(ready.streamed())
            if ready.pixels is not None:
                for window in ready.windows[1:]:
                    read = await self._read_timed(ready.pixels, ready.regions, window, route, progress)
                    out.put_nowait(_WindowRead(window, read))
        finally:
            self._give_slot()
            out.put_nowait(None)

    async def _run_document(
        self,
        data: bytes,
        admitted_at: float,
        admitted_ns: int,
        route: Route | None,
        force_ocr: bool,
        admit_pages: Callable[[int], None] | None,
    ) -> AsyncIterator[OcrEvent]:
        """The events of one document. Each page is fetched and read by a task of its own
        (`_page_work`) that takes a worker for that page. The page being sent always has a
        task; the pages after it start as workers free up, whoever frees them (`start_more`:
        a page task ending, the stream moving on), when nobody waits for a worker: two pages
        are then read at once, one on each worker, as two single-threaded Tesseract
        processes would, with no core idle between the windows of one page nor while the
        stream sends. Their lines wait, in order, until the page before is sent. At most
        `PAGES_IN_FLIGHT` pages' pixels are held, no page more than `PAGES_AHEAD` past the
        one being sent starts, and a caller already waiting gets the next free worker first."""
        engine_name = route.engine if route else self.engine.name
        progress = _Progress()
        document: Document | None = None
        pages: dict[int, _PageTask] = {}
        closing = False
        # A document gives its pages one at a time, in order (a PDF's helper answers one
        # request at a time; a TIFF seeks one shared image).
        fetching = asyncio.Lock()

        sending = 0  # the page whose events are being sent
        started = 0  # pages with a task so far (0, 1, ... in order)

        def start_next() -> None:
            nonlocal started
            assert document is not None
            index = started
            parts: asyncio.Queue[_PagePart | None] = asyncio.Queue()
            has_worker = asyncio.Event()
            work = asyncio.ensure_future(
                self._page_work(document, index, progress, route, parts, has_worker, fetching)
            )
            pages[index] = _PageTask(work, parts, has_worker)
            started += 1
            work.add_done_callback(lambda _: start_more())

        def start_more() -> None:
            # Only on a worker nobody waits for: a caller already waiting gets it first.
            if document is None or closing:
                return
            in_flight = sum(1 for page in pages.values() if not page.task.done())
            while (
                started < document.page_count
                and started <= sending + PAGES_AHEAD
                and in_flight < PAGES_IN_FLIGHT
                and not self._slots.locked()
            ):
                start_next()
                in_flight += 1

        async def next_part(index: int) -> _PagePart | None:
            page = pages[index]
            part = await page.parts.get()
            if part is None:
                await asyncio.wait([page.task])
                page.task.result()  # the page's own error, if it failed
            return part

        try:
            await self._take_slot()
            record_span("ocr.queue_wait", admitted_ns)
            try:
                t0 = time.perf_counter()
                with span("ocr.decode", {"ocrmesh.upload_bytes": len(data)}):
                    document = await open_document(data, self.documents, self._in_worker, force_ocr=force_ocr)
                progress.decode_s += time.perf_counter() - t0
            finally:
                self._give_slot()
            if admit_pages is not None:
                admit_pages(document.page_count)
            for index in range(document.page_count):
                sending = index
                if index == started:
                    start_next()  # the page being sent queues for a worker, whoever waits
                # Once this page has its worker, the next starts if another is free (the page
                # before has given its own back), not once this one is fetched.
                await pages[index].has_worker.wait()
                start_more()
                ready = await next_part(index)
                if not isinstance(ready, _ReadyPage):
                    raise RuntimeError(f"page {index + 1} ended before it was fetched")
                if index == 0:
                    yield Started(
                        engine=engine_name,
                        width=ready.event.width,
                        height=ready.event.height,
                        page_count=document.page_count,
                        document_format=document.format,
                    )
                blocks: dict[int, int] = {}
                async for event in self._page_events(ready, blocks, progress, admitted_at):
                    yield event
                while (part := await next_part(index)) is not None:
                    if not isinstance(part, _WindowRead):
                        raise RuntimeError(f"page {index + 1} sent a part out of order")
                    for event in self._window_events(
                        part.window, part.lines, ready.page, blocks, progress, admitted_at
                    ):
                        yield event
                progress.blocks += len(blocks)
                del pages[index]
            page_count = document.page_count
        finally:
            closing = True
            tasks = [page.task for page in pages.values()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
                for task in tasks:
                    if not task.cancelled():
                        task.exception()  # retrieved: the call already ends with its own error
            if document is not None:
                await document.aclose()

        self.metrics.image_done(
            decode_s=progress.decode_s,
            detect_s=progress.detect_s,
            recognize_s=progress.recognize_s,
            lines=len(progress.lines),
        )
        timings = Timings(
            decode_ms=_ms(progress.decode_s),
            detect_ms=_ms(progress.detect_s),
            recognize_ms=_ms(progress.recognize_s),
            total_ms=_ms(time.perf_counter() - admitted_at),
        )
        log.info(
            "document recognised",
            extra={
                "engine": engine_name,
                "languages": ",".join(route.codes) if route else "",
                "format": document.format,
                "pages": page_count,
                "regions": progress.regions,
                "lines": len(progress.lines),
                "decode_ms": timings.decode_ms,
                "detect_ms": timings.detect_ms,
                "recognize_ms": timings.recognize_ms,
                "total_ms": timings.total_ms,
            },
        )
        yield Completed(
            full_text="\n".join(progress.lines),
            line_count=len(progress.lines),
            timings=timings,
            page_count=page_count,
        )

    async def _fetch_page(
        self,
        document: Document,
        index: int,
        progress: _Progress,
        route: Route | None,
        fetching: asyncio.Lock,
    ) -> _ReadyPage:
        """Page `index` of `document` (taken from it holding `fetching`) and, a page to OCR,
        its pixels upright, detected, ordered, and its first window read.

        Orientation detection (OSD, 0.3-0.4 s of CPU a page) is the costly part of standing
        a page upright, and nearly every page is upright already. So the page is taken as
        it comes (straightened), detected and its first window read; OSD runs only when
        that does not look upright (`_looks_upright`): most lines taller than wide (a page
        on its side), or the first lines read with low confidence (a page upside down reads
        as noise). If OSD then finds a quarter turn, the page is turned, straightened and
        detected again, and the first window read again. A turn OSD is less sure of
        (`SUSPECT_OSD_CONFIDENCE` up to `MIN_OSD_CONFIDENCE`: a short page) is kept only if
        the page reads better turned, or, a quarter turn, if it stands its lines upright
        (PP-OCR's recogniser reads a line on end well enough, turning its crop)."""
        t0 = time.perf_counter()
        with span("ocr.decode", {"ocrmesh.page": index + 1}):
            async with fetching:
                page = await document.page(index)
        progress.decode_s += time.perf_counter() - t0
        if page.pixels is None:
            event = PageStarted(
                page=page.number, width=page.width, height=page.height, source="text_layer", dpi=page.dpi
            )
            return _ReadyPage(page, event)
        if not self.upright:
            upright = Upright(pixels=page.pixels, rotation=0, skew=0.0)
            return await self._start_page(page, upright, route, progress)
        t0 = time.perf_counter()
        with span("ocr.upright", {"ocrmesh.page": page.number}):
            upright = await self._in_worker(make_upright, page.pixels, None)
        progress.decode_s += time.perf_counter() - t0
        ready = await self._start_page(page, upright, route, progress)
        detector = self.orientation
        if detector is None or not detector.available or _looks_upright(ready):
            return ready
        t0 = time.perf_counter()
        with span("ocr.upright", {"ocrmesh.page": page.number, "ocrmesh.osd": True}):
            turn, confidence = await self._in_worker(page_turn, page.pixels, detector)
            if confidence < SUSPECT_OSD_CONFIDENCE:
                turn = 0
            if turn:
                upright = await self._in_worker(make_upright, page.pixels, None, turn)
        progress.decode_s += time.perf_counter() - t0
        if turn == 0:
            return ready
        turned = await self._start_page(page, upright, route, progress)
        if (
            confidence >= MIN_OSD_CONFIDENCE
            or (turn in (90, 270) and _on_its_side(ready) and not _on_its_side(turned))
            or _first_confidence(turned) > _first_confidence(ready)
        ):
            return turned
        return ready

    async def _start_page(
        self, page: SourcePage, upright: Upright, route: Route | None, progress: _Progress
    ) -> _ReadyPage:
        """`upright` detected, its lines put in reading order and cut into windows, and the
        first window read."""
        pixels = upright.pixels
        t0 = time.perf_counter()
        with span("ocr.detect", {"ocrmesh.width": pixels.shape[1], "ocrmesh.height": pixels.shape[0]}):
            regions = await self._detect(pixels, route)
        progress.detect_s += time.perf_counter() - t0
        # In a worker: a dense page's ordering is tens of ms, and grows as n^3 with the lines.
        order = await self._in_worker(reading_order, [region.box for region in regions])
        windows = self._windows(order, regions)
        first: list[RecognizedLine | None] = []
        if windows:
            first = await self._read_timed(pixels, regions, windows[0], route, progress)
        height, width = pixels.shape[:2]
        event = PageStarted(
            page=page.number,
            width=width,
            height=height,
            rotation=upright.rotation,
            skew=upright.skew,
            source="ocr",
            dpi=page.dpi,
        )
        return _ReadyPage(page, event, pixels, regions, windows, first)

    async def _read_timed(
        self,
        pixels: RgbImage,
        regions: list[TextRegion],
        window: list[OrderedLine],
        route: Route | None,
        progress: _Progress,
    ) -> list[RecognizedLine | None]:
        t0 = time.perf_counter()
        with span("ocr.recognize", {"ocrmesh.lines": len(window)}):
            read = await self._read_window(pixels, [regions[item.index] for item in window], route)
        progress.recognize_s += time.perf_counter() - t0
        return read

    async def _page_events(
        self, ready: _ReadyPage, blocks: dict[int, int], progress: _Progress, admitted_at: float
    ) -> AsyncIterator[OcrEvent]:
        """The page event, then the page's text layer's lines, or its first window's."""
        page = ready.page
        yield ready.event
        if ready.event.source == "text_layer":
            order = await self._in_worker(reading_order, [line.box for line in page.lines])
            for item in order:
                for event in self._line_event(
                    page.lines[item.index], item, blocks, page, progress, admitted_at
                ):
                    yield event
            return
        progress.regions += len(ready.regions)
        if ready.windows:
            for event in self._window_events(
                ready.windows[0], ready.first, page, blocks, progress, admitted_at
            ):
                yield event

    def _window_events(
        self,
        window: list[OrderedLine],
        read: list[RecognizedLine | None],
        page: SourcePage,
        blocks: dict[int, int],
        progress: _Progress,
        admitted_at: float,
    ) -> list[LineRecognized]:
        events: list[LineRecognized] = []
        for item, line in zip(window, read, strict=True):
            if line is not None:
                events.extend(self._line_event(line, item, blocks, page, progress, admitted_at))
        return events

    def _line_event(
        self,
        line: RecognizedLine,
        item: OrderedLine,
        blocks: dict[int, int],
        page: SourcePage,
        progress: _Progress,
        admitted_at: float,
    ) -> list[LineRecognized]:
        progress.lines.append(line.text)
        if len(progress.lines) == 1:
            self.metrics.first_line(time.perf_counter() - admitted_at)
        # Blocks numbered by the lines sent (a block of noise only is not counted), after
        # the blocks of the pages before.
        block = progress.blocks + blocks.setdefault(item.block, len(blocks))
        return [LineRecognized(index=len(progress.lines) - 1, line=line, block=block, page=page.number)]

    def _windows(self, order: list[OrderedLine], regions: Sequence[TextRegion]) -> list[list[OrderedLine]]:
        """`order` cut into windows of growing size: the first line alone (or the first
        line for each core the image may use now, `_first_window`), then twice as many
        each time up to `MAX_WINDOW` lines (one line at a time for an engine that does not
        batch)."""
        if not isinstance(self.engine, BatchReader):
            return [[item] for item in order]
        windows: list[list[OrderedLine]] = []
        start, size = 0, self._first_window(order, regions)
        while start < len(order):
            windows.append(order[start : start + size])
            start += size
            size = min(size * 2, MAX_WINDOW)
        return windows

    def _first_window(self, order: list[OrderedLine], regions: Sequence[TextRegion]) -> int:
        """Lines in the first window: one per core this image may use now (its own and the
        ones no image holds), while each of the first lines is worth a core of its own
        (`MIN_SHARE_WORK`); else 1. Read at once on those cores, the first lines cost the
        first event no more than the first line alone, and a short page is read in fewer
        rounds (a page of 4 lines on 2 cores: 2 rounds of 2, not 1 + 2 + 1)."""
        cores = 1 + max(0, self.cores - self._running - self._borrowed)
        size = 0
        for item in order[:cores]:
            if _aspect(regions[item.index]) < MIN_SHARE_WORK:
                break
            size += 1
        return max(1, size)

    async def _detect(self, pixels: RgbImage, route: Route | None) -> list[TextRegion]:
        engine = self.engine
        if route is not None and route.by_layout and isinstance(engine, LayoutDetector):
            # Tesseract's layout analysis: one thread, a fifth of the detector's CPU.
            return await self._in_worker(
                functools.partial(engine.detect_by_layout, join_glyphs=route.join_glyphs), pixels
            )
        extra = max(0, self.cores - self._running - self._borrowed)
        if not isinstance(engine, SpreadDetector) or extra == 0:
            return await self._in_worker(engine.detect, pixels)
        self._borrowed += extra
        try:
            return await self._in_worker(self._detect_holding, engine, pixels, extra)
        finally:
            self._borrowed -= extra

    def _detect_holding(self, engine: SpreadDetector, pixels: RgbImage, extra: int) -> list[TextRegion]:
        """Detection on the cores of `extra` + 1 calls, in a pool thread. The engine's extra
        inference threads run outside the pool, so `extra` pool threads are held idle
        meanwhile: a step of an image arriving now waits for them (as it would behind a
        borrowed share), and calls x threads stay within the cores. The holders are queued
        after the detection has started, and a holder that starts late returns at once."""
        done = threading.Event()
        holders = [self._executor.submit(done.wait) for _ in range(extra)]
        try:
            return engine.detect_spread(pixels, extra + 1)
        finally:
            done.set()
            for holder in holders:
                holder.cancel()

    async def _read_window(
        self, pixels: RgbImage, regions: list[TextRegion], route: Route | None = None
    ) -> list[RecognizedLine | None]:
        engine = self.engine
        read_batch: Callable[[RgbImage, list[TextRegion]], list[RecognizedLine | None]]
        if route is not None and route.tesseract is not None:
            # Routed only for engines that list the language (ocr_svc.languages).
            if not isinstance(engine, LanguageReader):
                raise TypeError(f"the {engine.name} engine reads no other language than its own")
            read_batch = functools.partial(
                engine.read_batch_in, languages=route.tesseract, retry_with=route.retry_with
            )
        elif isinstance(engine, BatchReader):
            read_batch = engine.read_batch
        else:
            return [await self._in_worker(engine.read, pixels, region) for region in regions]
        # This image's own core, plus the ones no running image holds: one share each.
        work = sum(_aspect(region) for region in regions)
        shares_worth = max(len(regions) // MIN_SHARE, int(work // MIN_SHARE_WORK))
        wanted = min(shares_worth, len(regions), self.cores) - 1
        extra = max(0, min(wanted, self.cores - self._running - self._borrowed))
        self._borrowed += extra
        try:
            shares = _balanced_shares(regions, extra + 1)
            results = await asyncio.gather(
                *(self._in_worker(read_batch, pixels, [regions[k] for k in share]) for share in shares)
            )
        finally:
            self._borrowed -= extra
        lines: list[RecognizedLine | None] = [None] * len(regions)
        for share, read in zip(shares, results, strict=True):
            for k, line in zip(share, read, strict=True):
                lines[k] = line
        return lines

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


def _aspect(region: TextRegion) -> float:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = region.box
    width = max(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x3, y2 - y3))
    height = max(math.hypot(x3 - x0, y3 - y0), math.hypot(x2 - x1, y2 - y1))
    return width / max(height, 1.0)


def _looks_upright(ready: _ReadyPage) -> bool:
    """Whether a page detected and its first window read looks upright without asking OSD:
    most lines wider than tall and the first ones read with a mean confidence of at least
    `UPRIGHT_CONFIDENCE`. A page where no line was found is asked too: Tesseract's layout
    analysis finds none on a page turned a quarter (OSD leaves a blank page alone, cheaply)."""
    if not ready.regions or _on_its_side(ready):
        return False
    read = [line.confidence for line in ready.first if line is not None]
    return bool(read) and sum(read) / len(read) >= UPRIGHT_CONFIDENCE


def _on_its_side(ready: _ReadyPage) -> bool:
    """Most of a page's lines are taller than wide: the page is turned a quarter."""
    tall = sum(1 for region in ready.regions if _aspect(region) < 1.0)
    return bool(ready.regions) and 2 * tall >= len(ready.regions)


def _first_confidence(ready: _ReadyPage) -> float:
    """The mean confidence of a page's first window, lines not read counting as 0."""
    if not ready.first:
        return 0.0
    return sum(line.confidence for line in ready.first if line is not None) / len(ready.first)


def _balanced_shares(regions: Sequence[TextRegion], parts: int) -> list[list[int]]:
    """The positions of `regions` dealt into `parts` shares of about equal work (a line
    costs about its width / height ratio): widest first, each to the lightest share."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    loads = [0.0] * parts
    for k in sorted(range(len(regions)), key=lambda k: -_aspect(regions[k])):
        lightest = loads.index(min(loads))
        shares[lightest].append(k)
        loads[lightest] += _aspect(regions[k])
    return [sorted(share) for share in shares if share]


def _discard_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("step of a cancelled call failed", exc_info=future.exception())
