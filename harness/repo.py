"""Where the repository is: the harness runs the services, scripts and deployment files from
its root, wherever the tests or benchmarks were started."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
