"""Benchmark of ocr_svc: `.venv/bin/python bench/bench_ocr.py [--quick] [--json PATH]`.

In one run on this machine, with the same engine instance (RapidOCR, the default):
  1. the baseline: images/s and time to first line when the engine is called in-process
     (decode, detect, read each line) from as many threads as there are callers;
  2. the same through the service: a real ocr_svc on port 0 (gRPC, token verification,
     bounded queue, worker pool, streaming, completion mail to a scratch RabbitMQ queue),
     called with Recognize by that many concurrent clients.
At 1 caller and at OCR_WORKERS callers. The overhead ratio is service/in-process: how much
of the engine's own speed survives the service around it. Peak memory is the process's
peak RSS (engine, service and clients together).

Then scanned pages (harness/pages.py: 300 dpi, a heading over 3 or 4 columns, about
120 lines, as G4 TIFF and noisy JPEG; and a single-column paragraph) against what a user
would pick instead, in the same run, alternating: ocr_svc (one caller), RapidOCR's own
batched pipeline on the same models in-process (`RapidOCR()(image)`, its default threads
and batches), and Tesseract (Debian's `tesseract-ocr`, its CLI; installed with apt-get
when missing) both with its OpenMP threads (its default) and with one thread
(`OMP_THREAD_LIMIT=1`): ocr_svc is compared with the faster of the two on each page, so
the comparison never rests on a handicapped Tesseract. Seconds per page (decode
included), character error rate against the text in reading order, time to first line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt
import pika
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image, ImageDraw, ImageFont

from bench.report import Row, add_json_argument, emit, median, ratio_higher_is_better, ratio_lower_is_better
from harness.pages import PageSpec, page_error_rate, render_page
from ocr_svc.app import create_app
from ocr_svc.engines import EngineUnavailable, create_engine, warm_up
from ocr_svc.engines.rapid import DETECTION_MODEL, RECOGNITION_MODEL, RapidOcrEngine
from ocr_svc.images import ImageLimits, decode_image
from ocr_svc.settings import OcrSettings
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.platform.settings import DEFAULT_RABBITMQ_URL
from ocrmesh.rules.email_events import EmailTopology
from ocrmesh.rules.tokens import TOKEN_ALGORITHM, TokenVerifier
from scripts import debian_tools

SLICE_SECONDS = 3.0
# Tesseract's two ways to run one page: its OpenMP threads (every core; Debian's build
# spins its threads while waiting, which costs on a busy machine) or one thread.
TESSERACT_MODES: dict[str, dict[str, str]] = {
    "OpenMP threads": {},
    "OMP_THREAD_LIMIT=1": {"OMP_THREAD_LIMIT": "1"},
}
LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)
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


def render(lines: Sequence[str], size: int = 28) -> bytes:
    import io

    font = ImageFont.load_default(size=size)
    width = int(max(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(t, font=font) for t in lines)) + 48
    image = Image.new("RGB", (width, round(size * 1.7) * len(lines) + 48), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((24, 24 + i * round(size * 1.7)), text, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


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
    pages.append(("single-column paragraph, PNG", render(paragraph), ".png", "\n".join(paragraph)))
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


def signing_material() -> tuple[str, TokenVerifier]:
    """A real Ed25519-signed token and a verifier that knows its key (no auth_svc needed)."""
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    async def fetch() -> list[auth_pb2.PublicKey]:
        return [auth_pb2.PublicKey(key_id="bench", algorithm=TOKEN_ALGORITHM, public_key_pem=pem)]

    now = int(time.time())
    claims = {
        "sub": "bench-user",
        "email": "bench@example.com",
        "name": "Bench",
        "iat": now,
        "exp": now + 3600,
        "iss": "ocrmesh-auth",
        "aud": "ocrmesh",
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, private, algorithm=TOKEN_ALGORITHM, headers={"kid": "bench"})
    return token, TokenVerifier(fetch)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> None:
    """Linux: restart the peak (VmHWM) from the current resident set."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mib() -> float:
    # Linux: the second field of /proc/self/statm is the resident set, in pages.
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)


async def run(args: argparse.Namespace) -> list[Row]:
    workers = args.workers
    settings_defaults = OcrSettings(ocr_workers=workers)
    # As ocr_svc builds it (ocr_svc.engines.create_engine): an image alone detects on every core.
    engine = RapidOcrEngine(
        threads=settings_defaults.engine_threads(), spread_threads=settings_defaults.spread_threads()
    )
    warm_up(engine)
    images = [render(p) for p in PARAGRAPHS]
    rss_engine = peak_rss_mib()

    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    topology = EmailTopology.from_prefix(f"bench_{uuid.uuid4().hex[:8]}_ocr")
    token, verifier = signing_material()
    settings = OcrSettings(
        ocr_port=0,
        ocr_host="127.0.0.1",
        ocr_workers=workers,
        ocr_queue_size=max(8, workers),
        # Every caller is the same user here: measure the service, not the per-user limit.
        ocr_max_calls_per_user=0,
        rabbitmq_url=rabbitmq_url,
        email_queue=topology.queue,
    )
    app = create_app(settings, engine=engine, authenticate=verifier.authenticate)
    await app.start()
    channel = create_channel(f"127.0.0.1:{app.port}")
    rows: list[Row] = []
    # Resident memory after each service slice: it should level off, not keep growing.
    rss_samples: list[float] = []
    try:
        stub = ocr_pb2_grpc.OcrServiceStub(channel)
        await through_service(stub, token, images, 1, 0.1)  # connect, fetch keys
        for callers in [] if args.pages_only else sorted({1, workers}):
            # Alternate short slices of both sides, so that load from other processes on a
            # shared machine falls on both alike instead of on whichever phase ran then.
            slices = max(1, round(args.seconds / SLICE_SECONDS))
            print(
                f"{callers} caller(s): {slices} alternating slices of in-process and ocr_svc ...", flush=True
            )
            n_base = n_svc = 0
            t_base = t_svc = 0.0
            first_base: list[float] = []
            first_svc: list[float] = []
            for _ in range(slices):
                n, t, firsts = await asyncio.to_thread(in_process, engine, images, callers, SLICE_SECONDS)
                n_base, t_base, first_base = n_base + n, t_base + t, first_base + firsts
                n, t, firsts = await through_service(stub, token, images, callers, SLICE_SECONDS)
                n_svc, t_svc, first_svc = n_svc + n, t_svc + t, first_svc + firsts
                rss_samples.append(current_rss_mib())
            rate_base, rate_svc = n_base / t_base, n_svc / t_svc
            rows.append(
                Row(
                    "ocr",
                    f"images/s, {callers} caller(s)",
                    rate_svc,
                    rate_base,
                    "img/s",
                    ratio_higher_is_better(rate_svc, rate_base),
                    f"baseline: engine in-process; {workers} workers x {settings.engine_threads()} threads",
                )
            )
            rows.append(
                Row(
                    "ocr",
                    f"time to first line p50, {callers} caller(s)",
                    median(first_svc) * 1e3,
                    median(first_base) * 1e3,
                    "ms",
                    ratio_lower_is_better(median(first_svc), median(first_base)),
                    f"{n_svc} service / {n_base} in-process images",
                )
            )
        if not args.images_only:
            lines_app, lines_channel = await tesseract_lines_service(settings, verifier)
            try:
                lines_stub = ocr_pb2_grpc.OcrServiceStub(lines_channel) if lines_channel else None
                runs = 1 if args.quick else args.page_runs
                rows += await page_rows(stub, token, args.quick, runs, tesseract_lines=lines_stub)
            finally:
                if lines_channel is not None:
                    await lines_channel.close()
                if lines_app is not None:
                    await lines_app.stop(2.0)
    finally:
        await channel.close()
        await app.stop(2.0)
        _delete_queues(rabbitmq_url, topology)
    rows.append(
        Row(
            "ocr",
            "peak RSS",
            peak_rss_mib(),
            rss_engine,
            "MiB",
            None,
            "baseline: engine loaded and warm, before any load; ocrmesh: after the whole run",
        )
    )
    if len(rss_samples) >= 2:
        rows.append(
            Row(
                "ocr",
                "RSS growth, first to last slice",
                rss_samples[-1] - rss_samples[0],
                None,
                "MiB",
                None,
                f"RSS {rss_samples[0]:.0f} -> {rss_samples[-1]:.0f} MiB over {len(rss_samples)} slices",
            )
        )
    return rows


async def tesseract_lines_service(settings: OcrSettings, verifier: TokenVerifier) -> tuple[Any, Any]:
    """A second ocr_svc, as OCR_RECOGNIZER=tesseract builds it, on its own port; (None, None)
    when Tesseract's model or tesserocr is missing (the rows say so by their absence)."""
    lines_settings = settings.model_copy(update={"ocr_recognizer": "tesseract"})
    engine = create_engine(lines_settings)
    try:
        warm_up(engine)
    except EngineUnavailable as exc:
        print(f"OCR_RECOGNIZER=tesseract not measured: {exc}", flush=True)
        return None, None
    app = create_app(lines_settings, engine=engine, authenticate=verifier.authenticate)
    await app.start()
    channel = create_channel(f"127.0.0.1:{app.port}")
    return app, channel


def _delete_queues(url: str, topology: EmailTopology) -> None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError:
        return
    try:
        topology.delete(connection.channel())
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description="ocr_svc images/s and time to first line vs the engine in-process"
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (about 30 s in all)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per side and caller count")
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("OCR_WORKERS", "0")) or (os.cpu_count() or 1)
    )
    parser.add_argument("--page-runs", type=int, default=3, help="runs of each page per contestant")
    parser.add_argument("--pages-only", action="store_true", help="only the scanned pages")
    parser.add_argument("--images-only", action="store_true", help="only the small images, no pages")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 4.0 if args.quick else 15.0
    emit(asyncio.run(run(args)), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
