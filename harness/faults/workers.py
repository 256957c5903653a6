"""The worker processes of a supervised service (auth_svc, ocr_svc: a parent that forks its
workers), found with psutil, killed outright, and counted back."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil  # type: ignore[import-untyped]


def workers(parent_pid: int) -> list[psutil.Process]:
    """The live direct children of `parent_pid` (a supervisor's workers)."""
    try:
        children = psutil.Process(parent_pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def kill_one_worker(parent_pid: int) -> int:
    """SIGKILL one worker of `parent_pid` (what a native crash or the OOM killer does); its pid."""
    found = workers(parent_pid)
    if not found:
        raise RuntimeError(f"process {parent_pid} has no workers to kill")
    victim = int(found[0].pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim, signal.SIGKILL)
    return victim


def wait_worker_count(parent_pid: int, count: int, *, killed: int, timeout: float) -> float | None:
    """Seconds until `parent_pid` has `count` live workers again (none of them `killed`), or
    None after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        live = [w.pid for w in workers(parent_pid)]
        if len(live) >= count and killed not in live:
            return time.monotonic() - began
        time.sleep(0.05)
    return None


def tree(pid: int) -> list[psutil.Process]:
    """`pid` and every descendant still alive."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
