"""The Recognize use case with a scripted engine: event order, streaming, admission,
cancellation, worker bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import pytest

from harness.images import render_text_image
from ocr_svc.images import ImageLimits, InvalidImage
from ocr_svc.pipeline import (
    Completed,
    LineRecognized,
    OcrEvent,
    OcrPipeline,
    Overloaded,
    PageStarted,
    Started,
    Warming,
)
from tests.unit.ocr.scripted_engine import ScriptedEngine

LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=10_000_000)
IMAGE = render_text_image(["anything"], size=20)


PipelineFactory = Callable[..., OcrPipeline]


@pytest.fixture
def make_pipeline() -> Iterator[PipelineFactory]:
    made: list[OcrPipeline] = []

    def make(engine: ScriptedEngine, *, workers: int = 1, queue_size: int = 0) -> OcrPipeline:
        pipeline = OcrPipeline(engine, LIMITS, workers=workers, queue_size=queue_size)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


async def collect(pipeline: OcrPipeline, image: bytes = IMAGE) -> list[OcrEvent]:
    return [event async for event in pipeline.recognize(image)]


async def test_events_are_started_then_each_legible_line_in_order_then_completed(
    make_pipeline: PipelineFactory,
) -> None:
    engine = ScriptedEngine(["first", None, "third"])
    events = await collect(make_pipeline(engine))
    started, page, *lines, completed = events
    assert isinstance(started, Started)
    assert isinstance(page, PageStarted)
    assert (page.page, page.width, page.height) == (1, started.width, started.height)
    assert started.engine == "scripted"
    assert started.width > 0
    assert started.height > 0
    assert [(e.index, e.line.text) for e in lines if isinstance(e, LineRecognized)] == [
        (0, "first"),
        (1, "third"),
    ]
    assert len(lines) == 2
    assert isinstance(completed, Completed)
    assert completed.full_text == "first\nthird"
    assert completed.line_count == 2
    assert completed.timings.total_ms >= completed.timings.recognize_ms >= 0


async def test_an_invalid_image_is_refused_before_the_engine_sees_it(make_pipeline: PipelineFactory) -> None:
    engine = ScriptedEngine(["x"])
    pipeline = make_pipeline(engine)
    with pytest.raises(InvalidImage):
        await collect(pipeline, b"not an image")
    assert engine.detect_calls == 0
    assert pipeline.admitted == 0


async def test_a_line_is_delivered_while_the_last_line_is_still_being_read(
    make_pipeline: PipelineFactory,
) -> None:
    engine = ScriptedEngine(["one", "two", "three"])
    last = engine.gate(2)
    events = make_pipeline(engine).recognize(IMAGE)
    assert isinstance(await anext(events), Started)
    assert isinstance(await anext(events), PageStarted)
    first = await anext(events)
    # Region 2 cannot have been read: its gate is still closed. Streaming, not batching.
    assert isinstance(first, LineRecognized)
    assert first.line.text == "one"
    assert 2 not in engine.reads_finished
    last.set()
    rest = [event async for event in events]
    assert isinstance(rest[-1], Completed)
    assert rest[-1].line_count == 3


async def test_calls_beyond_workers_plus_queue_are_refused_at_once(make_pipeline: PipelineFactory) -> None:
    engine = ScriptedEngine(["held"])
    held = engine.gate(0)
    pipeline = make_pipeline(engine, workers=1, queue_size=1)
    running = [asyncio.create_task(collect(pipeline)) for _ in range(2)]
    await asyncio.sleep(0.1)
    assert pipeline.admitted == 2
    with pytest.raises(Overloaded):
        await asyncio.wait_for(collect(pipeline), timeout=1.0)
    held.set()
    results = await asyncio.gather(*running)
    assert all(isinstance(events[-1], Completed) for events in results)
    assert pipeline.admitted == 0


async def test_a_cancelled_call_stops_reading_and_frees_its_worker(make_pipeline: PipelineFactory) -> None:
    engine = ScriptedEngine([f"line {i}" for i in range(10)], read_delay=0.05)
    pipeline = make_pipeline(engine, workers=1, queue_size=0)
    first_line = asyncio.Event()

    async def consume() -> None:
        async for event in pipeline.recognize(IMAGE):
            if isinstance(event, LineRecognized):
                first_line.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_line.wait(), timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert pipeline.running == 0
    assert pipeline.admitted == 0
    reads = len(engine.reads_started)
    await asyncio.sleep(0.3)
    assert len(engine.reads_started) == reads < 10
    # The worker is free again.
    events = await asyncio.wait_for(collect(pipeline), timeout=10)
    assert isinstance(events[-1], Completed)


async def test_never_more_engine_calls_run_at_once_than_workers(make_pipeline: PipelineFactory) -> None:
    engine = ScriptedEngine(["a", "b", "c"], read_delay=0.02)
    pipeline = make_pipeline(engine, workers=2, queue_size=4)
    results = await asyncio.gather(*(collect(pipeline) for _ in range(6)))
    assert all(isinstance(events[-1], Completed) for events in results)
    assert engine.max_active == 2


async def test_an_engine_failure_reaches_the_caller_and_frees_the_worker(
    make_pipeline: PipelineFactory,
) -> None:
    engine = ScriptedEngine(["a"])
    engine.fail_on_read = RuntimeError("engine bug")
    pipeline = make_pipeline(engine)
    with pytest.raises(RuntimeError, match="engine bug"):
        await collect(pipeline)
    assert pipeline.admitted == 0
    engine.fail_on_read = None
    assert isinstance((await collect(pipeline))[-1], Completed)


async def test_a_pipeline_whose_engine_is_still_loading_refuses_calls_as_warming() -> None:
    pipeline = OcrPipeline(ScriptedEngine(["unread"]), LIMITS, workers=1, queue_size=0)
    pipeline.warm = False
    try:
        with pytest.raises(Warming):
            async for _ in pipeline.recognize(b"not read"):
                pass
        assert pipeline.admitted == 0
    finally:
        pipeline.close()
