"""Reading Prometheus exposition text, and a real Prometheus server (Debian's binary) on a
free port with its own data directory, for the tests of the metrics."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from harness.ports import free_port
from harness.repo import ROOT

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition: (name, labels, value)."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(
        v for n, found, v in samples(text) if n == name and all(found.get(k) == x for k, x in labels.items())
    )


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(self, expression: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The result of `expression` once it is not empty."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expression!r} stayed empty for {timeout}s:\n{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.5)


def scrape_config(targets: Mapping[str, str], *, interval: str = "1s") -> dict[str, Any]:
    """A prometheus.yml scraping `targets` (job -> host:port) every `interval`, with the
    mesh's alert rules."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(DEPLOY / "rules" / "ocrmesh.rules.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
        ],
    }


@contextlib.contextmanager
def running_prometheus(workdir: Path, targets: Mapping[str, str]) -> Iterator[PrometheusServer]:
    """Debian's prometheus scraping `targets` every second, on a free loopback port, with
    its data under `workdir`; stopped (SIGTERM) afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
