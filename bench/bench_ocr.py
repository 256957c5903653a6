"""Benchmark of ocr_svc: `.venv/bin/python -m bench.bench_ocr [--quick] [--json PATH]`.

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
import contextlib
import os
import uuid
from typing import Any

from pika.exceptions import AMQPError

from bench.ocr_calls import in_process, through_service
from bench.ocr_pages import PARAGRAPHS, page_rows
from bench.process_memory import current_rss_mib, peak_rss_mib
from bench.report import Row, add_json_argument, emit, median, ratio_higher_is_better, ratio_lower_is_better
from harness.images import render_text_image
from harness.scratch import delete_queues
from harness.tokens import TokenIssuerForTests
from ocr_svc.app import create_app
from ocr_svc.engines import EngineUnavailable, create_engine, warm_up
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.settings import OcrSettings
from ocrmesh.ocr.v1 import ocr_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.rules.email_events import EmailTopology
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL
from ocrmesh.rules.tokens import TokenVerifier

SLICE_SECONDS = 3.0


def signing_material() -> tuple[str, TokenVerifier]:
    """A real Ed25519-signed token and a verifier that knows its key (no auth_svc needed)."""
    issuer = TokenIssuerForTests(key_id="bench")
    token = issuer.mint(user_id="bench-user", email="bench@example.com", name="Bench")
    return token, TokenVerifier(issuer.fetch_public_keys)


async def run(args: argparse.Namespace) -> list[Row]:
    workers = args.workers
    settings_defaults = OcrSettings(ocr_workers=workers)
    # As ocr_svc builds it (ocr_svc.engines.create_engine): an image alone detects on every core.
    engine = RapidOcrEngine(
        threads=settings_defaults.engine_threads(), spread_threads=settings_defaults.spread_threads()
    )
    warm_up(engine)
    images = [render_text_image(p) for p in PARAGRAPHS]
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
        # A broker gone by now leaves nothing to delete.
        with contextlib.suppress(AMQPError):
            delete_queues(rabbitmq_url, topology)
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
