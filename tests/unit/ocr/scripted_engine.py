"""An OCR engine for tests that need exact control: it "finds" one region per scripted
line and "reads" it, optionally waiting on a gate first, and records what it was asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ocr_svc.engines.base import RecognizedLine, RgbImage, TextRegion


class ScriptedEngine:
    """`lines[i]` is what region i reads as (None: nothing legible). `gates[i]`, when set,
    must be opened before region i is read."""

    name = "scripted"

    def __init__(
        self, lines: list[str | None], *, read_delay: float = 0.0, gate_timeout: float = 30.0
    ) -> None:
        self.lines = lines
        self.read_delay = read_delay
        self.gate_timeout = gate_timeout
        self.gates: dict[int, threading.Event] = {}
        self.loaded = False
        self.reads_started: list[int] = []
        self.reads_finished: list[int] = []
        self.detect_calls = 0
        self.fail_on_read: Exception | None = None
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def gate(self, index: int) -> threading.Event:
        return self.gates.setdefault(index, threading.Event())

    def load(self) -> None:
        self.loaded = True

    def detect(self, image: RgbImage) -> list[TextRegion]:
        self.detect_calls += 1
        return [
            TextRegion(box=((0.0, 10.0 * i), (50.0, 10.0 * i), (50.0, 10.0 * i + 8), (0.0, 10.0 * i + 8)))
            for i in range(len(self.lines))
        ]

    def read(self, image: RgbImage, region: TextRegion) -> RecognizedLine | None:
        index = int(region.box[0][1] // 10)
        with self._lock:
            self.reads_started.append(index)
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            gate = self.gates.get(index)
            if gate is not None and not gate.wait(self.gate_timeout):
                raise TimeoutError(f"gate {index} was never opened")
            if self.read_delay:
                time.sleep(self.read_delay)
            if self.fail_on_read is not None:
                raise self.fail_on_read
            text = self.lines[index]
            return None if text is None else RecognizedLine(text=text, confidence=0.9, box=region.box)
        finally:
            with self._lock:
                self._active -= 1
                self.reads_finished.append(index)


class BatchingScriptedEngine(ScriptedEngine):
    """A `ScriptedEngine` that also reads batches (`BatchReader`): each call's size is
    recorded, and its lines are read one after the other inside the call."""

    def __init__(self, lines: list[str | None], **kwargs: Any) -> None:
        super().__init__(lines, **kwargs)
        self.batch_sizes: list[int] = []

    def read_batch(self, image: RgbImage, regions: Sequence[TextRegion]) -> list[RecognizedLine | None]:
        with self._lock:
            self.batch_sizes.append(len(regions))
        return [self.read(image, region) for region in regions]


class SpreadScriptedEngine(BatchingScriptedEngine):
    """A `BatchingScriptedEngine` whose detection can use several calls' cores
    (`SpreadDetector`): each `detect_spread` records its `calls` and counts them all as
    active (in `max_active`) for `detect_delay` seconds."""

    def __init__(self, lines: list[str | None], *, detect_delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(lines, **kwargs)
        self.detect_delay = detect_delay
        self.spread_calls: list[int] = []

    def detect_spread(self, image: RgbImage, calls: int) -> list[TextRegion]:
        with self._lock:
            self.spread_calls.append(calls)
            self._active += calls
            self.max_active = max(self.max_active, self._active)
        try:
            time.sleep(self.detect_delay)
            return self.detect(image)
        finally:
            with self._lock:
                self._active -= calls
