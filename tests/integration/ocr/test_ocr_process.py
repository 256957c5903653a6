"""`python -m ocr_svc` as a process: it becomes SERVING, stops on SIGTERM, and refuses to
start with a clear message when its engine cannot load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.ports import free_port
from ocrmesh.platform.health_probe import check

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def ocr_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "KERAS_OCR_"))}
    env.update({"PYTHONUNBUFFERED": "1", "OCR_WORKERS": "1", **extra})
    return env


def test_the_service_becomes_serving_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "ocr.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "ocr_svc"],
        cwd=ROOT,
        env=ocr_env(OCR_PORT=str(port), OCR_HOST="127.0.0.1", SHUTDOWN_GRACE_SECONDS="2"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not check(f"127.0.0.1:{port}", timeout=1.0):
            assert process.poll() is None, (tmp_path / "ocr.log").read_text()
            assert time.monotonic() < deadline, "never became SERVING"
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = (tmp_path / "ocr.log").read_text()
    assert '"engine warmed up"' in output
    assert '"stopped"' in output


def test_the_keras_engine_without_weights_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ocr_svc"],
        cwd=ROOT,
        env=ocr_env(OCR_PORT=str(free_port()), OCR_ENGINE="keras", KERAS_OCR_CACHE_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "craft_mlt_25k.h5" in result.stderr
    assert "KERAS_OCR_CACHE_DIR" in result.stderr
    assert "Traceback" not in result.stderr
