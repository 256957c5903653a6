"""What metrics and tracing cost on the hottest REST path, `GET /auth/me`:
`.venv/bin/python -m bench.bench_observability [--quick] [--json PATH]`.

In one run, two meshes side by side (auth_svc, notifier and gateway as real processes):
  A. as shipped: Prometheus metrics on, tracing off (no OTEL_* variable);
  B. the same with tracing on: every request sampled (`OTEL_TRACES_SAMPLER=always_on`),
     spans exported over OTLP/HTTP to a local sink that reads and drops them.
wrk loads `/auth/me` on A and B in turns (32 connections, then 1), and the figures are
medians of the rounds. Metrics are always on, so their cost is measured as the CPU the
recording calls of one `/auth/me` take (the gateway's per-route counter and histogram, and
auth_svc's per-RPC ones, timed in this process) against the CPU one `/auth/me` costs the
gateway and auth_svc together (from /proc, during mesh A's runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from bench.gateway_calls import sign_up_bench_user
from bench.loadgen import LoadResult, ensure_tools, median_result, wrk_get
from bench.report import Row, add_json_argument, emit, ratio_higher_is_better, say
from harness.mesh import Mesh, running_mesh
from harness.scratch import postgres_admin_url
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL

SERVICES = ("auth", "notifier", "gateway")
GET_CURRENT_USER = "/ocrmesh.auth.v1.AuthService/GetCurrentUser"


class SpanSink:
    """An OTLP/HTTP endpoint that accepts every export and drops it (the cheapest backend)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and every live descendant (workers are forked)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks
    family = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return sum(cpu.get(pid, 0.0) for pid in family)


def recording_cost_us(repeat: int) -> float:
    """Microseconds of CPU the metric calls of one `/auth/me` take: the gateway's request
    counter and latency histogram, auth_svc's RPC counter and histogram."""
    from gateway.metrics import observe_request
    from ocrmesh.platform.metrics import rpc_metrics

    class Route:
        path = "/auth/me"

    scope = {"type": "http", "method": "GET", "path": "/auth/me", "route": Route()}

    def one_request() -> None:  # what the gateway's middleware and auth_svc's interceptor call
        observe_request(scope, 200, 0.0012)
        rpc_metrics(GET_CURRENT_USER).handled(grpc.StatusCode.OK, 0.0004)

    one_request()  # the labelled children exist from here on, as after a first request
    runs = timeit.repeat(one_request, number=repeat, repeat=5, timer=time.process_time)
    return min(runs) / repeat * 1e6


@contextmanager
def two_meshes(workdir: Path, sink: SpanSink) -> Iterator[tuple[Mesh, Mesh]]:
    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    loopback = {"AUTH_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    traced = {
        **loopback,
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    (workdir / "plain").mkdir()
    (workdir / "traced").mkdir()
    with (
        running_mesh(
            workdir / "plain",
            postgres_admin_url=postgres_admin_url(),
            rabbitmq_url=rabbitmq_url,
            services=SERVICES,
            extra_env=loopback,
        ) as plain,
        running_mesh(
            workdir / "traced",
            postgres_admin_url=postgres_admin_url(),
            rabbitmq_url=rabbitmq_url,
            services=SERVICES,
            extra_env=traced,
        ) as with_tracing,
    ):
        yield plain, with_tracing


def measure(plain: Mesh, traced: Mesh, rounds: int, seconds: float) -> list[Row]:
    tokens = {id(plain): sign_up_bench_user(plain), id(traced): sign_up_bench_user(traced)}

    def load(mesh: Mesh, connections: int) -> LoadResult:
        bearer = {"authorization": f"Bearer {tokens[id(mesh)]}"}
        return wrk_get(
            f"{mesh.gateway_url}/auth/me", headers=bearer, connections=connections, seconds=seconds
        )

    for mesh in (plain, traced):  # connections, key and token caches
        load(mesh, 1)
    pids = [plain.processes[name].pid for name in ("gateway", "auth")]
    rows: list[Row] = []
    cpu_per_request: list[float] = []
    for connections in (32, 1):
        say(f"/auth/me, {connections} conn(s): {rounds} rounds of plain and traced, {seconds:g}s each")
        runs: dict[str, list[LoadResult]] = {"plain": [], "traced": []}
        for _ in range(rounds):
            before = sum(tree_cpu_seconds(pid) for pid in pids)
            result = load(plain, connections)
            used = sum(tree_cpu_seconds(pid) for pid in pids) - before
            runs["plain"].append(result)
            if connections == 32 and result.requests:
                cpu_per_request.append(used / result.requests * 1e6)
            runs["traced"].append(load(traced, connections))
        off, on = median_result(runs["plain"]), median_result(runs["traced"])
        ratio = statistics.median(t.rps / p.rps for t, p in zip(runs["traced"], runs["plain"], strict=True))
        rows.append(
            Row(
                "tracing",
                f"/auth/me req/s, tracing on (every request) vs off, {connections} conn(s)",
                on.rps,
                off.rps,
                "req/s",
                ratio,
                f"p50 {on.p50_ms:.2f} vs {off.p50_ms:.2f} ms; reported, no target",
            )
        )
    recording = recording_cost_us(20_000)
    per_request = statistics.median(cpu_per_request)
    rows.append(
        Row(
            "metrics",
            "/auth/me CPU (gateway + auth_svc) with metrics vs without their recording",
            per_request,
            per_request - recording,
            "us/req",
            ratio_higher_is_better(per_request - recording, per_request),
            f"recording {recording:.1f} us = {recording / per_request:.1%} of a request; target <= 3%",
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="the cost of metrics and tracing on GET /auth/me")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    add_json_argument(parser)
    args = parser.parse_args()
    rounds, seconds = (3, 3.0) if args.quick else (5, 8.0)
    ensure_tools()
    sink = SpanSink()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-observability-") as tmp:
            say("starting two meshes (tracing off, tracing on) ...")
            with two_meshes(Path(tmp), sink) as (plain, traced):
                rows = measure(plain, traced, rounds, seconds)
    finally:
        sink.close()
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
