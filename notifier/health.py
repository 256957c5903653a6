"""Liveness for orchestrators: the consumer loop rewrites a small JSON file every few seconds,
and `python -m notifier healthcheck` exits 0 while that file is fresh."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

BEAT_INTERVAL = 5.0


class HealthFile:
    """Rewrites `path` atomically, at most every `BEAT_INTERVAL` seconds unless the state changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_beat = 0.0
        self._last_state: tuple[bool, str | None] | None = None

    def beat(self, *, connected: bool, error: str | None = None) -> None:
        """Record that the loop is alive; `error` says why it is not consuming (if it is not)."""
        now = time.time()
        if (connected, error) == self._last_state and now - self._last_beat < BEAT_INTERVAL:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        state = {"ts": now, "pid": os.getpid(), "connected": connected, "error": error}
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)
        self._last_beat, self._last_state = now, (connected, error)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def check(path: Path, *, max_age: float, require_connected: bool) -> tuple[bool, str]:
    """(healthy, explanation) for the health file at `path`."""
    try:
        state = json.loads(path.read_text())
        age = time.time() - float(state["ts"])
        connected = bool(state["connected"])
        error = state.get("error")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return False, f"no readable health file at {path}: {exc}"
    if age > max_age:
        return False, f"stale: last beat {age:.0f}s ago"
    if error:
        # Alive (a restart would not help) but not consuming: not ready.
        return not require_connected, f"alive but not consuming: {error}"
    if require_connected and not connected:
        return False, "alive but not connected to RabbitMQ"
    return True, f"alive ({'connected' if connected else 'reconnecting'}, beat {age:.0f}s ago)"
