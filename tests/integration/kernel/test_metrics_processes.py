"""Several forked processes of one service (the supervisor of ocrmesh.platform.processes) add up
behind one /metrics (prometheus-client's multiprocess mode), and a dead worker's live gauges
are forgotten while its counters stay."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ocrmesh.platform.metrics import metrics_served

ROOT = Path(__file__).resolve().parents[3]


def test_forked_workers_add_up_and_a_dead_workers_live_gauges_are_forgotten(tmp_path: Path) -> None:
    # In a fresh interpreter: multiprocess mode changes process-wide state. The metrics are
    # imported first, as in a supervisor, then two workers are forked.
    script = textwrap.dedent(
        """
        import multiprocessing, urllib.request
        import grpc
        from ocrmesh.platform.metrics import metrics_served, rpc_metrics, worker_exited

        def worker(go, done):
            rpc = rpc_metrics("/ocrmesh.ocr.v1.OcrService/Recognize")
            rpc.handled(grpc.StatusCode.OK, 0.2)
            rpc.streams.inc()
            done.set()
            go.wait(30)

        def scrape(port):
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            handled = streams = 0.0
            for line in text.splitlines():
                if line.startswith("grpc_server_handled_total{") and 'grpc_code="OK"' in line:
                    handled += float(line.rsplit(" ", 1)[1])
                if line.startswith("grpc_server_streams_in_flight{"):
                    streams += float(line.rsplit(" ", 1)[1])
            return handled, streams

        with metrics_served(0, host="127.0.0.1", processes=2) as port:
            ctx = multiprocessing.get_context("fork")
            go = ctx.Event()
            children = []
            for _ in range(2):
                done = ctx.Event()
                child = ctx.Process(target=worker, args=(go, done))
                child.start()
                done.wait(30)
                children.append(child)
            print("running", *scrape(port))
            go.set()
            for child in children:
                child.join(30)
                worker_exited(child.pid)
            print("stopped", *scrape(port))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["running 2.0 2.0", "stopped 2.0 0.0"]


def test_a_metrics_port_that_cannot_be_bound_stops_the_service_as_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped, metrics_served(port, host="127.0.0.1"):
            pass
    assert stopped.value.code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in capsys.readouterr().err


def test_no_port_means_no_metrics_server() -> None:
    with metrics_served(None, host="127.0.0.1") as port:
        assert port is None
