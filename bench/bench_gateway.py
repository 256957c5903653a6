"""Benchmark of the gateway: `.venv/bin/python -m bench.bench_gateway [--quick] [--json PATH]`.

Starts the whole mesh as processes (`harness/mesh.py`) and, next to it, the original
tutorial design (`bench/baseline/`: FastAPI gateway -> blocking HTTP -> FastAPI auth
service; OCR as a RabbitMQ request/reply with a new connection per request), started by
`bench/gateway_original.py`. Then, in one run, against the same user, token, database and
image (the calls compared: `bench/gateway_calls.py`):

  1. capacity, with real load generators (`bench/loadgen.py`: h2load for gRPC, wrk for
     HTTP) at 1 and 32 connections, each figure against a floor measured in the same run:
     `AuthService.GetCurrentUser` against `grpc.health.v1.Health/Check` on the same
     auth_svc, `GET /auth/me` against `GET /healthz` on the same gateway and against the
     original design's `GET /auth/me` (its gateway blocks its event loop on an HTTP call
     to its auth service), and `/auth/me`'s p50 at one connection over GetCurrentUser's;
  2. `POST /ocr` and `/ocr/stream` vs `OcrService.Recognize` directly, and vs the original
     design's `/ocr`: time to the whole result and to the first recognised line (one
     image at a time from this process: OCR costs seconds, the client nothing).

The load phases take turns in rounds, so that changes in the load of this shared machine
fall on every path alike; each ratio is the median of the rounds' ratios. Everything
runs on 127.0.0.1. `--processes N` runs auth_svc and the gateway with N processes each
(AUTH_PROCESSES, GATEWAY_WORKERS), as `make up` does with one per core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench.gateway_calls import OcrTiming, Targets, sign_up_bench_user
from bench.gateway_original import Baseline, public_key_of, running_baseline
from bench.loadgen import LoadResult, ensure_tools, h2load_grpc, median_result, wrk_get
from bench.report import (
    Row,
    add_json_argument,
    emit,
    percentile,
    ratio_lower_is_better,
    say,
)
from harness.images import render_text_image, sample_multiline_png
from harness.mesh import Mesh, running_mesh
from harness.scratch import postgres_admin_url
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL


@dataclass(frozen=True)
class Settings:
    seconds: float
    rounds: int
    concurrency: tuple[int, ...]
    ocr_rounds: int
    ocr_seconds: float
    processes: int


def _ms(seconds: float) -> float:
    return seconds * 1e3


def median_ratio(ours: list[LoadResult], floors: list[LoadResult]) -> float:
    """The median over rounds of each round's requests/s ratio (a round's runs are close in
    time, so they share the machine's state of the moment)."""
    return statistics.median(a.rps / b.rps for a, b in zip(ours, floors, strict=True))


def measure_capacity(
    mesh: Mesh, baseline: Baseline, token: str, expected_user: Message, settings: Settings
) -> list[Row]:
    """GetCurrentUser vs Health/Check, /auth/me vs /healthz and vs the original design,
    with h2load and wrk."""
    bearer = {"authorization": f"Bearer {token}"}
    paths: dict[str, Callable[[int], LoadResult]] = {
        "Health/Check": lambda c: h2load_grpc(
            mesh.auth_addr,
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest(),
            expected_response=health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
            connections=c,
            seconds=settings.seconds,
        ),
        "GetCurrentUser": lambda c: h2load_grpc(
            mesh.auth_addr,
            "/ocrmesh.auth.v1.AuthService/GetCurrentUser",
            auth_pb2.GetCurrentUserRequest(),
            expected_response=expected_user,
            metadata=bearer,
            connections=c,
            seconds=settings.seconds,
        ),
        "/healthz": lambda c: wrk_get(f"{mesh.gateway_url}/healthz", connections=c, seconds=settings.seconds),
        "/auth/me": lambda c: wrk_get(
            f"{mesh.gateway_url}/auth/me", headers=bearer, connections=c, seconds=settings.seconds
        ),
        "original /auth/me": lambda c: wrk_get(
            f"{baseline.gateway_url}/auth/me", headers=bearer, connections=c, seconds=settings.seconds
        ),
    }
    for call in paths.values():  # connections, key caches, the baseline's pool
        call(1)
    rows: list[Row] = []
    processes = f"{settings.processes} process{'es' if settings.processes > 1 else ''} per service"
    for connections in settings.concurrency:
        conns = f"{connections} conn{'s' if connections > 1 else ''}"
        say(f"capacity, {conns}: {settings.rounds} rounds of {', '.join(paths)}, {settings.seconds:g}s each")
        runs: dict[str, list[LoadResult]] = {name: [] for name in paths}
        for _ in range(settings.rounds):
            for name, call in paths.items():
                runs[name].append(call(connections))
        m = {name: median_result(results) for name, results in runs.items()}

        for benchmark, ours, floor, target in (
            ("grpc vs its floor", "GetCurrentUser", "Health/Check", ">= 0.50x at 32 conns"),
            ("gateway vs its floor", "/auth/me", "/healthz", ">= 0.30x at 32 conns"),
            ("gateway vs original", "/auth/me", "original /auth/me", ">= 4x at 32 conns"),
        ):
            rows.append(
                Row(
                    benchmark,
                    f"{ours} req/s vs {floor}, {conns}",
                    m[ours].rps,
                    m[floor].rps,
                    "req/s",
                    median_ratio(runs[ours], runs[floor]),
                    f"target {target}; {processes}; p50 {m[ours].p50_ms:.2f} vs {m[floor].p50_ms:.2f} ms",
                )
            )
        # What the 4x target asks of /auth/me, against what auth_svc serves gRPC callers
        # directly in the same round (no gateway on the cores): below 1.0x, the target
        # needs the REST path faster than the call it makes, alone.
        rows.append(
            Row(
                "gateway vs original",
                f"GetCurrentUser req/s vs 4x original /auth/me, {conns}",
                m["GetCurrentUser"].rps,
                4 * m["original /auth/me"].rps,
                "req/s",
                median_ratio(runs["GetCurrentUser"], runs["original /auth/me"]) / 4,
                "the 4x target's ceiling: below 1.0x it asks more of /auth/me than auth_svc alone serves",
            )
        )
        if connections == 1:
            over = m["/auth/me"].p50_ms - m["GetCurrentUser"].p50_ms
            rows.append(
                Row(
                    "gateway overhead",
                    "/auth/me p50 over GetCurrentUser p50, 1 conn",
                    m["/auth/me"].p50_ms,
                    m["GetCurrentUser"].p50_ms,
                    "ms",
                    ratio_lower_is_better(m["/auth/me"].p50_ms, m["GetCurrentUser"].p50_ms),
                    f"{over:+.2f} ms over (target <= +2 ms); {processes}",
                )
            )
    return rows


async def measure_ocr(targets: Targets, settings: Settings) -> list[Row]:
    calls: dict[str, Callable[[bytes], Awaitable[OcrTiming]]] = {
        "direct": targets.direct_recognize,
        "/ocr": targets.gateway_ocr,
        "/ocr/stream": targets.gateway_ocr_stream,
        "original": targets.original_ocr,
    }
    png = sample_multiline_png()
    # Warm-up: a blank image opens every path's connections at little cost; one real image
    # on each engine process, so that neither side pays its first run at this size.
    blank = render_text_image([])
    for call in calls.values():
        await call(blank)
    await calls["direct"](png)
    await calls["original"](png)
    timings: dict[str, list[OcrTiming]] = {name: [] for name in calls}
    say(f"OCR: up to {settings.ocr_rounds} rounds or {settings.ocr_seconds:g}s of {', '.join(calls)} ...")
    deadline = time.perf_counter() + settings.ocr_seconds
    # Round-robin, so that drift in the machine's load spreads over every path alike.
    while len(timings["direct"]) < settings.ocr_rounds and (
        not timings["direct"] or time.perf_counter() < deadline
    ):
        for name, call in calls.items():
            timings[name].append(await call(png))
    rounds = len(timings["direct"])

    def p50(name: str, first_line: bool = False) -> float:
        return percentile([t.first_line if first_line else t.total for t in timings[name]], 50)

    texts = {name: {t.text for t in runs} for name, runs in timings.items()}
    same_text = all(found == texts["direct"] for found in texts.values())
    if not all(t.text for runs in timings.values() for t in runs):
        raise SystemExit("an OCR call returned no text: the benchmark image was not recognised")
    n = f"n={rounds}, 6-line image"
    text_note = "same text on every path" if same_text else "text differs between paths"

    def row(benchmark: str, figure: str, ours: float, base: float, note: str) -> Row:
        return Row(benchmark, figure, _ms(ours), _ms(base), "ms", ratio_lower_is_better(ours, base), note)

    return [
        row("gateway overhead", "/ocr p50", p50("/ocr"), p50("direct"), f"baseline: Recognize directly; {n}"),
        row(
            "gateway overhead",
            "/ocr/stream p50 (whole stream)",
            p50("/ocr/stream"),
            p50("direct"),
            "baseline: Recognize directly",
        ),
        row(
            "gateway overhead",
            "/ocr/stream first line p50",
            p50("/ocr/stream", first_line=True),
            p50("direct", first_line=True),
            "baseline: first line of Recognize directly",
        ),
        row(
            "gateway vs original",
            "/ocr p50",
            p50("/ocr"),
            p50("original"),
            f"baseline: RabbitMQ RPC, new connection per request; {n}; {text_note}",
        ),
        row(
            "gateway vs original",
            "first line p50 (/ocr/stream)",
            p50("/ocr/stream", first_line=True),
            p50("original"),
            "baseline: original /ocr (no streaming)",
        ),
    ]


async def measure(mesh: Mesh, baseline: Baseline, token: str, settings: Settings) -> list[Row]:
    targets = Targets(mesh, baseline, token)
    try:
        # Warm-up, and the reply every GetCurrentUser under load must match.
        for call in (targets.gateway_me, targets.original_me):
            await call()
        expected_user = await targets.direct_me()
        rows = await asyncio.to_thread(measure_capacity, mesh, baseline, token, expected_user, settings)
        return [*rows, *await measure_ocr(targets, settings)]
    finally:
        await targets.aclose()


def run(args: argparse.Namespace) -> list[Row]:
    ensure_tools()
    settings = Settings(
        seconds=args.seconds,
        rounds=args.rounds,
        concurrency=tuple(args.concurrency),
        ocr_rounds=args.ocr_rounds,
        ocr_seconds=args.ocr_seconds,
        processes=args.processes,
    )
    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    queue = f"bench_ocr_rpc_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        workdir = Path(tmp)
        (workdir / "mesh").mkdir()
        with running_baseline(workdir, rabbitmq_url, queue) as baseline:
            # The baseline's model loads while the mesh starts.
            baseline.start_ocr_worker()
            say("starting the mesh and the original design ...")
            with running_mesh(
                workdir / "mesh",
                postgres_admin_url=postgres_admin_url(),
                rabbitmq_url=rabbitmq_url,
                # Loopback only, like the gateway and the baseline.
                extra_env={
                    "AUTH_HOST": "127.0.0.1",
                    "OCR_HOST": "127.0.0.1",
                    "AUTH_PROCESSES": str(settings.processes),
                    "GATEWAY_WORKERS": str(settings.processes),
                },
            ) as mesh:
                # The baseline reads the key file on its first request: it starts while the
                # user signs up.
                baseline.start_http(database_url=mesh.env["DATABASE_URL"])
                say("mesh ready; signing up a user ...")
                token = sign_up_bench_user(mesh)
                baseline.write_public_key(asyncio.run(public_key_of(token, mesh.auth_addr)))
                baseline.wait_http_ready()
                baseline.wait_ocr_ready()
                say("original design ready")
                return asyncio.run(measure(mesh, baseline, token, settings))


def main() -> int:
    parser = argparse.ArgumentParser(
        description="gateway overhead vs direct gRPC, and ocrmesh vs the original tutorial design"
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (under a minute in all)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=None, help="load runs of each path, taking turns")
    parser.add_argument(
        "--processes", type=int, default=1, help="AUTH_PROCESSES and GATEWAY_WORKERS of the mesh measured"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--ocr-rounds", type=int, default=None, help="most images per OCR path")
    parser.add_argument(
        "--ocr-seconds", type=float, default=None, help="no new OCR round after this long (at least one)"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.ocr_rounds is None:
        args.ocr_rounds = 3 if args.quick else 15
    if args.ocr_seconds is None:
        args.ocr_seconds = 8.0 if args.quick else 60.0
    emit(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
