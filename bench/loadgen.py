"""Real load generators for the benchmarks: h2load (gRPC over HTTP/2) and wrk (HTTP/1.1).

A Python client saturates long before the servers do (a grpc.aio unary call costs the
client ~0.4 ms of CPU here), so throughput is measured with these two C tools, both from
Debian's packages (`nghttp2-client`, `wrk`); `ensure_tools()` installs them when missing.

h2load sends one gRPC call per request: the body is a length-prefixed protobuf message,
and gRPC reports errors in trailers with HTTP status 200, which h2load does not read. So
each run is checked by the response bytes it received: every call of the measured kind
answers with a message of known size, an error with none.
"""

from __future__ import annotations

import re
import shutil
import statistics
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from scripts import debian_tools


def ensure_tools() -> None:
    """Install h2load and wrk from Debian's packages when they are missing (as root)."""
    debian_tools.ensure("bench")
    missing = [tool for tool in ("h2load", "wrk") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"install {' and '.join(missing)} (Debian: nghttp2-client, wrk) for the benchmark")


def grpc_frame(message: Message) -> bytes:
    """`message` as one gRPC length-prefixed message (uncompressed)."""
    payload = message.SerializeToString()
    return struct.pack(">?I", False, len(payload)) + payload


@dataclass(frozen=True)
class LoadResult:
    """One run of a load generator: completed requests/s and latency percentiles (ms)."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def h2load_grpc(
    target: str,
    method: str,
    request: Message,
    *,
    expected_response: Message,
    metadata: Mapping[str, str] | None = None,
    connections: int,
    seconds: float,
) -> LoadResult:
    """Unary gRPC calls of `method` ("/pkg.Service/Method") on `target` ("host:port") from
    `connections` connections, one call in flight on each, for `seconds`.

    Raises when any call did not answer with a message the size of `expected_response`.
    """
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body = Path(tmp) / "body"
        body.write_bytes(grpc_frame(request))
        log = Path(tmp) / "requests.tsv"
        headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        for key, value in (metadata or {}).items():
            headers += ["-H", f"{key}: {value}"]
        done = subprocess.run(
            [
                "h2load",
                "-c",
                str(connections),
                "-m",
                "1",
                "-t",
                "1",
                "-D",
                f"{seconds:g}",
                *headers,
                "-d",
                str(body),
                f"--log-file={log}",
                f"http://{target}{method}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}):\n{output}")
        durations = sorted(
            int(columns[2]) / 1000
            for columns in (line.split("\t") for line in log.read_text().splitlines())
            if len(columns) >= 3 and columns[1] == "200"
        )
    succeeded = _int(r"requests: .*? (\d+) succeeded", output)
    data_bytes = _int(r"\((\d+)\) data", output)
    expected = len(grpc_frame(expected_response))
    if succeeded == 0 or data_bytes < succeeded * expected:
        raise RuntimeError(
            f"{method}: {succeeded} calls answered with {data_bytes} bytes of messages, expected "
            f"{expected} each: some calls failed (check the token and the service's log)\n{output}"
        )
    return LoadResult(
        rps=_float(r"finished in [\d.]+\w*, ([\d.]+) req/s", output),
        p50_ms=_percentile(durations, 50),
        p99_ms=_percentile(durations, 99),
        requests=succeeded,
    )


def wrk_get(
    url: str, *, headers: Mapping[str, str] | None = None, connections: int, seconds: float
) -> LoadResult:
    """GET `url` from `connections` keep-alive connections (one wrk thread) for `seconds`.
    Raises when any response was not 2xx or a socket failed."""
    # A generous timeout: a slow response is counted in the latencies, not dropped.
    args = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
    ]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk {url}: failed or not all responses 2xx:\n{output}")
    return LoadResult(
        rps=_float(r"Requests/sec:\s+([\d.]+)", output),
        p50_ms=_wrk_ms(output, "50%"),
        p99_ms=_wrk_ms(output, "99%"),
        requests=_int(r"(\d+) requests in", output),
    )


def median_result(results: list[LoadResult]) -> LoadResult:
    """The median of each figure over several runs."""
    return LoadResult(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
    )


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


def _wrk_ms(output: str, label: str) -> float:
    found = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no {label} latency in wrk's output:\n{output}")
    value, unit = float(found.group(1)), found.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _float(pattern: str, output: str) -> float:
    found = re.search(pattern, output)
    if found is None:
        raise RuntimeError(f"{pattern!r} not in the load generator's output:\n{output}")
    return float(found.group(1))


def _int(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    if found is None:
        raise RuntimeError(f"{pattern!r} not in the load generator's output:\n{output}")
    return int(next(group for group in found.groups() if group is not None))
