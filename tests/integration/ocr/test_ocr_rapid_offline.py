"""The default engine works with no network: its models come from the rapidocr wheel and
nothing (model, dictionary, font) is fetched, even on a fresh engine's first call.

The engine runs in a child process inside its own network namespace (`unshare -n`): the
machine as the process sees it has no network at all, not even a route to a package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

READ_OFFLINE = """
import numpy as np
from ocr_svc.engines import warm_up
from ocr_svc.engines.rapid import RapidOcrEngine
from harness.images import render_text_pil

engine = RapidOcrEngine(threads=1)
warm_up(engine)
pixels = np.asarray(render_text_pil(["Offline and fine"], size=30).convert("RGB"))
lines = [engine.read(pixels, region) for region in engine.detect(pixels)]
print("|".join(line.text for line in lines if line))
"""

NETWORK_IS_GONE = """
import socket
try:
    socket.create_connection(("127.0.0.1", 5672), timeout=2)
except OSError:
    print("offline")
"""


def run_without_network(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def unshare_works() -> None:
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "--net", "true"], check=False).returncode
    ):
        pytest.skip("needs `unshare --net` (util-linux, root or user namespaces) to take the network away")


@pytest.mark.usefixtures("unshare_works")
def test_the_namespace_really_has_no_network() -> None:
    # Even the local broker is out of reach: so the next test proves what it claims.
    done = run_without_network(NETWORK_IS_GONE)
    assert done.stdout.strip() == "offline", done.stderr


@pytest.mark.usefixtures("unshare_works")
def test_a_fresh_rapidocr_engine_loads_and_reads_without_any_network() -> None:
    done = run_without_network(READ_OFFLINE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "Offline and fine"
