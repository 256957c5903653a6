"""One OCR by each contestant of `bench.bench_ocr`, timed: the engine called in-process
(decode, detect, read each line), ocr_svc through `OcrService.Recognize`, RapidOCR's own
batched pipeline on the same models, and Tesseract's CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ocr_svc.engines.rapid import DETECTION_MODEL, RECOGNITION_MODEL, RapidOcrEngine
from ocr_svc.images import ImageLimits, decode_image
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata
from ocrmesh.platform.units import MiB
from scripts import debian_tools

# Tesseract's two ways to run one page: its OpenMP threads (every core; Debian's build
# spins its threads while waiting, which costs on a busy machine) or one thread.
TESSERACT_MODES: dict[str, dict[str, str]] = {
    "OpenMP threads": {},
    "OMP_THREAD_LIMIT=1": {"OMP_THREAD_LIMIT": "1"},
}
LIMITS = ImageLimits(max_bytes=10 * MiB, max_pixels=40_000_000)


def in_process(
    engine: RapidOcrEngine, images: list[bytes], callers: int, seconds: float
) -> tuple[int, float, list[float]]:
    """Images done, elapsed seconds and times to first line, calling the engine directly."""
    deadline = time.perf_counter() + seconds

    def caller(offset: int) -> list[float]:
        firsts = []
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            decoded = decode_image(images[n % len(images)], LIMITS)
            first: float | None = None
            for region in engine.detect(decoded.pixels):
                if engine.read(decoded.pixels, region) is not None and first is None:
                    first = time.perf_counter() - started
            firsts.append(first if first is not None else time.perf_counter() - started)
            n += 1
        return firsts

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(caller, range(callers)))
    elapsed = time.perf_counter() - started
    firsts = [f for r in results for f in r]
    return len(firsts), elapsed, firsts


async def through_service(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub, token: str, images: list[bytes], callers: int, seconds: float
) -> tuple[int, float, list[float]]:
    """Images done, elapsed seconds and times to first line event, through Recognize."""
    deadline = time.perf_counter() + seconds
    firsts: list[float] = []

    async def caller(offset: int) -> None:
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            first: float | None = None
            call = stub.Recognize(
                ocr_pb2.RecognizeRequest(image=images[n % len(images)]),
                metadata=bearer_metadata(token),
                timeout=120,
            )
            async for event in call:
                if first is None and event.WhichOneof("event") == "line":
                    first = time.perf_counter() - started
            firsts.append(first if first is not None else time.perf_counter() - started)
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return len(firsts), time.perf_counter() - started, firsts


def ensure_tesseract() -> str | None:
    """The tesseract CLI, installed with apt-get (Debian's `tesseract-ocr`) when missing."""
    debian_tools.ensure("bench")
    return shutil.which("tesseract")


def rapidocr_own_pipeline() -> Any:
    """RapidOCR as its users call it, on the models and detection settings ocr_svc uses,
    with rapidocr's own threads (all cores) and batches (6 crops)."""
    import rapidocr
    from rapidocr import RapidOCR

    models = Path(rapidocr.__file__).resolve().parent / "models"
    return RapidOCR(
        params={
            "Det.limit_type": "max",
            "Det.limit_side_len": 960,
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "Det.model_path": str(models / DETECTION_MODEL),
            "Rec.model_path": str(models / RECOGNITION_MODEL),
        }
    )


async def recognize_page(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub, token: str, data: bytes
) -> tuple[float, float, str]:
    """Seconds for the whole stream, seconds to the first line event, full text."""
    started = time.perf_counter()
    first: float | None = None
    text = ""
    call = stub.Recognize(ocr_pb2.RecognizeRequest(image=data), metadata=bearer_metadata(token), timeout=300)
    async for event in call:
        kind = event.WhichOneof("event")
        if kind == "line" and first is None:
            first = time.perf_counter() - started
        elif kind == "completed":
            text = event.completed.full_text
    total = time.perf_counter() - started
    return total, first if first is not None else total, text


def rapid_page(rapid: Any, data: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    pixels = decode_image(data, LIMITS).pixels
    result = rapid(pixels[:, :, ::-1])  # rapidocr takes BGR arrays, like OpenCV
    return time.perf_counter() - started, "\n".join(result.txts or ())


def tesseract_page(tesseract: str, path: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [tesseract, str(path), "stdout"],
        capture_output=True,
        text=True,
        check=True,
        env={**{k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}, **env},
    )
    return time.perf_counter() - started, done.stdout
