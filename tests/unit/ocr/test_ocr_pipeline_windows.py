"""Recognition in growing windows spread over the idle cores, with a batching scripted
engine: window sizes, order of the stream, and the bound on engine calls at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ocr_svc.engines.base import RgbImage, TextRegion
from ocr_svc.pipeline import MAX_WINDOW, Completed, LineRecognized, OcrEvent, OcrPipeline
from tests.unit.ocr.scripted_engine import BatchingScriptedEngine, ScriptedEngine, SpreadScriptedEngine
from tests.unit.ocr.test_ocr_pipeline import IMAGE, LIMITS


@pytest.fixture
def pipelines() -> Iterator[list[OcrPipeline]]:
    made: list[OcrPipeline] = []
    yield made
    for pipeline in made:
        pipeline.close()


def make(made: list[OcrPipeline], engine: ScriptedEngine, *, workers: int, cores: int) -> OcrPipeline:
    pipeline = OcrPipeline(engine, LIMITS, workers=workers, queue_size=2, cores=cores)
    made.append(pipeline)
    return pipeline


async def collect(pipeline: OcrPipeline) -> list[OcrEvent]:
    return [event async for event in pipeline.recognize(IMAGE)]


async def test_the_first_line_is_read_alone_then_windows_double(pipelines: list[OcrPipeline]) -> None:
    texts: list[str | None] = [f"line {i}" for i in range(70)]
    texts[5] = None
    engine = BatchingScriptedEngine(texts)
    events = await collect(make(pipelines, engine, workers=1, cores=1))
    assert engine.batch_sizes == [1, 2, 4, 8, 16, MAX_WINDOW, 70 - 63]
    lines = [event for event in events if isinstance(event, LineRecognized)]
    # Streamed in reading order, indexed densely, exactly the completed text.
    assert [line.index for line in lines] == list(range(69))
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.full_text == "\n".join(line.line.text for line in lines)
    assert completed.full_text == "\n".join(text for text in texts if text is not None)


async def test_an_image_alone_reads_on_every_core(pipelines: list[OcrPipeline]) -> None:
    engine = BatchingScriptedEngine([f"line {i}" for i in range(40)], read_delay=0.01)
    await collect(make(pipelines, engine, workers=2, cores=2))
    assert engine.max_active == 2
    # Windows from 4 lines on are split in two shares of about equal work.
    assert engine.batch_sizes[:4] == [1, 2, 2, 2]


async def test_under_full_load_never_more_engine_calls_than_cores(pipelines: list[OcrPipeline]) -> None:
    engine = BatchingScriptedEngine([f"line {i}" for i in range(30)], read_delay=0.005)
    pipeline = make(pipelines, engine, workers=2, cores=2)
    results = await asyncio.gather(*(collect(pipeline) for _ in range(4)))
    assert engine.max_active <= 2
    for events in results:
        completed = events[-1]
        assert isinstance(completed, Completed)
        assert completed.line_count == 30


async def test_an_engine_without_batches_reads_one_line_per_call(pipelines: list[OcrPipeline]) -> None:
    engine = ScriptedEngine([f"line {i}" for i in range(10)], read_delay=0.005)
    events = await collect(make(pipelines, engine, workers=1, cores=2))
    assert engine.reads_started == list(range(10))
    assert engine.max_active == 1
    assert sum(isinstance(event, LineRecognized) for event in events) == 10


async def test_an_image_alone_detects_on_every_core(pipelines: list[OcrPipeline]) -> None:
    engine = SpreadScriptedEngine([f"line {i}" for i in range(4)])
    await collect(make(pipelines, engine, workers=2, cores=2))
    assert engine.spread_calls == [2]


async def test_an_image_arriving_during_a_detection_on_every_core_waits_for_it(
    pipelines: list[OcrPipeline],
) -> None:
    engine = SpreadScriptedEngine([f"line {i}" for i in range(6)], detect_delay=0.3)
    pipeline = make(pipelines, engine, workers=2, cores=2)
    first = asyncio.ensure_future(collect(pipeline))
    while not engine.spread_calls:
        await asyncio.sleep(0.005)
    # The second image finds no core free: it detects on its own one, and none of its
    # steps runs beside the first image's detection on both cores.
    second = await collect(pipeline)
    await first
    assert engine.spread_calls == [2]
    assert engine.max_active <= 2
    completed = second[-1]
    assert isinstance(completed, Completed)
    assert completed.line_count == 6


class ProseEngine(BatchingScriptedEngine):
    """Lines as wide as a page of prose: 40 line heights each."""

    def detect(self, image: RgbImage) -> list[TextRegion]:
        regions = super().detect(image)
        return [
            TextRegion(box=((0.0, y0), (320.0, y0), (320.0, y3), (0.0, y3)))
            for (_, y0), _, _, (_, y3) in (region.box for region in regions)
        ]


async def test_a_window_of_two_lines_of_prose_is_read_on_two_cores(pipelines: list[OcrPipeline]) -> None:
    # A paragraph of four lines across the page: each line is work enough for a core.
    engine = ProseEngine([f"line {i}" for i in range(4)], read_delay=0.02)
    events = await collect(make(pipelines, engine, workers=2, cores=2))
    assert engine.batch_sizes == [1, 1, 1, 1]
    assert engine.max_active == 2
    lines = [event.line.text for event in events if isinstance(event, LineRecognized)]
    assert lines == [f"line {i}" for i in range(4)]


async def test_the_first_lines_of_prose_are_read_at_once_on_the_idle_cores(
    pipelines: list[OcrPipeline],
) -> None:
    # Four lines on two cores in two rounds (2 + 2), not three (1 + 2 + 1): the second line
    # starts while the first is still being read.
    engine = ProseEngine([f"line {i}" for i in range(4)])
    first = engine.gate(0)
    reading = asyncio.create_task(collect(make(pipelines, engine, workers=2, cores=2)))
    for _ in range(200):
        if 1 in engine.reads_started:
            break
        await asyncio.sleep(0.01)
    assert sorted(engine.reads_started) == [0, 1]
    first.set()
    events = await reading
    assert [event.line.text for event in events if isinstance(event, LineRecognized)] == [
        f"line {i}" for i in range(4)
    ]


async def test_the_first_line_of_a_column_is_read_alone(pipelines: list[OcrPipeline]) -> None:
    # A column's lines (5 heights wide) are not worth a core each: the first event comes
    # after one line's reading, not two.
    engine = BatchingScriptedEngine([f"line {i}" for i in range(4)])
    first = engine.gate(0)
    reading = asyncio.create_task(collect(make(pipelines, engine, workers=2, cores=2)))
    await asyncio.sleep(0.2)
    assert engine.reads_started == [0]
    first.set()
    await reading


async def test_a_page_without_lines_completes_with_none(pipelines: list[OcrPipeline]) -> None:
    events = await collect(make(pipelines, BatchingScriptedEngine([]), workers=2, cores=2))
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.line_count == 0
