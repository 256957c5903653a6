"""The probe command compose healthchecks run, against a live in-process server."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from ocrmesh.platform.grpc_server import create_server
from ocrmesh.platform.health_probe import check


async def test_probe_says_serving_only_while_the_server_serves() -> None:
    mesh, port = create_server([], host="127.0.0.1")
    await mesh.start(serving=False)
    target = f"127.0.0.1:{port}"
    try:
        assert not await asyncio.to_thread(check, target)
        await mesh.set_serving(True)
        assert await asyncio.to_thread(check, target)
        # The same check as a command, as a compose healthcheck runs it.
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ocrmesh.platform.health_probe", target],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == "SERVING"
    finally:
        await mesh.stop(0)
    assert not await asyncio.to_thread(check, target, "", 1.0)


def test_probe_fails_fast_when_nothing_listens() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ocrmesh.platform.health_probe", "127.0.0.1:1", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stdout.strip() == "NOT_SERVING"
